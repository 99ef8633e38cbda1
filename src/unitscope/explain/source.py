"""What ``explain`` reads from a finished dissection run, through one adapter function.

Everything else in this package sees only :class:`RunLayer`; when the run directory's typed record
changes, only :func:`read_run` changes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unitscope.data.probe import ConceptTable
from unitscope.errors import UsageError


@dataclass(frozen=True)
class RunLayer:
    """One dissected layer of a finished run, with what it takes to rebuild its masks exactly."""

    run_dir: Path
    layer: str
    path: str  # module path
    units: int
    map_size: tuple[int, int]
    thresholds: np.ndarray  # [U] float64, as dissect used them
    singles: pd.DataFrame  # unit, label, category, iou (the dissection's own labels)
    iou: np.ndarray | None  # [U, max label + 1] the dissection's IoU matrix
    concepts: ConceptTable
    model: dict[str, object]  # model, weights, num_classes, input_size, mean, std
    data: dict[str, object]  # data, n, seed, size
    upsample: str
    label_size: tuple[int, int]
    input_size: tuple[int, int]
    skipped: frozenset[int]
    geometry: tuple[float, float] | None = None  # (stride, start) of the receptive fields, if the run records it
    result: Any = None  # the DissectionResult itself: its model and probe set reopen through dissection.reopen
    amp: str = "off"  # the run's precision: masks are recomputed under the autocast that measured the thresholds
    quantile: float = 0.005  # the top quantile the thresholds cut at (the random twin's are cut at the same one)
    baseline_seed: int = 0  # the run's --baseline-seed: the random twin explain's null re-initialises by default
    warnings: tuple[str, ...] = ()  # the run's warnings about this layer (a probe set too small for it)


def read_run(run_dir: str | Path, layer: str) -> RunLayer:
    """The ``layer`` of the finished dissection run in ``run_dir`` (the only reader of run files here).

    Reads the typed run record where the run has one (``DissectionResult.record``), else the older
    ``info`` dict of ``summary.json``.
    """
    from unitscope.dissection.result import DissectionResult

    run = DissectionResult.load(run_dir)
    if layer not in run.layers:
        matches = [name for name, lr in run.layers.items() if lr.path == layer]
        if not matches:
            raise UsageError(f"{run_dir} has no layer {layer!r}; it holds {', '.join(run.layers)}")
        layer = matches[0]
    found = run.layers[layer]
    if "threshold" not in found.units.columns:
        raise UsageError(f"{run_dir}/{layer} has no thresholds in units.csv; rerun dissect with this version")
    if not len(run.concepts):
        raise UsageError(f"{run_dir} was dissected on an unlabelled probe set; explain needs concept labels")
    record: Any = getattr(run, "record", None)
    made = _from_record(record, layer) if record is not None else _from_info(getattr(run, "info", {}), run_dir)
    units = found.units.sort_values("unit")
    return RunLayer(
        run_dir=Path(run_dir),
        layer=layer,
        path=found.path,
        units=int(found.shape[0]),
        map_size=(int(found.shape[1]), int(found.shape[2])),
        thresholds=_thresholds(Path(run_dir), layer, units),
        singles=units[["unit", "label", "category", "iou"]].reset_index(drop=True),
        iou=found.iou,
        concepts=run.concepts,
        result=run,
        amp=str(run.record.setting("amp", "off")) if record is not None else "off",
        **made,
    )


def _from_record(record: Any, layer: str) -> dict[str, Any]:
    """Fields of RunLayer from a typed ``RunRecord`` (dissection/record.py)."""
    spec = record.spec
    model = {"model": spec.model.spec, "weights": spec.model.weights, "num_classes": spec.model.num_classes,
             "input_size": spec.model.input_size, "mean": spec.model.mean, "std": spec.model.std,
             "digest": spec.model.digest}
    data = {"data": spec.data.data, "n": spec.data.n, "seed": spec.data.seed, "size": spec.data.size,
            "digest": spec.data.digest}
    entry = record.layer(layer)
    geometry = None if entry.stride is None or entry.start is None else (float(entry.stride), float(entry.start))
    return {"model": model, "data": data, "upsample": str(record.setting("upsample", "bilinear")),
            "label_size": tuple(int(v) for v in record.label_size),
            "input_size": tuple(int(v) for v in record.input_size),
            "skipped": frozenset(int(k) for k in record.skipped), "geometry": geometry,
            "quantile": float(record.setting("quantile", 0.005)),
            "baseline_seed": int(record.setting("baseline_seed", 0)),
            "warnings": layer_warnings(tuple(record.warnings), layer)}


def layer_warnings(warnings: tuple[str, ...], layer: str) -> tuple[str, ...]:
    """The run's warnings that concern ``layer``: those naming it, and those naming no layer."""
    return tuple(w for w in warnings if f"layer {layer}:" in w or not w.startswith("warning: layer "))


def _from_info(info: dict[str, object], run_dir: str | Path) -> dict[str, Any]:
    """Fields of RunLayer from the ``info`` dict of an untyped ``summary.json``."""
    identity = info.get("identity")
    if not isinstance(identity, dict) or "model" not in identity or "data" not in identity:
        raise UsageError(f"{run_dir} does not record how it was made (summary.json identity); rerun dissect")
    settings = info.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    skipped = info.get("skipped")
    skipped = skipped if isinstance(skipped, dict) else {}
    return {"model": dict(identity["model"]), "data": dict(identity["data"]),
            "upsample": str(settings.get("upsample", "bilinear")),
            "label_size": _pair(info, "label_size", run_dir), "input_size": _pair(info, "input_size", run_dir),
            "skipped": frozenset(int(k) for k in skipped), "geometry": None,
            "quantile": float(settings.get("quantile", 0.005)), "baseline_seed": int(settings.get("baseline_seed", 0))}


def _pair(info: dict[str, object], key: str, run_dir: str | Path) -> tuple[int, int]:
    value = info.get(key)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise UsageError(f"{run_dir}/summary.json lacks {key}; rerun dissect with this version")
    return int(value[0]), int(value[1])


def _thresholds(run_dir: Path, layer: str, units: pd.DataFrame) -> np.ndarray:
    """The exact thresholds (thresholds.npy), else units.csv's 6-digit ones (a pixel may flip at a near-tie)."""
    from unitscope.dissection.result import layer_dirname

    exact = run_dir / layer_dirname(layer) / "thresholds.npy"
    if exact.is_file():
        values = np.load(exact)
        if values.shape == (len(units),):
            return np.asarray(values, dtype=np.float64)
    return np.asarray(units["threshold"].to_numpy(dtype=np.float64))
