"""Which region of a top image the report shows for a unit, and the paper's receptive-field rule for it.

Two rules:
- ``field`` (Zhou et al. 2015, Fig. 9): every position of the unit's map above its threshold stands for
  the square of its receptive field (the layer's theoretical size, or an empirical size given per layer)
  centred on that position's field centre; the region is the union of those squares.
- ``activation``: the map upsampled as in the run and cut at the threshold, the region that entered the
  unit's IoU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unitscope.errors import UsageError
from unitscope.receptive.segmentation import segmentation_mask
from unitscope.receptive.theory import FieldGeometry

REGION_RULES: tuple[str, ...] = ("field", "activation")


def check_region_rule(regions: str) -> None:
    """Raise a UsageError for an unknown region rule."""
    if regions not in REGION_RULES:
        raise UsageError(f"unknown region rule {regions!r}; choose one of {', '.join(REGION_RULES)}")


def check_field_sizes(field_sizes: Mapping[str, float] | None, layers: Mapping[str, object] | None = None) -> None:
    """Raise a UsageError unless every size is a positive number (and, given ``layers``, names one of them)."""
    for layer, size in (field_sizes or {}).items():
        if layers is not None and layer not in layers:
            raise UsageError(f"field size given for {layer!r}, which is not a layer of this dissection; "
                             f"use one of {', '.join(layers)}")
        if not isinstance(size, int | float) or not math.isfinite(size) or size <= 0:
            raise UsageError(f"field size of layer {layer!r} must be a positive number of pixels, got {size!r}")


def field_sizes_from_rf(path: str | Path) -> dict[str, float]:
    """Each layer's mean empirical field side from an ``unitscope rf --empirical`` run (its dir or rf.json).

    Layers without a measured mean (all units dead) are left out and keep their theoretical size. Sizes are
    in the rf run's network-input pixels; measure at the dissection's input size.
    """
    file = Path(path) / "rf.json" if Path(path).is_dir() else Path(path)
    try:
        record = json.loads(file.read_text())
        layers = record["layers"]
        sizes = {str(name): entry["empirical"]["mean"] for name, entry in layers.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot read empirical field sizes from {file} ({type(err).__name__}: {err}); "
                         "pass the output of `unitscope rf --empirical`") from None
    return {name: float(size) for name, size in sizes.items() if size is not None}


def unit_field_sizes_from_rf(path: str | Path) -> dict[str, dict[int, float]]:
    """Each unit's empirical field side per layer from an ``unitscope rf --empirical`` run (dead units absent)."""
    file = Path(path) / "rf.json" if Path(path).is_dir() else Path(path)
    try:
        layers = json.loads(file.read_text())["layers"]
        return {str(name): {int(unit): float(size) for unit, size in dict(entry.get("units", {})).items()
                            if size is not None}
                for name, entry in layers.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot read empirical field sizes from {file} ({type(err).__name__}: {err}); "
                         "pass the output of `unitscope rf --empirical`") from None


@dataclass(frozen=True)
class FieldUsed:
    """The field square drawn for one layer: side in network-input pixels and where the size came from."""

    side: float
    source: str  # "theoretical" or "empirical"


def field_masks(maps: torch.Tensor, thresholds: torch.Tensor, geometry: FieldGeometry, side: float,
                shown: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Bool [P, H, W]: for each map [P, h, w], the union of field squares of its positions above threshold.

    Squares live in network-input pixels (``input_size``) and are mapped proportionally to the ``shown``
    size, exactly as :func:`~unitscope.receptive.segmentation.segmentation_mask` does for one map.
    """
    maps = maps.detach().to("cpu", torch.float64)
    limits = thresholds.detach().to("cpu", torch.float64).tolist()
    if not len(limits):
        return np.zeros((0, *shown), dtype=bool)
    return np.stack([segmentation_mask(m, t, geometry, shown, side, input_size)
                     for m, t in zip(maps, limits, strict=True)])
