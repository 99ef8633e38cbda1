"""Each unit's top-k probe images by score (its maximum activation), with where the peak lies.

Order is total: score descending, then image index ascending, so equal scores (common with ReLU
units that saturate, or all-zero units) give one answer whatever the batch size or merge order.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from unitscope.stats._state import (
    StateValue,
    StatsError,
    as_int,
    as_tensor,
    check_kind,
    check_same_args,
    require_keys,
)

_KIND = "TopImages"


def rank_rows(
    scores: torch.Tensor, indices: torch.Tensor, peaks: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the first k columns of each row by (score desc, index asc); all tensors [U, m]."""
    by_index = indices.argsort(dim=1, stable=True)
    scores, indices, peaks = (t.gather(1, by_index) for t in (scores, indices, peaks))
    by_score = scores.argsort(dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), indices.gather(1, by_score), peaks.gather(1, by_score)


class TopImages:
    """Per-unit top-k images by score; ties go to the lower image index.

    Parts merged together must cover disjoint images (an image seen twice would be listed twice).
    State lives on the device of the tensors given to ``update``; scores keep their float dtype
    (promoted when inputs of several dtypes are mixed).
    """

    def __init__(self, num_units: int, k: int) -> None:
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
            raise StatsError(f"num_units must be a positive integer, got {num_units!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise StatsError(f"k (images kept per unit) must be a positive integer, got {k!r}")
        self.num_units = num_units
        self.k = k
        self.count = 0
        self._scores = torch.empty(num_units, 0)
        self._indices = torch.empty(num_units, 0, dtype=torch.int64)
        self._peaks = torch.empty(num_units, 0, dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return self._scores.device

    def update(self, scores: torch.Tensor, image_indices: torch.Tensor, peaks: torch.Tensor) -> None:
        """Add a batch: scores [B, U] float, image_indices [B] int64 (global), peaks [B, U] int64 (flat h*w)."""
        self._check_batch(scores, image_indices, peaks)
        if scores.shape[0] == 0:
            return
        if scores.device != self.device:
            self._to(scores.device)  # state follows the input (e.g. a CPU checkpoint resumed on GPU)
        batch = scores.shape[0]
        device = self.device
        self._combine(
            scores.detach().to(device).T,
            image_indices.to(device, torch.int64).unsqueeze(0).expand(self.num_units, batch),
            peaks.to(device, torch.int64).T,
        )
        self.count += batch

    def merge(self, other: TopImages) -> None:
        """Fold in the top images of another part of the probe set (disjoint images)."""
        check_kind(_KIND, other, TopImages, self)
        check_same_args(_KIND, "merge", self._args(), other._args())
        if self.count == 0:
            self._to(other.device)
        device = self.device
        self._combine(other._scores.to(device), other._indices.to(device), other._peaks.to(device))
        self.count += other.count

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image indices, scores, peaks), each [U, k'] with k' = min(k, images seen), best first."""
        return self._indices.clone(), self._scores.clone(), self._peaks.clone()

    def state_dict(self) -> dict[str, StateValue]:
        """Arguments, images seen and the ranked tables."""
        return {
            **self._args(),
            "count": self.count,
            "scores": self._scores.clone(),
            "indices": self._indices.clone(),
            "peaks": self._peaks.clone(),
        }

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state written by ``state_dict`` of a TopImages built with the same arguments."""
        require_keys(_KIND, state, [*self._args(), "count", "scores", "indices", "peaks"])
        theirs = {"num_units": as_int(_KIND, state, "num_units"), "k": as_int(_KIND, state, "k")}
        check_same_args(_KIND, "load", self._args(), theirs)
        count = as_int(_KIND, state, "count")
        scores, indices, peaks = (as_tensor(_KIND, state, key) for key in ("scores", "indices", "peaks"))
        expected = (self.num_units, min(self.k, count))
        if count < 0 or any(tuple(t.shape) != expected for t in (scores, indices, peaks)):
            raise StatsError(
                f"TopImages state is inconsistent (count {count}, expected tables of shape {expected}); "
                "load an unmodified state_dict"
            )
        self.count = count
        self._scores, self._indices, self._peaks = scores, indices.long(), peaks.long()

    def _args(self) -> dict[str, int]:
        return {"num_units": self.num_units, "k": self.k}

    def _to(self, device: torch.device) -> None:
        self._scores = self._scores.to(device)
        self._indices = self._indices.to(device)
        self._peaks = self._peaks.to(device)

    def _combine(self, scores: torch.Tensor, indices: torch.Tensor, peaks: torch.Tensor) -> None:
        """Rank the kept entries together with new [U, m] entries and keep the best k."""
        dtype = torch.promote_types(self._scores.dtype, scores.dtype)
        self._scores, self._indices, self._peaks = rank_rows(
            torch.cat([self._scores.to(dtype), scores.to(dtype)], dim=1),
            torch.cat([self._indices, indices], dim=1),
            torch.cat([self._peaks, peaks], dim=1),
            self.k,
        )

    def _check_batch(self, scores: torch.Tensor, image_indices: torch.Tensor, peaks: torch.Tensor) -> None:
        """Refuse batches whose shapes or types do not fit, before any state changes."""
        tensors = (scores, image_indices, peaks)
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise StatsError("TopImages.update needs three tensors: scores, image_indices, peaks")
        batch = scores.shape[0] if scores.ndim == 2 else -1
        if (
            scores.ndim != 2
            or scores.shape[1] != self.num_units
            or tuple(image_indices.shape) != (batch,)
            or tuple(peaks.shape) != tuple(scores.shape)
        ):
            raise StatsError(
                f"TopImages.update needs scores [B, {self.num_units}], image_indices [B], peaks [B, "
                f"{self.num_units}]; got {tuple(scores.shape)}, {tuple(image_indices.shape)}, "
                f"{tuple(peaks.shape)}"
            )
        if not scores.is_floating_point():
            raise StatsError(f"TopImages scores must be floating point, got {scores.dtype}")
        if image_indices.is_floating_point() or peaks.is_floating_point():
            raise StatsError("TopImages image_indices and peaks must be integer tensors (int64)")
        if bool(torch.isnan(scores).any()):
            raise StatsError("activations contain NaN; check the model's weights and input normalisation")
        if image_indices.unique().numel() != batch:  # type: ignore[no-untyped-call]
            raise StatsError("TopImages.update got the same image index twice in one batch; index images uniquely")
