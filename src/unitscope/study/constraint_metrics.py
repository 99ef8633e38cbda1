"""The numbers ``study constraints`` keeps per dissected layer, and their summary across seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unitscope.dissection.result import DissectionResult

# Per run and layer: (key, what it counts).
METRICS: tuple[tuple[str, str], ...] = (
    ("detectors", "significant detectors (IoU ≥ 0.04 and FDR 0.05)"),
    ("unique_objects", "unique object concepts among the detectors"),
    ("object_detectors", "object detectors"),
    ("survive", "object/part detectors surviving the colour control"),
    ("object_survive", "object detectors surviving the colour control"),
    ("mean_iou", "mean IoU of the detectors"),
    ("random_detectors", "significant detectors of the random twin"),
)


def _total(table: Any, category: str, column: str) -> int:
    for row in table:
        if row["category"] == category:
            return int(row[column])
    return 0


def run_metrics(result: DissectionResult) -> dict[str, dict[str, Any]]:
    """Per layer: the METRICS, the run's own bootstrap intervals (detectors, survivors) and the twin's counts."""
    record = result.record
    control = (record.control or {}).get("layers", {})
    baseline = (record.baseline or {}).get("layers", {})
    found: dict[str, dict[str, Any]] = {}
    for layer in record.layers:
        units = result.layers[layer.name].units
        detectors = units[units["detector"].astype(bool)]
        objects = detectors[detectors["category"] == "object"]
        held = control.get(layer.name, {})
        twin = baseline.get(layer.name, {})
        found[layer.name] = {
            "units": int(layer.units),
            "detectors": len(detectors),
            "detectors_ci": list((layer.intervals or {}).get("detectors_ci", [math.nan, math.nan])),
            "unique_objects": int(objects["label"].nunique()),
            "object_detectors": len(objects),
            "survive": int(held.get("survive_control", 0)),
            "survive_ci": list(held.get("survive_ci", [math.nan, math.nan])),
            "object_survive": int(held.get("categories", {}).get("object", {}).get("survive_control", 0)),
            "mean_iou": float(detectors["iou"].mean()) if len(detectors) else 0.0,
            "random_detectors": _total(twin.get("table", []), "total", "detectors"),
        }
    return found


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% Student-t interval across seeds (the mean twice when there is one value)."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data)))
    return mean, mean - half, mean + half
