"""Exact per-unit upper quantile of activations, streamed: Network Dissection's unit threshold.

numpy's default ('linear') quantile at level p of N values interpolates between the sorted values at
ranks floor((N-1)p) and floor((N-1)p)+1. For an upper quantile (p = 1-q, q small) both lie among the
ceil(qN)+2 largest values, so keeping only those per unit gives the exact answer in bounded memory.
A multiset of largest values does not depend on the order of arrival, so the state is the same for any
batch size and any order of merged parts.

Memory: ``num_units * keep * itemsize`` bytes at rest, ``keep = min(N, ceil(q*N)+2)``; new values are
buffered and cut back to ``keep`` once the buffer exceeds ``keep``, so a reduction briefly holds about
three times that plus one batch, of which a block of units at a time is joined (with ``torch.topk``'s int64
indices). The constructor refuses a resting size above ``max_bytes``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Mapping

import torch

from unitscope.stats._select import greater, masked, row_counts
from unitscope.stats._state import (
    StateValue,
    StatsError,
    as_int,
    as_tensor,
    check_kind,
    check_same_args,
    require_keys,
)

DEFAULT_MAX_BYTES: int = 2 * 1024**3
REDUCE_BYTES = 8 * 2**20  # joined values reduced at once (then topk's indices, twice that)
_KIND = "TopQuantile"


def interpolation_ranks(quantile: float, total: int) -> tuple[int, int, float]:
    """numpy's linear method for the (1 - quantile) level: ascending ranks (lo, hi) and weight gamma."""
    virtual = (total - 1) * (1.0 - quantile)
    if virtual >= total - 1:
        return total - 1, total - 1, 0.0
    lo = math.floor(virtual)
    return lo, lo + 1, virtual - lo


def keep_count(quantile: float, total: int) -> int:
    """How many of the largest values per unit the exact threshold needs: ceil(q*N)+2, at most N."""
    lo, _, _ = interpolation_ranks(quantile, total)
    return min(total, max(math.ceil(quantile * total) + 2, total - lo))


def numpy_lerp(low: torch.Tensor, high: torch.Tensor, gamma: float) -> torch.Tensor:
    """numpy's ``_lerp``, operation for operation, so results agree with ``np.quantile`` to the bit."""
    diff = high - low
    if gamma >= 0.5:
        return high - diff * (1.0 - gamma)
    return low + diff * gamma


class TopQuantile:
    """Exact per-unit upper quantile: keeps the ceil(q*N)+2 largest values of each unit.

    ``quantile`` q = 0.005 gives the threshold above which 0.5% of a unit's values lie, equal to
    ``np.quantile(values, 1 - q)``. ``total_per_unit`` is N, the number of values every unit will
    see (n_images * h * w). Values are stored as ``dtype`` (float32 by default; float16/bfloat16
    activations convert exactly). State lives on the device of the values given to ``update``.
    """

    def __init__(
        self,
        num_units: int,
        quantile: float,
        total_per_unit: int,
        *,
        dtype: torch.dtype = torch.float32,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
            raise StatsError(f"num_units must be a positive integer, got {num_units!r}")
        if not isinstance(quantile, int | float) or not 0.0 <= float(quantile) <= 1.0:
            raise StatsError(f"quantile must be a fraction in [0, 1] (0.005 = top 0.5%), got {quantile!r}")
        if isinstance(total_per_unit, bool) or not isinstance(total_per_unit, int) or total_per_unit < 1:
            raise StatsError(f"total_per_unit must be a positive integer, got {total_per_unit!r}")
        if not dtype.is_floating_point:
            raise StatsError(f"dtype must be a floating-point torch dtype, got {dtype}")
        self.num_units = num_units
        self.quantile = float(quantile)
        self.total_per_unit = total_per_unit
        self.dtype = dtype
        self.keep = keep_count(self.quantile, total_per_unit)
        size = num_units * self.keep * torch.finfo(dtype).bits // 8
        if size > max_bytes:
            raise StatsError(
                f"TopQuantile would keep {self.keep} values for each of {num_units} units "
                f"({size / 1024**3:.2f} GiB > max_bytes {max_bytes / 1024**3:.2f} GiB); "
                "use fewer probe images, count values at the layer's own resolution, or raise max_bytes"
            )
        self.count = 0
        self._kept = torch.empty(num_units, 0, dtype=dtype)
        self._pending: list[torch.Tensor] = []
        self._pending_count = 0
        self._floor: torch.Tensor | None = None
        self._floor_of: weakref.ref[torch.Tensor] | None = None  # the kept values the floor was taken from

    @property
    def device(self) -> torch.device:
        return self._kept.device

    def update(self, values: torch.Tensor) -> None:
        """Add n more values of every unit: ``values`` is [num_units, n] float (e.g. a batch's B*h*w)."""
        if not isinstance(values, torch.Tensor) or values.ndim != 2 or values.shape[0] != self.num_units:
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise StatsError(
                f"TopQuantile.update needs a [{self.num_units}, n] tensor, got {shape}; "
                "reshape activations [B, U, h, w] with .transpose(0, 1).reshape(U, -1)"
            )
        if not values.is_floating_point():
            raise StatsError(f"TopQuantile.update needs floating-point values, got {values.dtype}")
        n = values.shape[1]
        if self.count + n > self.total_per_unit:
            raise StatsError(
                f"TopQuantile got {self.count + n} values per unit but was built for {self.total_per_unit}; "
                "pass total_per_unit = n_images * h * w and feed every image once"
            )
        if n == 0:
            return
        # A sum is NaN if any value is (and, rarely, when infinities of both signs meet): cheaper than
        # marking every value, and the exact test runs only then.
        if bool(torch.isnan(values.sum())) and bool(torch.isnan(values).any()):
            raise StatsError("activations contain NaN; check the model's weights and input normalisation")
        if values.device != self.device:
            self._to(values.device)  # state follows the input (e.g. a CPU checkpoint resumed on GPU)
        candidates = self._candidates(values.detach().to(self.device, self.dtype))
        if candidates.shape[1] > 0:
            self._pending.append(candidates)
            self._pending_count += candidates.shape[1]
        self.count += n
        self._reduce_if_full()

    def _candidates(self, values: torch.Tensor) -> torch.Tensor:
        """The new values that may still enter the top ``keep``, as a new [U, m] tensor, m <= n.

        Once ``keep`` values are kept, a new value at or below a unit's smallest kept value (its
        floor) cannot change that unit's multiset of largest values. So only values above the floor
        are buffered, each unit's row padded with copies of its floor, which are equally inert.
        """
        lowest = self.floor()  # None until keep values are kept
        if lowest is None:
            return values.clone()
        floor = lowest[:, None]
        above = greater(values, floor)
        counts = row_counts(above)
        most = int(counts.max())
        if most * 2 > values.shape[1]:
            return values.clone()
        picked = masked(values, above)  # row-major: unit 0's values first
        unit = torch.repeat_interleave(torch.arange(self.num_units, device=values.device), counts)
        column = torch.arange(picked.shape[0], device=values.device) - (counts.cumsum(0) - counts)[unit]
        rows = floor.expand(self.num_units, most).clone()
        rows[unit, column] = picked
        return rows

    def floor(self) -> torch.Tensor | None:
        """[num_units]: each unit's smallest kept value once ``keep`` are kept (else None), a lower bound of
        its final threshold: the final ``keep``-th largest value, at or below the threshold, can only be larger."""
        if self._kept.shape[1] < self.keep:
            return None
        source = self._floor_of() if self._floor_of is not None else None
        if source is not self._kept or self._floor is None:  # recomputed only when the kept values changed
            self._floor, self._floor_of = self._kept.min(dim=1).values, weakref.ref(self._kept)
        return self._floor

    def merge(self, other: TopQuantile) -> None:
        """Fold in the state of another part of the probe set (disjoint images)."""
        check_kind(_KIND, other, TopQuantile, self)
        check_same_args(_KIND, "merge", self._args(), other._args())
        check_same_args(_KIND, "merge", {"dtype": self.dtype}, {"dtype": other.dtype})
        if self.count + other.count > self.total_per_unit:
            raise StatsError(
                f"merged TopQuantile parts hold {self.count + other.count} values per unit, more than "
                f"total_per_unit {self.total_per_unit}; merge parts covering disjoint images"
            )
        if self.count == 0:
            self._to(other.device)
        for part in [other._kept, *other._pending]:
            self._pending.append(part.to(self.device))
            self._pending_count += part.shape[1]
        self.count += other.count
        self._reduce_if_full()

    def thresholds(self, count: int | None = None) -> torch.Tensor:
        """[num_units] float64: ``np.quantile(all values of the unit, 1 - quantile)`` (linear method).

        Needs all ``total_per_unit`` values, unless ``count`` says how many were really fed (images
        skipped as unreadable): then it must match, and the quantile is over those ``count`` values.
        """
        expected = self.total_per_unit if count is None else count
        if self.count != expected or self.count == 0:
            raise StatsError(
                f"TopQuantile has seen {self.count} values per unit, expected {expected} "
                f"(built for {self.total_per_unit}); feed every probe image once, or pass the count fed"
            )
        if keep_count(self.quantile, self.count) > self.keep:
            raise StatsError(
                f"TopQuantile kept {self.keep} values per unit, too few for {self.count} values; "
                "build it with total_per_unit no larger than what will be fed"
            )
        top = self._canonical()
        lo, hi, gamma = interpolation_ranks(self.quantile, self.count)
        low = top[:, self.count - 1 - lo].to(torch.float64)
        high = top[:, self.count - 1 - hi].to(torch.float64)
        return numpy_lerp(low, high, gamma)

    def state_dict(self) -> dict[str, StateValue]:
        """Arguments, count and the kept values (sorted descending, so equal states compare equal)."""
        return {
            **self._args(),
            "count": self.count,
            "values": self._canonical().clone(),
        }

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state written by ``state_dict`` of a TopQuantile built with the same arguments."""
        require_keys(_KIND, state, [*self._args(), "count", "values"])
        theirs = {
            "num_units": as_int(_KIND, state, "num_units"),
            "quantile": float(state["quantile"]),
            "total_per_unit": as_int(_KIND, state, "total_per_unit"),
        }
        check_same_args(_KIND, "load", self._args(), theirs)
        count = as_int(_KIND, state, "count")
        values = as_tensor(_KIND, state, "values")
        check_same_args(_KIND, "load", {"dtype": self.dtype}, {"dtype": values.dtype})
        expected = (self.num_units, min(self.keep, count))
        if not 0 <= count <= self.total_per_unit or tuple(values.shape) != expected:
            raise StatsError(
                f"TopQuantile state is inconsistent (count {count}, values {tuple(values.shape)}, "
                f"expected {expected}); load an unmodified state_dict"
            )
        self.count = count
        self._kept = values
        self._pending = []
        self._pending_count = 0

    def _args(self) -> dict[str, int | float]:
        return {
            "num_units": self.num_units,
            "quantile": self.quantile,
            "total_per_unit": self.total_per_unit,
        }

    def _to(self, device: torch.device) -> None:
        self._kept = self._kept.to(device)
        self._pending = [p.to(device) for p in self._pending]

    def _reduce_if_full(self) -> None:
        if self._pending_count > self.keep:
            self._reduce()

    def _reduce(self) -> None:
        """Cut kept + pending back to the ``keep`` largest values of each unit.

        A few units at a time (REDUCE_BYTES of joined values each), so the reduction's joined copy and
        ``topk``'s int64 indices are a block's, not every unit's: a large probe's buffers grow with it, these
        need not. Each unit's multiset of largest values is the same either way."""
        if not self._pending:
            return
        width = self._kept.shape[1] + self._pending_count
        if width <= self.keep:
            self._kept = torch.cat([self._kept, *self._pending], dim=1)
        else:
            kept = torch.empty(self.num_units, self.keep, dtype=self.dtype, device=self.device)
            for rows in self._unit_blocks(width):
                joined = torch.cat([self._kept[rows], *(part[rows] for part in self._pending)], dim=1)
                kept[rows] = joined.topk(self.keep, dim=1, sorted=False).values
            self._kept = kept
        self._pending = []
        self._pending_count = 0

    def _unit_blocks(self, width: int) -> Iterator[slice]:
        """Rows of units whose ``width`` values each come to about REDUCE_BYTES together (one unit at least)."""
        block = max(1, REDUCE_BYTES // max(1, width * torch.finfo(self.dtype).bits // 8))
        for start in range(0, self.num_units, block):
            yield slice(start, start + block)

    def _canonical(self) -> torch.Tensor:
        """The kept values sorted descending: the same tensor for any batching or merge order."""
        self._reduce()
        kept = torch.empty_like(self._kept)
        for rows in self._unit_blocks(self._kept.shape[1]):  # a block of units at a time, as _reduce
            kept[rows] = self._kept[rows].sort(dim=1, descending=True).values
        self._kept = kept
        return self._kept
