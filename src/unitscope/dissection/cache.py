"""An on-disk cache of one layer's activations: per image, only the cells pass 2 can need, appended.

Pass 2 turns each map into the mask ``Upsampler(map) > T`` (T: the unit's final threshold). A label pixel
interpolates at most 2x2 adjacent cells with non-negative weights summing to one, so it can be on only if
one of its cells is above T, up to float rounding. Pass 1 does not know T yet, but it knows a lower bound
``L <= T`` for each unit (the engine's ``cache_bound``: the smallest of the values its exact quantile keeps,
the ``keep``-th largest seen so far, which the final ``keep``-th largest, and so T, can only exceed). A row
keeps, per unit, the cells above ``L - margin`` ("hot": the margin covers rounding, as in ``sparse_masks``)
and every cell next to a hot one (3x3: all cells that share an interpolation stencil with it); the other
cells read back as the map's minimum, which is at or below ``L - margin``. So every pixel whose stencil
holds a hot cell reads the very same cells, and every other pixel stays off both ways: pass 2's masks,
and every count made from them, are the dense cache's bit for bit. Before the quantile keeps ``keep``
values there is no bound, and those first rows are stored whole.

Records have different sizes, so they are appended, and where each starts is part of pass 1's checkpoint,
as for the label cache: a resumed run cuts the file back to the checkpoint's end. Positional file I/O,
not a memory map, so resident memory does not grow with the probe set.

Record of one row ([U, h, w], P = h*w): float32 ``fill[U]``; ``count[U]``, the cells kept per unit (uint8
when P < 256, else uint16 or int32; padded to 4 bytes); float32 values of the kept cells, unit by unit,
row-major; the flat positions (uint8 when P <= 256, else uint16 or int32) of the kept cells of the units
not kept whole (``count < P``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from unitscope.errors import UsageError

_MISSING = -1
# As sparse_masks: interpolated values are within a few float32 units in the last place of the exact ones.
_ULPS: float = 16.0
_UNIT_ROUNDOFF: float = 2.0**-24
_TINY: float = 4 * torch.finfo(torch.float32).tiny


def adjacent_runs(count: int, joins: Callable[[int], bool]) -> Iterator[tuple[int, int]]:
    """``[start, end)`` spans of ``range(count)`` where ``joins(j)`` says item j continues item j - 1.

    Both caches read and write each such span in one positional call instead of one call per row.
    """
    start = 0
    while start < count:
        end = start + 1
        while end < count and joins(end):
            end += 1
        yield start, end
        start = end


def hot_limits(low: torch.Tensor, high: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """[B, U]: cells above these are hot, for maps with extremes ``low``, ``high`` [B, U] and bounds [U].

    ``bound - margin``: the margin covers the interpolation's rounding. A zero bound needs none (non-positive
    cells interpolate to a non-positive value), which keeps the zeros of sparse ReLU maps out.
    """
    limit = bound.to(torch.float32)[None, :]
    magnitude = torch.maximum(torch.maximum(low.abs(), high.abs()), limit.abs())
    margin = torch.where(limit == 0, 0.0, _ULPS * _UNIT_ROUNDOFF * magnitude + _TINY)
    return limit - margin


def near_hot(maps: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """bool [M, h, w]: cells of ``maps`` [M, h, w] with a cell above ``limits`` [M] among their 3x3 neighbours.

    numpy, not torch: its comparisons and ORs run several times faster on the CPU (stats/_select.py). A 3x3
    dilation, one axis at a time, on each map's flat cells so every step is one long run per map."""
    count, h, w = maps.shape
    hot = (maps > limits[:, None, None]).reshape(count, h * w)
    rows = hot.copy()
    rows[:, w:] |= hot[:, :-w]  # the cell above is hot
    rows[:, :-w] |= hot[:, w:]  # the cell below
    column = np.arange(h * w) % w
    near = rows.copy()
    near[:, 1:] |= rows[:, :-1] & (column[1:] != 0)  # the cell to the left, in the same row
    near[:, :-1] |= rows[:, 1:] & (column[:-1] != w - 1)  # to the right
    return near.reshape(count, h, w)


def kept_cells(maps: torch.Tensor, bound: torch.Tensor | None) -> torch.Tensor:
    """bool [B, U, h, w]: the cells of float32 ``maps`` a row keeps for lower bounds ``bound`` [U] (None: all)."""
    if bound is None:
        return torch.ones(maps.shape, dtype=torch.bool)
    flat = maps.flatten(2)
    limits = hot_limits(flat.amin(dim=2), flat.amax(dim=2), bound)
    return torch.from_numpy(near_hot(maps.flatten(0, 1).numpy(), limits.flatten().numpy())).view(maps.shape)


class ActivationCache:
    """Rows of float32 activations [units, h, w], one per probe image, kept sparsely (module docstring)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], n_rows: int, fresh: bool) -> None:
        self.path = path
        self.shape = shape
        units, h, w = shape
        self.pixels = h * w
        self.position_dtype = np.dtype(np.uint8 if self.pixels <= 2**8 else
                                       np.uint16 if self.pixels <= 2**16 else np.int32)
        self.count_dtype = np.dtype(np.uint8 if self.pixels < 2**8 else np.uint16 if self.pixels < 2**16 else np.int32)
        self.counts_bytes = -(-units * self.count_dtype.itemsize // 4) * 4  # the values after them stay aligned
        self.offsets = np.full(n_rows, _MISSING, dtype=np.int64)
        self.sizes = np.zeros(n_rows, dtype=np.int64)
        self.end = 0
        self.bound_max = torch.full((units,), -torch.inf, dtype=torch.float32)  # largest bound any row used
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0), 0o644)

    def resume(self, state: object) -> None:
        """Continue from a checkpoint's ``state_dict`` (None: start empty), dropping rows written after it."""
        if state is None:
            self.offsets[:], self.sizes[:], self.end = _MISSING, 0, 0
            self.bound_max.fill_(-torch.inf)
        else:
            got = state if isinstance(state, dict) else {}
            offsets, sizes, end, bound = (got.get(k) for k in ("offsets", "sizes", "end", "bound_max"))
            if (not isinstance(offsets, torch.Tensor) or not isinstance(sizes, torch.Tensor)
                    or not isinstance(bound, torch.Tensor) or not isinstance(end, int)
                    or offsets.shape != self.offsets.shape or sizes.shape != self.sizes.shape
                    or bound.shape != self.bound_max.shape or os.fstat(self._fd).st_size < end):
                raise UsageError(f"the activation cache {self.path} does not fit its checkpoint; "
                                 "pass --overwrite to start afresh")
            self.offsets, self.sizes, self.end = offsets.numpy().copy(), sizes.numpy().copy(), end
            self.bound_max = bound.to(torch.float32).clone()
        os.ftruncate(self._fd, self.end)

    def state_dict(self) -> dict[str, object]:
        return {"offsets": torch.from_numpy(self.offsets.copy()), "sizes": torch.from_numpy(self.sizes.copy()),
                "end": self.end, "bound_max": self.bound_max.clone()}

    def write(self, rows: np.ndarray, values: torch.Tensor | np.ndarray, bound: torch.Tensor | None = None,
              extremes: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Append ``values[j]`` ([B, U, h, w], any layout) as row ``rows[j]``, keeping the cells ``bound`` [U]
        allows; ``extremes``: each map's (min, max) [B, U] when the caller has them."""
        maps = torch.as_tensor(values).detach().to("cpu", torch.float32)
        count, units = len(rows), self.shape[0]
        flat = maps.flatten(2)
        low, high = ((flat.amin(dim=2), flat.amax(dim=2)) if extremes is None  # [B, U]
                     else (extremes[0].to("cpu", torch.float32), extremes[1].to("cpu", torch.float32)))
        grid = maps.numpy()  # any layout; the selections below copy what they keep
        if bound is None:
            image_of, unit_of = np.divmod(np.arange(count * units), units)
            chosen = np.ascontiguousarray(grid).reshape(count * units, *self.shape[1:])
            kept = np.ones(chosen.shape, dtype=bool)
        else:
            bound = bound.detach().to("cpu", torch.float32)
            self.bound_max = torch.maximum(self.bound_max, bound)
            limits = hot_limits(low, high, bound).numpy()
            image_of, unit_of = np.nonzero(high.numpy() > limits)  # the maps with a hot cell, row by row, unit by unit
            chosen = grid[image_of, unit_of]  # [M, h, w]; the other maps keep nothing
            kept = near_hot(chosen, limits[image_of, unit_of])
        sizes = np.count_nonzero(kept.reshape(len(kept), self.pixels), axis=1)  # [M]
        counts = np.zeros((count, units), dtype=np.int64)
        counts[image_of, unit_of] = sizes
        values_all = chosen[kept]
        partial = sizes < self.pixels
        where_all = (np.flatnonzero(kept[partial]) % self.pixels).astype(self.position_dtype)
        value_ends = np.cumsum(counts.sum(axis=1))
        where_ends = np.cumsum(np.where(counts < self.pixels, counts, 0).sum(axis=1))
        fills = low.numpy()
        counts_np = np.zeros((count, self.counts_bytes // self.count_dtype.itemsize), dtype=self.count_dtype)
        counts_np[:, :units] = counts
        parts = []
        for j, row in enumerate(rows):
            v0, w0 = (int(value_ends[j - 1]), int(where_ends[j - 1])) if j else (0, 0)
            record = b"".join([fills[j].tobytes(), counts_np[j].tobytes(), values_all[v0:int(value_ends[j])].tobytes(),
                               where_all[w0:int(where_ends[j])].tobytes()])
            self.offsets[row], self.sizes[row] = self.end, len(record)
            self.end += len(record)
            parts.append(record)
        if parts:
            blob = b"".join(parts)
            os.pwrite(self._fd, blob, self.end - len(blob))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows as float32 [len(rows), units, h, w]: kept cells exact, the others at their map's minimum."""
        out = np.empty((len(rows), *self.shape), dtype=np.float32)

        def follows(j: int) -> bool:  # record j starts where record j - 1 ends in the file
            return bool(self.offsets[rows[j]] == self.offsets[rows[j - 1]] + self.sizes[rows[j - 1]])

        for start, end in adjacent_runs(len(rows), follows):
            first = int(self.offsets[rows[start]])
            if first == _MISSING:
                raise UsageError(f"image {int(rows[start])} is missing from the activation cache {self.path}; "
                                 "pass --overwrite to start afresh")
            size = int(self.offsets[rows[end - 1]] + self.sizes[rows[end - 1]]) - first
            raw = os.pread(self._fd, size, first)
            place = 0
            for j in range(start, end):
                length = int(self.sizes[rows[j]])
                self._decode(raw[place:place + length], out[j])
                place += length
        return out

    def _decode(self, raw: bytes, out: np.ndarray) -> None:
        units, pixels = self.shape[0], self.pixels
        flat = out.reshape(units, pixels)
        counts = np.frombuffer(raw, self.count_dtype, units, 4 * units).astype(np.int64)
        total = int(counts.sum())
        values = np.frombuffer(raw, np.float32, total, 4 * units + self.counts_bytes)
        if total == units * pixels:
            flat[:] = values.reshape(units, pixels)
            return
        flat[:] = np.frombuffer(raw, np.float32, units)[:, None]
        unit_of = np.repeat(np.arange(units), counts)
        partial = (counts < pixels)[unit_of]
        position = np.empty(total, dtype=np.int64)
        position[partial] = np.frombuffer(raw, self.position_dtype, int(partial.sum()),
                                          4 * units + self.counts_bytes + 4 * total)
        if not partial.all():
            whole = ~partial
            position[whole] = np.arange(total)[whole] - (np.cumsum(counts) - counts)[unit_of[whole]]
        flat.reshape(-1)[unit_of * pixels + position] = values

    def check_covers(self, threshold: torch.Tensor, layer: str) -> None:
        """The rows kept what pass 2 needs only if no row's bound exceeds its unit's final threshold."""
        over = torch.nonzero(self.bound_max > threshold)
        if len(over):
            unit = int(over[0, 0])
            raise RuntimeError(f"layer {layer}, unit {unit}: the activation cache was written for a bound of "
                               f"{float(self.bound_max[unit])!r}, above the threshold {float(threshold[unit])!r}")

    def flush(self) -> None:
        """Make appended records durable before a checkpoint claims them."""
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
