"""The report step: render a finished run's pages from its data, without recomputing statistics.

A run directory holds data only; this step reopens the run's probe set (from what the run recorded, or the
object given) to draw the top images' regions from the maps pass 1 stored, and writes ``report.html`` next to
it. The model is reopened only if something needs it: a layer without stored maps (an older run), or the
``field`` rule's receptive-field tracing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from unitscope.data.probe import ProbeSet
from unitscope.dissection.reopen import Trust, reopen_model, reopen_probe
from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.report.dissection import ReportOptions, build_report
from unitscope.report.html import write_html
from unitscope.staging import lock_output, staged_into


def render_report(run: DissectionResult, options: ReportOptions | None = None, *, model: LoadedModel | None = None,
                  probe: ProbeSet | None = None, out: Path | None = None, device: str = "cpu",
                  trust: Trust | None = None) -> Path:
    """Write ``report.html`` and ``units/`` (into ``out``, default the run directory) for a finished run; return
    the page's path. Staged: the previous report stays whole until the new one is complete (``staged_into``)."""
    directory = Path(out) if out is not None else run.run_dir
    if directory is None:
        raise UsageError("the run has no directory; pass out= for the report")
    options = options or ReportOptions()
    options.validate()
    source: LoadedModel | Callable[[], LoadedModel] = (
        model if model is not None else (lambda: reopen_model(run, device=device, trust=trust)))
    probe = probe or reopen_probe(run)
    with lock_output(directory), staged_into(directory, "report") as stage:  # one writer; re-entrant for the CLI
        write_html(build_report(run, probe, source, options, stage), stage / "report.html")
    return directory / "report.html"


class Renderable(Protocol):
    """What :func:`report` accepts besides a directory: a dissection with its model and probe set."""

    @property
    def result(self) -> DissectionResult: ...

    @property
    def model(self) -> LoadedModel: ...

    @property
    def probe(self) -> ProbeSet: ...


def report(run: str | Path | DissectionResult | Renderable, *, regions: str = "activation", units: int | None = None,
           field_sizes: dict[str, float] | None = None, out: str | Path | None = None, device: str = "cpu",
           png: bool = False) -> Path:
    """``unitscope.report(run)``: render ``report.html`` and a page per unit for a finished run.

    ``run`` is a run directory, a ``DissectionResult`` or what ``unitscope.dissect`` returned; ``png``: also
    every top image as a PNG file (``units/<layer>/<unit>/<rank>.png``).
    """
    options = ReportOptions(max_units=units, regions=regions, field_sizes=field_sizes, png=png)
    target = Path(out) if out is not None else None
    if isinstance(run, (str, Path)):
        return render_report(DissectionResult.load(run), options, out=target, device=device)
    if isinstance(run, DissectionResult):
        return render_report(run, options, out=target, device=device)
    return render_report(run.result, options, model=run.model, probe=run.probe, out=target, device=device)
