"""How surprising is a unit's overlap with a concept? Null moments streamed in pass 2, p-values, BH.

Null model, per image i (see docs/significance.md):
  * pixel concepts: the unit's active region (a_i pixels) is placed at random in the image, independently
    of the label (l_i pixels of n). The sampling unit is one cell of the layer's activation map (the mask is
    decided at that resolution, so its pixels are not independent): with K cells per image the intersection
    has the hypergeometric mean a·l/n and variance a·l·(n−a)·(n−l) / (n²·(K−1)) (pixels, K sites).
    Neighbouring cells of a smooth map are not independent either: a unit whose masks come in clumps of
    c cells has only K/c independent sites, and K in the variance would make its p-values too small (on
    independent blurred-noise units, 21 % of p-values fell below 0.05). So pass 2 also measures each unit's
    clump size c, from the spatial autocovariance of its masks on the cell grid within ``CLUMP_RADIUS`` cells
    (1 for scattered masks), and the variance uses K/c sites.
  * whole-image concepts (scene, texture): the image label is assigned at random to k of the N_c annotated
    images, so the intersection Σ_{i has label} a_i is a sample without replacement of the unit's areas:
    mean k·ā, variance k·(N_c−k)/(N_c−1)·σ²(a).
  * pixel concepts, second null: the unit's masks are scored against the labels of a random other image
    (a permutation of images), mean Σ_p S_u(p)·T_l(p)/N from per-position counts S (unit on) and T (label).
    A pair is significant only if it beats both nulls (intersection-union test: the larger mean is used).
Sums over images give the mean and variance of the total intersection; a one-sided normal tail gives p.
Everything accumulated is a sum over images, so it is exact, mergeable and independent of batching.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.special import ndtr

from unitscope.stats._state import StateValue, StatsError, as_int, as_tensor, require_keys
from unitscope.stats.iou import MaskPixels
from unitscope.stats.labels import LabelBatch

_KIND = "NullMoments"
_SUMS = ("mean", "var", "area_sum", "area_sq", "images", "image_label_images", "unit_map", "label_map", "count",
         "spread", "near")
# Per chunk of masks: their units, and each mask's autocovariance at lag 0 and summed within CLUMP_RADIUS.
ClumpPart = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
CLUMP_RADIUS = 2  # cells: the window in which a mask's autocovariance counts toward its clump size
_CHUNK = 4096  # masks per step of the clump measurement ([chunk, h·w] float32 each)


def image_areas(active: torch.Tensor, image_of: torch.Tensor, unit_of: torch.Tensor, counts: torch.Tensor,
                num_units: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: active pixels of every unit [B, U] (from each mask's ``active`` count) and pixel-label
    areas [B, L] (from ``LabelBatch.label_counts``), float64."""
    areas = torch.zeros(counts.shape[0], num_units, dtype=torch.float64, device=counts.device)
    areas[image_of.to(counts.device), unit_of.to(counts.device)] = active.to(torch.float64)
    return areas, counts[:, 1:].to(torch.float64)


class NullMoments:
    """Streams the null mean and variance of every unit × label intersection (sums over images)."""

    def __init__(self, num_units: int, num_labels: int, num_categories: int, cells: int, pixels: int,
                 grid: tuple[int, int] | None = None) -> None:
        if min(num_units, num_labels, num_categories, pixels) < 1 or cells < 2:
            raise StatsError("NullMoments needs positive units, labels, categories, pixels and at least 2 cells")
        if grid is not None and grid[0] * grid[1] != cells:
            raise StatsError(f"NullMoments grid {grid} does not hold {cells} cells")
        self.pixels = pixels
        self.grid = grid  # the activation map's (h, w): without it no clump size is measured (c = 1)
        # Per pixel position, summed over images: how often each unit is on, and each label present. Their
        # product over N is the mean intersection when masks are scored against another image's labels.
        self.unit_map = torch.zeros(num_units, pixels, dtype=torch.float32)
        # label_map as its differences along the pixels: +1 where a run of a label begins in a map, -1 where it
        # ends (LabelBatch.position_edges), ~30 times fewer entries than pixels. Row 0 takes the runs of no label.
        self._label_edges = torch.zeros(num_labels + 1, pixels, dtype=torch.int32)
        self.count = torch.zeros(1, dtype=torch.float64)
        self.num_units, self.num_labels, self.num_categories, self.cells = num_units, num_labels, num_categories, cells
        self.mean = torch.zeros(num_units, num_labels, dtype=torch.float64)
        self.var = torch.zeros(num_units, num_labels, dtype=torch.float64)
        self.area_sum = torch.zeros(num_units, num_categories, dtype=torch.float64)
        self.area_sq = torch.zeros(num_units, num_categories, dtype=torch.float64)
        self.images = torch.zeros(num_categories, dtype=torch.float64)
        self.image_label_images = torch.zeros(num_labels, dtype=torch.float64)
        # Per unit, summed over its masks on the cell grid: the autocovariance at lag 0 and within CLUMP_RADIUS.
        self.spread = torch.zeros(num_units, dtype=torch.float64)
        self.near = torch.zeros(num_units, dtype=torch.float64)

    @property
    def label_map(self) -> torch.Tensor:
        """float32 [L, P]: in how many images each label is present at each pixel position (a new tensor)."""
        return torch.cumsum(self._label_edges[1:], dim=1, dtype=torch.int32).to(torch.float32)

    @label_map.setter
    def label_map(self, value: torch.Tensor) -> None:
        counts = value.to(torch.float64)
        if counts.dim() != 2 or not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()) or \
                not torch.equal(counts, counts.round()) or bool((counts >= 2**31).any()):
            raise StatsError("NullMoments label_map must hold whole image counts in [0, 2**31)")
        edges = torch.zeros(counts.shape[0] + 1, counts.shape[1], dtype=torch.int32, device=counts.device)
        edges[1:] = torch.diff(counts, dim=1, prepend=torch.zeros_like(counts[:, :1])).to(torch.int32)
        self._label_edges = edges

    def update(self, areas: torch.Tensor, label_areas: torch.Tensor, labels: LabelBatch,
               masks: MaskPixels | None = None, unit_of: torch.Tensor | None = None,
               clumps: list[ClumpPart] | None = None) -> None:
        """Fold in one batch: ``areas`` [B, U] active pixels, ``label_areas`` [B, L] pixel-label areas.

        ``masks`` and ``unit_of`` (the on pixels of the batch's masks and each mask's unit) feed the
        position maps of the permutation mean; without them only the within-image mean is kept.
        ``clumps``: ``clump_parts(masks, unit_of)`` when another thread already measured them.
        """
        device = areas.device
        if self.mean.device != device:
            for name in _SUMS:
                setattr(self, name, getattr(self, name).to(device))
        n = float(labels.num_pixels)
        if labels.num_pixels != self.pixels:
            raise StatsError(f"labels have {labels.num_pixels} pixels, NullMoments was built for {self.pixels}")
        self.count += len(labels)
        if masks is not None and unit_of is not None:
            keys = unit_of.to(device).index_select(0, masks.index.to(device)) * self.pixels + masks.pixel.to(device)
            # One 1.0 added per on pixel, in place: the same whole numbers as adding a bincount (exact in
            # float32 below 2**24 images) without a dense [U, P] count and its float32 copy per batch.
            self.unit_map.view(-1).index_add_(0, keys, torch.ones(1, dtype=torch.float32, device=device)
                                              .expand(keys.numel()))
            for units, spread, near in self.clump_parts(masks, unit_of) if clumps is None else clumps:
                self.spread.index_add_(0, units.to(device), spread.to(device))
                self.near.index_add_(0, units.to(device), near.to(device))
        begins, ends = (keys.to(device) for keys in labels.position_edges)
        edges = self._label_edges.view(-1)
        edges.index_add_(0, begins, torch.ones(1, dtype=torch.int32, device=device).expand(begins.numel()))
        edges.index_add_(0, ends, torch.full((1,), -1, dtype=torch.int32, device=device).expand(ends.numel()))
        self.mean += areas.T @ label_areas / n
        self.var += (areas * (n - areas)).T @ (label_areas * (n - label_areas)) / (n * n * (self.cells - 1))
        annotated = labels.annotated.to(device, torch.float64)
        self.area_sum += areas.T @ annotated
        self.area_sq += (areas * areas).T @ annotated
        self.images += annotated.sum(dim=0)
        if labels.image_numbers.numel() > 0:
            numbers = labels.image_numbers.to(device)
            self.image_label_images.index_add_(0, numbers, torch.ones_like(numbers, dtype=torch.float64))

    def _cell_of(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """int64 [sh * sw]: the cell of the activation grid each label pixel falls in (a lookup, not a division
        per on pixel)."""
        h, w = self.grid or (1, 1)
        sh, sw = size
        pixel = torch.arange(sh * sw, device=device)
        return (pixel // sw) * h // sh * w + (pixel % sw) * w // sw

    def clump_parts(self, masks: MaskPixels, unit_of: torch.Tensor) -> list[ClumpPart]:
        """Each mask's autocovariance on the cell grid (lag 0, and lags within CLUMP_RADIUS) with its unit, a
        chunk of masks at a time: what ``update`` folds into the units' sums. Reads no state but the grid, so
        a lane can measure a batch while the statistics fold the one before (the same bytes, folded in order)."""
        if self.grid is None:
            return []
        h, w = self.grid
        k = h * w
        unit_of = unit_of.to(masks.index.device)
        index, pixel = masks.index, masks.pixel
        cell = self._cell_of(masks.size, pixel.device).index_select(0, pixel)  # the map cell of each on pixel
        parts: list[ClumpPart] = []
        for first in range(0, masks.count, _CHUNK):
            count = min(_CHUNK, masks.count - first)
            if count == masks.count:  # one chunk holds every mask: no selection
                keys = index * k + cell
            else:
                keep = (index >= first) & (index < first + count)
                keys = (index[keep] - first) * k + cell[keep]
            grid = torch.zeros(count * k, dtype=torch.float32, device=unit_of.device)
            grid.index_add_(0, keys, torch.ones(1, dtype=torch.float32, device=unit_of.device).expand(len(keys)))
            m = grid.view(count, h, w).double()
            m = m - m.mean(dim=(1, 2), keepdim=True)  # centred: scattered masks add ~0 at every lag
            spread = (m * m).sum(dim=(1, 2))
            near = torch.zeros_like(spread)
            for dy in range(0, min(CLUMP_RADIUS, h - 1) + 1):
                for dx in range(-min(CLUMP_RADIUS, w - 1), min(CLUMP_RADIUS, w - 1) + 1):
                    if dy == 0 and dx <= 0:
                        continue  # each lag once: (dy, dx) and (-dy, -dx) are the same pairs
                    a = m[:, :h - dy, max(0, -dx):w - max(0, dx)]
                    b = m[:, dy:, max(0, dx):w - max(0, -dx)]
                    near += 2 * (a * b).sum(dim=(1, 2))
            parts.append((unit_of[first:first + count], spread, near))
        return parts

    def clump_sizes(self) -> torch.Tensor:
        """Each unit's clump size c ≥ 1 in cells (1 where unmeasured): K/c independent sites per image."""
        spread, near = self.spread.cpu(), self.near.cpu()
        size = torch.where(spread > 0, 1 + near / spread.clamp(min=1e-300), torch.ones_like(spread))
        return size.clamp(min=1.0, max=self.cells / 2)

    def merge(self, other: NullMoments) -> None:
        """Add another disjoint part of the probe set."""
        if (other.num_units, other.num_labels, other.num_categories, other.cells, other.pixels) != (
                self.num_units, self.num_labels, self.num_categories, self.cells, self.pixels):
            raise StatsError("NullMoments.merge needs a statistic of the same shape")
        for name in _SUMS:
            if name == "label_map":  # held as its differences, which add as the counts do
                self._label_edges += other._label_edges.to(self._label_edges.device)
            else:
                getattr(self, name).add_(getattr(other, name).to(self.mean.device))

    def moments(self, label_category: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Null mean and variance [U, L] of the total intersection (pixel and whole-image parts)."""
        category = label_category.cpu().clamp(min=0)
        n_c = self.images.cpu()[category]  # [L]
        mean_a = self.area_sum.cpu()[:, category] / n_c.clamp(min=1)
        var_a = (self.area_sq.cpu()[:, category] / n_c.clamp(min=1) - mean_a**2).clamp(min=0)
        k = self.image_label_images.cpu()
        whole_mean = k * mean_a
        whole_var = k * (n_c - k) / (n_c - 1).clamp(min=1) * var_a
        within = self.mean.cpu()
        if bool(self.unit_map.any()):
            # Permutation mean: every image's masks scored against the labels of a random image. Taking the
            # larger of the two means is the intersection-union test of both nulls (same variance, one-sided):
            # significant only if the overlap beats both the per-image amounts and the position habits.
            permuted = (self.unit_map.cpu().double() @ self.label_map.cpu().double().T) / self.count.cpu().clamp(min=1)
            within = torch.maximum(within, permuted)
        mean = within + whole_mean
        sites = self.cells / self.clump_sizes()  # independent sites per image, K/c ≥ 2
        var = self.var.cpu() * ((self.cells - 1) / (sites - 1))[:, None] + whole_var
        return mean.numpy(), var.numpy()

    def state_dict(self) -> dict[str, StateValue]:
        return {"num_units": self.num_units, "num_labels": self.num_labels,
                "num_categories": self.num_categories, "cells": self.cells, "pixels": self.pixels,
                **{name: getattr(self, name).clone() for name in _SUMS}}

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        keys = ("num_units", "num_labels", "num_categories", "cells", "pixels")
        require_keys(_KIND, state, [*keys, *_SUMS])
        shape = tuple(as_int(_KIND, state, k) for k in keys)
        if shape != (self.num_units, self.num_labels, self.num_categories, self.cells, self.pixels):
            raise StatsError(f"NullMoments state has shape {shape}; load an unmodified state_dict")
        for name in _SUMS:
            tensor = as_tensor(_KIND, state, name)
            if tensor.shape != getattr(self, name).shape:
                raise StatsError(f"NullMoments state entry {name!r} has the wrong shape")
            setattr(self, name, tensor.to(getattr(self, name).dtype))


def p_values(intersection: np.ndarray, mean: np.ndarray, var: np.ndarray, concept: np.ndarray,
             inflation: float = 1.0) -> np.ndarray:
    """One-sided normal p-values of the observed intersections; 1 where there is no variance or no concept."""
    spread = np.sqrt(np.maximum(var * inflation, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (intersection - mean) / spread
    p = np.where(spread > 0, ndtr(-z), 1.0)  # the normal tail, as scipy.stats.norm.sf computes it
    p = np.where(np.isfinite(p), p, 1.0)
    p[:, ~concept] = 1.0
    return np.asarray(p, dtype=np.float64)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) of all entries of ``p``, same shape."""
    flat = np.asarray(p, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return flat.reshape(np.shape(p))
    if np.any((flat < 0) | (flat > 1)) or not np.all(np.isfinite(flat)):
        raise StatsError("p-values must be finite and in [0, 1]")
    order = np.argsort(flat, kind="stable")
    ranked = flat[order] * flat.size / np.arange(1, flat.size + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty_like(flat)
    q[order] = np.minimum(ranked, 1.0)
    return q.reshape(np.shape(p))
