"""Pass 2's per-batch measurement, apart from the sums it feeds.

Everything here reads the activation cache and the labels but no statistic: the masks of the maps that reach
their thresholds, their label counts and their clump autocovariance. So lanes (``loader.in_order``) can
measure the next batches while the engine folds this one into the sums, in batch order: the same bytes as
one thread doing both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.dissection.cache import ActivationCache
from unitscope.dissection.sparse_masks import WindowedMasks
from unitscope.stats.iou import MaskCounts, MaskPixels
from unitscope.stats.labels import LabelBatch
from unitscope.stats.significance import ClumpPart, NullMoments

LabelledBatch = tuple[list[int], np.ndarray, LabelBatch]  # indices, rows counted, their labels


@dataclass
class LayerMasks:
    """One layer's pass-2 masks of a batch and what is measured from them before they are counted."""

    image_of: torch.Tensor
    unit_of: torch.Tensor
    pixels: MaskPixels
    counts: MaskCounts
    clumps: list[ClumpPart]


PreparedBatch = tuple[list[int], np.ndarray, LabelBatch, dict[str, LayerMasks]]


@dataclass
class PassTwoMasks:
    """Called on a batch of labels: its masks and measures, every layer (reads no statistic, so thread-safe)."""

    caches: dict[str, ActivationCache]
    maskers: dict[str, WindowedMasks]
    thresholds: dict[str, torch.Tensor]
    moments: dict[str, NullMoments]  # only their clump grids are read
    device: torch.device

    def __call__(self, batch: LabelledBatch) -> PreparedBatch:
        indices, rows, labels = batch
        layers: dict[str, LayerMasks] = {}
        if len(rows):
            _ = labels.label_counts, labels.position_edges  # built here, not where the sums fold
            for name, cache in self.caches.items():
                acts = torch.from_numpy(cache.read(rows)).to(self.device)
                threshold = self.thresholds[name]
                # Upsampling interpolates (a convex combination), so only the (image, unit) maps that reach
                # the threshold can have pixels on, and only near their cells that reach it; WindowedMasks
                # finds just those on pixels, equal bit for bit to Upsampler(maps) > threshold.
                image_of, unit_of = self.maskers[name].active_pairs(acts, threshold)
                pixels = self.maskers[name].pixels(acts[image_of, unit_of], threshold[unit_of])
                counts = MaskCounts.build(pixels, image_of, labels)  # one label lookup for both
                layers[name] = LayerMasks(image_of, unit_of, pixels, counts,
                                          self.moments[name].clump_parts(pixels, unit_of))
        return indices, rows, labels, layers
