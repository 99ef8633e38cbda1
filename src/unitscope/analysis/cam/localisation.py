"""How well a heatmap points at the objects: the share of its hottest pixels that lie on them.

For one image with heatmap ``h`` and a mask of relevant object pixels ``m`` (both at the label
resolution): take the hottest ``top_fraction`` of pixels (20% by default; pixels tied at the cut-off
share the remaining places equally, so the score does not depend on pixel order) and measure the share
of them on ``m``: the *hit rate*. A heatmap that ignores objects scores the object pixel share on
average; one that points at them scores more. ``lift`` = mean hit rate / mean object share.
``mass_on_objects`` is the heatmap's total mass on ``m`` over its total mass.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np


def top_share_on_mask(heat: np.ndarray, mask: np.ndarray, top_fraction: float = 0.2) -> float:
    """Share of the hottest ``top_fraction`` of pixels that fall on ``mask`` (ties at the cut split evenly)."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    values = np.asarray(heat, dtype=np.float64).ravel()
    on = np.asarray(mask, dtype=bool).ravel()
    if values.shape != on.shape:
        raise ValueError(f"heatmap {np.shape(heat)} and mask {np.shape(mask)} differ in shape")
    k = max(1, round(top_fraction * values.size))
    cut = np.sort(values)[::-1][k - 1]
    above = values > cut
    tied = values == cut
    weight = (k - int(above.sum())) / int(tied.sum())
    return float((int((above & on).sum()) + weight * int((tied & on).sum())) / k)


@dataclass(frozen=True)
class LocalisationScore:
    """Means over images: hit rate of the top pixels, object pixel share, heat mass on objects."""

    top_fraction: float
    hit_rate: float
    object_share: float
    mass_on_objects: float
    lift: float
    above_chance: float
    n_images: int
    skipped: int = 0  # images without any relevant object pixel (e.g. the predicted object is absent)

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


class LocalisationMeter:
    """Accumulates per-image scores; images without any relevant object pixel are skipped (and counted)."""

    def __init__(self, top_fraction: float = 0.2) -> None:
        self.top_fraction = top_fraction
        self.hits: list[float] = []
        self.shares: list[float] = []
        self.masses: list[float] = []
        self.skipped = 0

    def update(self, heat: np.ndarray, mask: np.ndarray) -> float | None:
        """Score one image; returns its hit rate (None when the mask is empty)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            self.skipped += 1
            return None
        heat = np.asarray(heat, dtype=np.float64)
        hit = top_share_on_mask(heat, mask, self.top_fraction)
        total = float(heat.sum())
        self.hits.append(hit)
        self.shares.append(float(mask.mean()))
        self.masses.append(float(heat[mask].sum()) / total if total > 0 else float("nan"))
        return hit

    def result(self) -> LocalisationScore:
        n = len(self.hits)
        if n == 0:
            nan = float("nan")
            return LocalisationScore(self.top_fraction, nan, nan, nan, nan, nan, 0, self.skipped)
        hit, share = float(np.mean(self.hits)), float(np.mean(self.shares))
        masses = [m for m in self.masses if not math.isnan(m)]
        return LocalisationScore(
            top_fraction=self.top_fraction,
            hit_rate=hit,
            object_share=share,
            mass_on_objects=float(np.mean(masses)) if masses else float("nan"),
            lift=hit / share if share > 0 else float("nan"),
            above_chance=float(np.mean(np.array(self.hits) > np.array(self.shares))),
            n_images=n,
            skipped=self.skipped,
        )


def object_mask(object_maps: np.ndarray, relevant: Collection[int]) -> np.ndarray:
    """Pixels whose object label (in any of the ``[k, h, w]`` maps) is one of ``relevant``."""
    maps = np.asarray(object_maps)
    if maps.ndim == 2:
        maps = maps[None]
    return cast(np.ndarray, np.isin(maps, np.fromiter(relevant, dtype=np.int64, count=len(relevant))).any(axis=0))
