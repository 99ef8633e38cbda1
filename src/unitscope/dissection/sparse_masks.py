"""Thresholded upsampled maps computed only near the cells that can exceed the threshold.

``Upsampler(maps) > threshold`` (the dense reference) interpolates every label pixel of every map, yet
above a high quantile almost every pixel is off. An interpolated pixel is a combination of at most 2x2
source cells with non-negative weights summing to one, so it can exceed the threshold only if one of
its cells does (up to float rounding, handled below). Along each axis the label pixels fall into runs
that use the same one or two adjacent cells (their taps: the non-zero entries of the dense matrix
row); cut into tiles of at most T pixels, these runs partition the label grid into tiles that each
depend on at most 2x2 cells. We interpolate only the tiles with a hot cell, from their 2x2 cells with
the very weights of the dense matrices, and scatter the pixels found on into a zero-initialised mask.

Exactness, whatever the summation order or FMA use of the float32 matrix product: every interpolated
value is a sum of at most two products per axis, so the dense and the windowed value each lie within
about 4 units in the last place (u = 2**-24) of the largest |cell| they use of the exact value.
- Cells above ``threshold - margin`` count as hot, ``margin = 16 u max(max|map|, |threshold|)``: a pixel
  whose cells are all below that cannot round above the threshold in the dense product either. A zero
  threshold needs no margin (a sum of non-positive products stays non-positive), which keeps dead
  units (threshold 0, all-zero maps after a ReLU) free.
- A windowed value within ``16 u max|2x2 cells|`` of the threshold is unsure; those pixels take the
  dense ``Upsampler``'s own value (rare: it takes a near-tie at the threshold).
So the masks equal the dense reference's bit for bit, and so do the overlap counts made from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.dissection.upsample import Upsampler
from unitscope.stats._select import flat_nonzero, greater
from unitscope.stats.iou import MaskPixels

# Tolerances in float32 units in the last place; the analysis above needs about 11.
_ULPS: float = 16.0
_UNIT_ROUNDOFF: float = 2.0**-24
# Absolute slack for products that underflow to subnormals.
_TINY: float = 4 * torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class _AxisTiles:
    """One axis of the label grid cut into tiles of at most T label indices sharing their 1-2 taps."""

    first: torch.Tensor  # [n] int64, first source cell of tile t
    second: torch.Tensor  # [n] int64, second source cell (== first for one-tap tiles)
    start: torch.Tensor  # [n] int64, first label index of tile t
    valid: torch.Tensor  # [n, T] bool, position a < the tile's length
    weights: torch.Tensor  # [n, T, 2] float32, dense weights of (first, second) at label index start + a; NaN
    # where a is past the tile's end
    uses: torch.Tensor  # [n, n_in] float32, 1 where tile t reads the source cell (first or second)

    @classmethod
    def build(cls, matrix: torch.Tensor) -> _AxisTiles:
        """Tiles of an interpolation matrix [n_out, n_in] (each row: 1 or 2 adjacent non-negative taps)."""
        n_out, n_in = matrix.shape
        used = matrix != 0
        first = used.to(torch.int8).argmax(dim=1)
        second = n_in - 1 - used.flip(1).to(torch.int8).argmax(dim=1)
        if bool((matrix < 0).any()) or not bool(used.any(dim=1).all()) or bool((second - first > 1).any()):
            raise ValueError("windowed masks need interpolation matrices with 1 or 2 adjacent non-negative "
                             "taps per row; build them with Upsampler.build")
        key = first * n_in + second
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), torch.nonzero(key[1:] != key[:-1])[:, 0] + 1])
        lengths = torch.diff(starts, append=torch.tensor([n_out]))
        two_taps = (second != first)[starts]
        span = int(lengths[two_taps].max()) if bool(two_taps.any()) else int(lengths.max())
        pieces = (lengths + span - 1) // span  # runs longer than the span become several tiles
        run = torch.repeat_interleave(torch.arange(len(starts)), pieces)
        within = torch.arange(len(run)) - torch.repeat_interleave(pieces.cumsum(0) - pieces, pieces)
        start = starts[run] + within * span
        length = torch.minimum(lengths[run] - within * span, torch.tensor(span))
        offsets = torch.arange(span)
        valid = offsets[None, :] < length[:, None]  # [n, T]
        label = (start[:, None] + offsets[None, :]).clamp(max=n_out - 1)
        tile_first, tile_second = first[start], second[start]
        weights = torch.stack([matrix[label, tile_first[:, None]],
                               torch.where(tile_second == tile_first, 0.0, 1.0)[:, None]
                               * matrix[label, tile_second[:, None]]], dim=2)
        weights = torch.where(valid[:, :, None], weights, torch.nan)  # NaN past the end: never on
        uses = torch.zeros(len(start), n_in, dtype=torch.float32)
        uses[torch.arange(len(start)), tile_first] = 1.0
        uses[torch.arange(len(start)), tile_second] = 1.0
        return cls(tile_first, tile_second, start, valid, weights.to(matrix.dtype), uses)

    def to(self, device: torch.device | str) -> _AxisTiles:
        return _AxisTiles(*(getattr(self, f).to(device)
                            for f in ("first", "second", "start", "valid", "weights", "uses")))


@dataclass(frozen=True)
class WindowedMasks:
    """``Upsampler(maps) > thresholds``, computed only in the tiles of the cells near or above them."""

    upsampler: Upsampler
    rows: _AxisTiles
    cols: _AxisTiles

    @classmethod
    def build(cls, upsampler: Upsampler) -> WindowedMasks:
        """Tiles for one layer's ``Upsampler`` (either mode), on the upsampler's device."""
        device = upsampler.rows.device
        return cls(upsampler, _AxisTiles.build(upsampler.rows.cpu()).to(device),
                   _AxisTiles.build(upsampler.cols.cpu()).to(device))

    @property
    def label_size(self) -> tuple[int, int]:
        return int(self.upsampler.rows.shape[0]), int(self.upsampler.cols.shape[0])

    @property
    def feature_size(self) -> tuple[int, int]:
        return int(self.upsampler.rows.shape[1]), int(self.upsampler.cols.shape[1])

    def to(self, device: torch.device | str) -> WindowedMasks:
        return WindowedMasks(self.upsampler.to(device), self.rows.to(device), self.cols.to(device))

    def active_pairs(self, activations: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, unit) indices of the maps of ``activations`` [B, U, h, w] whose masks may be non-empty."""
        acts = activations.float()
        flat = acts.flatten(2)
        low, high = flat.amin(dim=2), flat.amax(dim=2)  # [B, U]; on the CPU ~7x faster than one aminmax
        limit = thresholds.to(acts.device, torch.float32)
        hot = high > limit - _margin(torch.maximum(high.abs(), low.abs()), limit)
        image_of, unit_of = torch.nonzero(hot, as_tuple=True)
        return image_of, unit_of

    def __call__(self, maps: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        """bool [M, sh, sw]: ``maps`` [M, h, w] upsampled and compared with ``thresholds`` [M]."""
        return self.pixels(maps, thresholds).dense()

    def pixels(self, maps: torch.Tensor, thresholds: torch.Tensor) -> MaskPixels:
        """The on pixels of ``Upsampler(maps) > thresholds`` for ``maps`` [M, h, w], ``thresholds`` [M]."""
        maps = maps.float()
        count, h, w = maps.shape
        sh, sw = self.label_size
        if (h, w) != self.feature_size or thresholds.shape != (count,):
            raise ValueError(f"maps {tuple(maps.shape)} and thresholds {tuple(thresholds.shape)} do not fit "
                             f"an upsampler of {self.feature_size[0]}x{self.feature_size[1]} maps")
        limit = thresholds.to(maps.device, torch.float32)
        hot = greater(maps, (limit - _margin(maps.abs().flatten(1).amax(dim=1), limit))[:, None, None])
        rows, cols = self.rows, self.cols
        # Hot cells read by each tile, counted by a 0/1 product (exact: small integers); > 0 is "any is hot".
        readers = torch.matmul(torch.matmul(rows.uses, hot.to(torch.float32)), cols.uses.T)  # [M, tiles, tiles]
        down, across_tiles = readers.shape[1], readers.shape[2]
        which = flat_nonzero(readers > 0)  # the tiles with a hot cell, mask by mask
        tile_map, tile = which // (down * across_tiles), which % (down * across_tiles)
        tile_row, tile_col = tile // across_tiles, tile % across_tiles
        # The 2x2 cells of each tile: cells[:, k, l] = map[first/second row k, first/second col l].
        cell_rows = torch.stack([rows.first.index_select(0, tile_row), rows.second.index_select(0, tile_row)], dim=1)
        cell_cols = torch.stack([cols.first.index_select(0, tile_col), cols.second.index_select(0, tile_col)], dim=1)
        cells = torch.take(maps, (tile_map[:, None, None] * h + cell_rows[:, :, None]) * w + cell_cols[:, None, :])
        # rows @ (maps @ cols.T) tile by tile, as products of the 2x2 cells with each tile's 2-tap weights; its
        # rounding may differ from the dense product's by a few units in the last place, which the slack below
        # covers. Past a tile's end the weights are NaN, so those values compare False.
        values = _interpolate(cells, cols.weights.index_select(0, tile_col), rows.weights.index_select(0, tile_row))
        slack = _ULPS * _UNIT_ROUNDOFF * cells.abs().flatten(1).amax(dim=1) + _TINY  # [K]
        limit_of = limit.index_select(0, tile_map)
        on = greater(values, (limit_of + slack)[:, None, None])  # surely on in the dense product too
        maybe = greater(values, (limit_of - slack)[:, None, None])
        per_tile = on.shape[1] * on.shape[2]
        within = (torch.arange(on.shape[1], device=maps.device)[:, None] * sw
                  + torch.arange(on.shape[2], device=maps.device)[None, :]).view(-1)
        first_pixel = rows.start.index_select(0, tile_row) * sw + cols.start.index_select(0, tile_col)  # [K]

        def locate(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Mask and pixel of positions in the flattened [K, Tr, Tc] values."""
            if flat.device.type == "cpu":  # numpy's division by a constant and gathers: ~3x torch's on the CPU
                tile_np, place_np = np.divmod(flat.numpy(), per_tile)
                return (torch.from_numpy(tile_map.numpy()[tile_np]),
                        torch.from_numpy(first_pixel.numpy()[tile_np] + within.numpy()[place_np]))
            tile = torch.div(flat, per_tile, rounding_mode="floor")
            place = within.index_select(0, flat - tile * per_tile)
            return tile_map.index_select(0, tile), first_pixel.index_select(0, tile) + place

        index, pixel = locate(flat_nonzero(on))
        unsure = flat_nonzero(on ^ maybe)
        if len(unsure):  # near-ties (rare): ask the dense product itself about these pixels
            unsure_map, unsure_pixel = locate(unsure)
            redo, which = _unique(unsure_map, count)
            dense = self.upsampler(maps[redo]).flatten(1)  # [R, sh*sw]
            also = dense[which, unsure_pixel] > limit[unsure_map]
            index = torch.cat([index, unsure_map[also]])
            pixel = torch.cat([pixel, unsure_pixel[also]])
        return MaskPixels(index, pixel, count, (sh, sw))


def _unique(values: torch.Tensor, bound: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(values, return_inverse=True)`` for integers in [0, bound): a presence table and its running
    count, not a sort (torch's sorted unique was a fifth of this module's CPU time)."""
    if values.device.type == "cpu":
        present = np.zeros(bound, dtype=bool)
        present[values.numpy()] = True
        rank = np.cumsum(present) - 1
        return torch.from_numpy(np.flatnonzero(present)), torch.from_numpy(rank[values.numpy()])
    present_t = torch.zeros(bound, dtype=torch.bool, device=values.device)
    present_t[values] = True
    return torch.nonzero(present_t)[:, 0], (torch.cumsum(present_t, 0) - 1)[values]


def _interpolate(cells: torch.Tensor, across: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """[K, Tr, Tc] ``down @ cells @ across.T`` for 2x2 ``cells`` [K, 2, 2], weights ``across`` [K, Tc, 2] and
    ``down`` [K, Tr, 2]. On the CPU numpy's stacked matmul is ~15x faster than torch's elementwise sums or
    ``bmm`` on these tiny matrices; its rounding (fused or not) stays within the slack the caller allows."""
    if cells.device.type == "cpu":
        inner = np.matmul(cells.numpy(), across.numpy().transpose(0, 2, 1))  # [K, 2, Tc]
        return torch.from_numpy(np.matmul(down.numpy(), inner))
    return torch.matmul(down, torch.matmul(cells, across.transpose(1, 2)))


def _margin(magnitude: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """How far below the threshold a cell may lie and still round above it once interpolated."""
    margin = _ULPS * _UNIT_ROUNDOFF * torch.maximum(magnitude, thresholds.abs()) + _TINY
    return torch.where(thresholds == 0, torch.zeros_like(margin), margin)
