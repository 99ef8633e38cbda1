"""The one place the annotation package reads a dissection run (so a typed run record can replace it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from unitscope.data.probe import ProbeSet
    from unitscope.dissection.reopen import Trust
    from unitscope.dissection.result import DissectionResult
    from unitscope.models.loading import LoadedModel


@dataclass(frozen=True)
class RunView:
    """What annotation needs of a run: per layer its units table (label, category, iou, threshold) and top images."""

    directory: Path
    layers: tuple[str, ...]
    units: dict[str, pd.DataFrame]
    top_images: dict[str, pd.DataFrame]
    result: DissectionResult


def read_run(directory: str | Path) -> RunView:
    """Read a finished dissection run through the run readers."""
    from unitscope.dissection.result import DissectionResult

    result = DissectionResult.load(directory)
    return RunView(Path(directory), tuple(result.layers), {k: v.units for k, v in result.layers.items()},
                   {k: v.top_images for k, v in result.layers.items()}, result)


def model_loader(view: RunView, device: str = "cpu", trust: Trust | None = None) -> Callable[[], LoadedModel]:
    """How to reopen the run's model through ``dissection.reopen`` (checked; no code from the run), called only
    when a region must be recomputed (runs that stored their top maps never need it)."""
    from unitscope.dissection.reopen import reopen_model

    return lambda: reopen_model(view.result, device=device, trust=trust)


def open_probe(view: RunView, data: str | ProbeSet | None = None) -> ProbeSet:
    """The run's probe set (or ``data`` in its place), checked against the run's record."""
    from unitscope.dissection.reopen import reopen_probe

    return reopen_probe(view.result, data)
