"""The runs a server is given, read once at start: name, checked record, allow-listed files, all-in-one system."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from unitscope.errors import UsageError
from unitscope.serve.app import ServedRun
from unitscope.serve.files import list_files, run_slugs
from unitscope.serve.sight_adapter import Seer

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust


def open_runs(directories: list[Path], device: str = "cpu", trust: Trust | None = None,
              fit_n: int | None = None) -> list[ServedRun]:
    """Each finished run in ``directories`` (each once), its files listed now; models open on first upload."""
    from unitscope.dissection.record import read_record

    real = [d.resolve() for d in directories]
    if len(set(real)) != len(real):
        raise UsageError("a run is given twice; give each RUN once")
    served = []
    for name, directory in zip(run_slugs(real), real, strict=True):
        record = read_record(directory)
        served.append(ServedRun(name, directory, list_files(directory), Seer(directory, device, trust, fit_n),
                                tuple(layer.name for layer in record.layers)))
    return served


def warm_in_background(runs: list[ServedRun], say: Callable[[str], None]) -> threading.Thread:
    """Open every run's see system in a daemon thread (uploads that come first wait for it), saying when each is
    ready or why it cannot be (then each upload to it says so too)."""

    def warm() -> None:
        for run in runs:
            start = time.perf_counter()
            try:
                run.seer.warm()
            except UsageError as err:
                say(f"run {run.name}: uploads cannot be seen: {err}")
            else:
                say(f"run {run.name}: ready for uploads ({time.perf_counter() - start:.1f} s to open)")

    thread = threading.Thread(target=warm, name="unitscope-serve-warm", daemon=True)
    thread.start()
    return thread
