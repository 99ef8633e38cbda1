"""How well a heatmap points at the foreground objects: the share of its hottest pixels on them, and the
pointing game.

For one image with heatmap ``h`` and a mask of foreground object pixels ``m`` (both at the label
resolution): take the hottest ``top_fraction`` of pixels (20% by default; pixels tied at the cut-off
share the remaining places equally, so the score does not depend on pixel order) and measure the share
of them on ``m``: the *hit rate*. A heatmap that ignores objects scores the object pixel share on
average; one that points at them scores more. ``lift`` = mean hit rate / mean object share.
``mass_on_objects`` is the heatmap's total mass on ``m`` over its total mass. The *pointing game*
(Zhang et al. 2016, without a tolerance margin) asks whether the hottest pixel lies on ``m``; pixels tied
at the maximum share the point, so an image scores the share of them on ``m`` (1 or 0 for one hottest pixel).
Its chance level is the object share, too.

A mask that covers nearly all of an image (at least ``MAX_MASK_SHARE``) cannot tell a heatmap that points
at objects from one that points anywhere: such an image is *excluded* and counted, never scored (a
heatmap would hit it by construction). An image without a foreground pixel is *skipped* and counted.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

MAX_MASK_SHARE = 0.9  # masks covering this share of an image or more are excluded from the score


def top_share_on_mask(heat: np.ndarray, mask: np.ndarray, top_fraction: float = 0.2) -> float:
    """Share of the hottest ``top_fraction`` of pixels that fall on ``mask`` (ties at the cut split evenly)."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    values, on = _flat(heat, mask)
    k = max(1, round(top_fraction * values.size))
    cut = np.sort(values)[::-1][k - 1]
    above = values > cut
    tied = values == cut
    weight = (k - int(above.sum())) / int(tied.sum())
    return float((int((above & on).sum()) + weight * int((tied & on).sum())) / k)


def pointing_game(heat: np.ndarray, mask: np.ndarray) -> float:
    """1 when the hottest pixel lies on ``mask``, else 0; pixels tied at the maximum share the point."""
    values, on = _flat(heat, mask)
    hottest = values == values.max()
    return float((hottest & on).sum() / hottest.sum())


def _flat(heat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(heat, dtype=np.float64).ravel()
    on = np.asarray(mask, dtype=bool).ravel()
    if values.shape != on.shape:
        raise ValueError(f"heatmap {np.shape(heat)} and mask {np.shape(mask)} differ in shape")
    if values.size == 0:
        raise ValueError("an empty heatmap has no hottest pixels")
    return values, on


@dataclass(frozen=True)
class ImageScore:
    """One image: ``status`` is ``scored``, ``excluded`` (mask ≥ MAX_MASK_SHARE) or ``no-object``; the
    numbers are set when scored (``object_share`` whenever the mask is known)."""

    status: str
    object_share: float
    hit_rate: float | None = None
    pointing: float | None = None
    mass_on_objects: float | None = None

    @property
    def scored(self) -> bool:
        return self.status == "scored"


@dataclass(frozen=True)
class LocalisationScore:
    """Means over scored images: hit rate of the top pixels, object pixel share, heat mass on objects,
    lift (hit rate / share), share of images above chance, pointing game; and what was not scored."""

    top_fraction: float
    hit_rate: float
    object_share: float
    mass_on_objects: float
    lift: float
    above_chance: float
    n_images: int
    skipped: int = 0  # images without any foreground object pixel
    pointing: float = float("nan")  # share of scored images whose hottest pixel is on a foreground object
    excluded: int = 0  # images whose mask covers at least max_mask_share of the image: never scored
    max_mask_share: float = MAX_MASK_SHARE

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


class LocalisationMeter:
    """Scores images one by one and keeps each image's numbers (for the means and for paired intervals)."""

    def __init__(self, top_fraction: float = 0.2, max_mask_share: float = MAX_MASK_SHARE) -> None:
        self.top_fraction = top_fraction
        self.max_mask_share = max_mask_share
        self.images: list[ImageScore] = []

    def update(self, heat: np.ndarray, mask: np.ndarray) -> ImageScore:
        """Score one image (``heat`` and ``mask`` of one shape, at the label resolution)."""
        mask = np.asarray(mask, dtype=bool)
        share = float(mask.mean())
        if not mask.any():
            score = ImageScore("no-object", share)
        elif share >= self.max_mask_share:
            score = ImageScore("excluded", share)
        else:
            heat = np.asarray(heat, dtype=np.float64)
            total = float(heat.sum())
            score = ImageScore("scored", share, top_share_on_mask(heat, mask, self.top_fraction),
                               pointing_game(heat, mask), float(heat[mask].sum()) / total if total > 0 else None)
        self.images.append(score)
        return score

    def result(self) -> LocalisationScore:
        scored = [s for s in self.images if s.scored]
        skipped = sum(s.status == "no-object" for s in self.images)
        excluded = sum(s.status == "excluded" for s in self.images)
        if not scored:
            nan = float("nan")
            return LocalisationScore(self.top_fraction, nan, nan, nan, nan, nan, 0, skipped, nan, excluded,
                                     self.max_mask_share)
        hits = np.array([s.hit_rate for s in scored], dtype=np.float64)
        shares = np.array([s.object_share for s in scored], dtype=np.float64)
        masses = [s.mass_on_objects for s in scored if s.mass_on_objects is not None]
        hit, share = float(hits.mean()), float(shares.mean())
        return LocalisationScore(
            top_fraction=self.top_fraction,
            hit_rate=hit,
            object_share=share,
            mass_on_objects=float(np.mean(masses)) if masses else float("nan"),
            lift=hit / share,
            above_chance=float(np.mean(hits > shares)),
            n_images=len(scored),
            skipped=skipped,
            pointing=float(np.mean([s.pointing for s in scored])),
            excluded=excluded,
            max_mask_share=self.max_mask_share,
        )


def object_mask(object_maps: np.ndarray, relevant: Collection[int]) -> np.ndarray:
    """Pixels whose object label (in any of the ``[k, h, w]`` maps) is one of ``relevant``."""
    maps = np.asarray(object_maps)
    if maps.ndim == 2:
        maps = maps[None]
    return cast(np.ndarray, np.isin(maps, np.fromiter(relevant, dtype=np.int64, count=len(relevant))).any(axis=0))
