"""The one place the annotation package reads a dissection run (so a typed run record can replace it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.data.probe import ProbeSet
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


def open_inputs(view: RunView, device: str = "cpu") -> tuple[LoadedModel, ProbeSet]:
    """Reopen the run's model and probe set, as named in its identity."""
    from unitscope.data import open_probe
    from unitscope.models.loading import load_model

    identity = view.result.info.get("identity") or {}
    if not isinstance(identity, dict) or "model" not in identity or "data" not in identity:
        raise UsageError(f"{view.directory} does not record its model and probe set; rerun dissect with this version")
    spec, data = dict(identity["model"]), dict(identity["data"])
    model = load_model(str(spec["model"]), weights=spec.get("weights"), num_classes=spec.get("num_classes"),
                       device=device)
    model.preprocess = model.preprocess.with_overrides(spec.get("input_size"), spec.get("mean"), spec.get("std"))
    probe = open_probe(str(data.get("data", "sceneworld")), n=int(data.get("n", 500)), seed=int(data.get("seed", 0)),
                       size=int(data.get("size", 112)))
    return model, probe
