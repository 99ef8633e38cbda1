"""The one place the annotation package reads a dissection run (so a typed run record can replace it)."""

from __future__ import annotations

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


def open_inputs(view: RunView, device: str = "cpu", trust: Trust | None = None) -> tuple[LoadedModel, ProbeSet]:
    """Reopen the run's model and probe set through ``dissection.reopen`` (checked; no code from the run)."""
    from unitscope.dissection.reopen import reopen_model, reopen_probe

    return reopen_model(view.result, device=device, trust=trust), reopen_probe(view.result)
