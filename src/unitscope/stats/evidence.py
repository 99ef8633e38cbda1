"""What pass 2 keeps, beyond the overlap totals, for significance and the bootstrap: one hook per batch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from unitscope.stats._state import StateValue, StatsError
from unitscope.stats.bootstrap import ImageCounts
from unitscope.stats.iou import MaskCounts, MaskPixels
from unitscope.stats.labels import LabelBatch
from unitscope.stats.significance import ClumpPart, NullMoments, image_areas


class LabelEvidence:
    """Null moments (for p-values) and sparse per-image counts (for the bootstrap) of one layer."""

    def __init__(self, num_units: int, num_labels: int, num_categories: int, cells: int, pixels: int,
                 grid: tuple[int, int] | None = None, spill: Path | None = None) -> None:
        self.num_units = num_units
        grid = grid if grid is not None and grid[0] * grid[1] == cells and cells >= 2 else None
        self.moments = NullMoments(num_units, num_labels, num_categories, max(cells, 2), pixels, grid)
        self.counts = ImageCounts(num_units, num_labels, spill)  # spill: the per-image rows go to files there

    def update(self, masks: MaskPixels, image_of: torch.Tensor, unit_of: torch.Tensor, labels: LabelBatch,
               images: np.ndarray, counts: MaskCounts | None = None, clumps: list[ClumpPart] | None = None) -> None:
        """Count one batch of pass 2 (the same on pixels ConceptOverlap counted); ``counts``: their label
        counts as ConceptOverlap.update_counts got them (built here when not given); ``clumps``: the masks'
        ``NullMoments.clump_parts`` (measured here when not given)."""
        counts = MaskCounts.build(masks, image_of, labels) if counts is None else counts
        label_counts = labels.label_counts
        areas, label_areas = image_areas(counts.active, image_of, unit_of, label_counts, self.num_units)
        self.moments.update(areas, label_areas, labels, masks, unit_of, clumps)
        self.counts.update(counts, image_of, unit_of, labels, images, label_counts)

    def merge(self, other: LabelEvidence) -> None:
        """Add another disjoint part of the probe set (a rank's shard)."""
        self.moments.merge(other.moments)
        self.counts.merge(other.counts)

    def state_dict(self) -> dict[str, StateValue]:
        """For a checkpoint: spilled per-image rows are recorded by their counts (ImageCounts.state_dict)."""
        return {"moments": self.moments.state_dict(), "counts": self.counts.state_dict()}  # type: ignore[dict-item]

    def export_state(self) -> dict[str, StateValue]:
        """Everything in memory, per-image rows included: what another process (a rank merging) can load."""
        return {"moments": self.moments.state_dict(), "counts": self.counts.export_state()}  # type: ignore[dict-item]

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        moments, counts = state.get("moments"), state.get("counts")
        if not isinstance(moments, Mapping) or not isinstance(counts, Mapping):
            raise StatsError("LabelEvidence state needs 'moments' and 'counts'; load an unmodified state_dict")
        self.moments.load_state_dict(moments)
        self.counts.load_state_dict(counts)
