"""Each unit's activation histogram over the whole probe set, exact and without knowing its range first.

The bins are fixed by the float32 format itself, not by the data: a value's bin is its sign, its binary
exponent and the top ``SUB_BITS`` bits of its mantissa (16 bins per octave), read straight off its bits.
So pass 1 can count every activation from the first batch on, with no range to guess; counts are int64
sums, so the histogram is the same whatever the batch size, merges exactly across torchrun ranks (a sum)
and resumes from a checkpoint. Magnitudes below ``2**-OCTAVES`` share one bin around zero (a ReLU's zeros
land there); magnitudes from ``2**OCTAVES`` up share an overflow bin on each side.

Cost per value: one shift, one add and one ``index_add_`` into raw int32 per-unit counts of the 8192
codes (sign, exponent, 4 mantissa bits), folded into int64 counts of the ``NUM_BINS`` bins when read or
before an int32 could overflow; about as much as a max. Memory: U × (8192 × 4 + NUM_BINS × 8) bytes
(28 MB for 512 units).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from unitscope.stats._state import StateValue, StatsError, as_int, as_tensor, check_kind, check_same_args, require_keys

_KIND = "ActivationHistogram"
SUB_BITS = 4  # mantissa bits kept: 2**SUB_BITS bins per octave
OCTAVES = 24  # magnitudes in [2**-OCTAVES, 2**OCTAVES) get their own bins
_SHIFT = 23 - SUB_BITS  # float32 has 23 mantissa bits
_LOW = (127 - OCTAVES) << SUB_BITS  # (biased exponent, mantissa bits) of 2**-OCTAVES
_HIGH = (127 + OCTAVES) << SUB_BITS  # ... of 2**OCTAVES
LEVELS = _HIGH - _LOW + 1  # magnitude levels: 0 is the zero bin, LEVELS is the overflow bin
NUM_BINS = 2 * LEVELS + 1
_CODES = 1 << (32 - _SHIFT)  # distinct values of bits >> _SHIFT: sign, exponent, mantissa bits
_INT32_ROOM = 2**31 - 1  # values a raw int32 cell may take before it is folded


def bin_edges() -> np.ndarray:
    """float64 [NUM_BINS + 1] edges, increasing; the outermost are -inf and +inf."""
    codes = np.arange(_LOW, _HIGH + 1, dtype=np.int64)
    exponent, mantissa = codes >> SUB_BITS, codes & ((1 << SUB_BITS) - 1)
    positive = np.ldexp(1.0 + mantissa / (1 << SUB_BITS), (exponent - 127).astype(np.int32))
    return np.concatenate([[-np.inf], -positive[::-1], positive, [np.inf]])


def bin_keys(values: torch.Tensor) -> torch.Tensor:
    """int64 bin number in [0, NUM_BINS) of every value (finite or infinite; NaN counts as overflow)."""
    bits = values.to(torch.float32).contiguous().view(torch.int32)
    level = ((bits & 0x7FFFFFFF) >> _SHIFT).clamp(_LOW - 1, _HIGH) - (_LOW - 1)
    return (torch.where(bits < 0, -level, level) + LEVELS).long()


def _code_bins() -> torch.Tensor:
    """The bin of each code ``(bits >> _SHIFT) + _CODES // 2`` (int64 [_CODES])."""
    codes = torch.arange(_CODES, dtype=torch.int64) - _CODES // 2
    return bin_keys((codes.to(torch.int32) << _SHIFT).view(torch.float32))


class ActivationHistogram:
    """Per-unit counts of activations in the fixed bins of :func:`bin_edges`.

    Values are binned as float32 (wider floats are rounded to float32 first). Negative bins hold
    (-b, -a], positive ones [a, b); the bin around zero holds everything of magnitude below 2**-OCTAVES.
    """

    def __init__(self, num_units: int) -> None:
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
            raise StatsError(f"num_units must be a positive integer, got {num_units!r}")
        self.num_units = num_units
        self._raw = torch.zeros(num_units, _CODES, dtype=torch.int32)  # counts per unit and code since a fold
        self._raw_values = 0  # values per unit counted in _raw (bounds every cell)
        self._folded = torch.zeros(num_units, NUM_BINS, dtype=torch.int64)
        self._bins = _code_bins()

    @property
    def counts(self) -> torch.Tensor:
        """int64 [U, NUM_BINS]: the values of each unit counted per bin of :func:`bin_edges`."""
        raw = self._raw.long()
        return self._folded.clone().index_add_(1, self._bins.to(raw.device), raw)

    def _fold(self) -> None:
        """Move the raw int32 counts into the int64 bins."""
        self._folded = self.counts
        self._raw.zero_()
        self._raw_values = 0

    def update(self, values: torch.Tensor) -> None:
        """Count a batch of maps [B, U, ...] (every value of every map; the caller refuses NaN)."""
        if not isinstance(values, torch.Tensor) or values.dim() < 2 or values.shape[1] != self.num_units:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise StatsError(f"{_KIND}.update needs values [B, {self.num_units}, ...]; got {got}")
        if not values.is_floating_point():
            raise StatsError(f"{_KIND} values must be floating point, got {values.dtype}")
        if values.numel() == 0:
            return
        if values.device != self._raw.device:
            self._raw, self._folded = self._raw.to(values.device), self._folded.to(values.device)
        per_unit = values[0].numel() * values.shape[0] // self.num_units
        if self._raw_values + per_unit > _INT32_ROOM:
            self._fold()
        self._raw_values += per_unit
        bits = values.detach().to(torch.float32).flatten(2).view(torch.int32)  # [B, U, P]
        offsets = torch.arange(self.num_units, dtype=torch.int32, device=bits.device) * _CODES + _CODES // 2
        if bits.transpose(1, 2).is_contiguous():  # channels-last maps: counted in memory order, no copy
            codes = (bits.transpose(1, 2) >> _SHIFT).add_(offsets.view(1, 1, -1)).view(-1)
        else:
            codes = (bits.contiguous() >> _SHIFT).add_(offsets.view(1, -1, 1)).view(-1)
        self._raw.view(-1).index_add_(0, codes, torch.ones(1, dtype=torch.int32, device=bits.device)
                                      .expand(codes.numel()))

    def merge(self, other: ActivationHistogram) -> None:
        """Add the counts of another part of the probe set (disjoint images)."""
        check_kind(_KIND, other, ActivationHistogram, self)
        check_same_args(_KIND, "merge", self._args(), other._args())
        self._folded = self.counts + other.counts.to(self._raw.device)
        self._raw.zero_()
        self._raw_values = 0

    def state_dict(self) -> dict[str, StateValue]:
        """Arguments and the folded counts (what a resume or a merge of ranks needs)."""
        return {**self._args(), "counts": self.counts}

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state written by ``state_dict`` of a histogram with as many units."""
        require_keys(_KIND, state, ["num_units", "counts"])
        check_same_args(_KIND, "load", self._args(), {"num_units": as_int(_KIND, state, "num_units")})
        counts = as_tensor(_KIND, state, "counts")
        if tuple(counts.shape) != (self.num_units, NUM_BINS) or counts.is_floating_point():
            raise StatsError(f"{_KIND} counts have shape {tuple(counts.shape)}, expected "
                             f"{(self.num_units, NUM_BINS)} integers; load an unmodified state_dict")
        self._folded = counts.long()
        self._raw = torch.zeros(self.num_units, _CODES, dtype=torch.int32)
        self._raw_values = 0

    def _args(self) -> dict[str, int]:
        return {"num_units": self.num_units}
