"""Each unit's top-k probe images by score (its maximum activation), with where the peak lies.

Order is total: score descending, then image index ascending, so equal scores (common with ReLU
units that saturate, or all-zero units) give one answer whatever the batch size or merge order.
With ``map_pixels`` > 0 the statistic also keeps the whole activation map of every kept (unit, image),
so the report can draw the top images' regions without running the network again; the maps travel
with the ranking (merge, state_dict), so they are as exact and batch-size independent as it is.
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


def ranking(scores: torch.Tensor, indices: torch.Tensor, k: int) -> torch.Tensor:
    """Columns [U, k'] of the first k entries of each row by (score desc, index asc); inputs [U, m]."""
    by_index = indices.argsort(dim=1, stable=True)
    by_score = scores.gather(1, by_index).argsort(dim=1, descending=True, stable=True)[:, :k]
    return by_index.gather(1, by_score)


def rank_rows(
    scores: torch.Tensor, indices: torch.Tensor, peaks: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the first k columns of each row by (score desc, index asc); all tensors [U, m]."""
    keep = ranking(scores, indices, k)
    return scores.gather(1, keep), indices.gather(1, keep), peaks.gather(1, keep)


def pick_maps(kept: torch.Tensor, new: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Maps [U, k', P] of the columns ``keep`` [U, k'] of kept [U, m, P] followed by new [U, b, P].

    Kept maps move as whole rows (one ``index_select``) and only the entries that entered the top k are
    copied from the batch, so a batch costs about U * k * P copies and no concatenation.
    """
    units, old, pixels = kept.shape
    rows = torch.arange(units, device=keep.device).unsqueeze(1)
    from_new = keep >= old
    if old:
        flat = (rows * old + keep.clamp(max=old - 1)).reshape(-1)
        out = kept.reshape(units * old, pixels).index_select(0, flat).view(*keep.shape, pixels)
    else:
        out = torch.empty((*keep.shape, pixels), dtype=kept.dtype, device=kept.device)
    unit, column = from_new.nonzero(as_tuple=True)
    if len(unit):
        out[unit, column] = new[unit, keep[unit, column] - old].to(kept.dtype)
    return out


class TopImages:
    """Per-unit top-k images by score; ties go to the lower image index.

    Parts merged together must cover disjoint images (an image seen twice would be listed twice).
    State lives on the device of the tensors given to ``update``; scores keep their float dtype
    (promoted when inputs of several dtypes are mixed). ``map_pixels`` (h * w, or 0 for none) keeps
    each kept image's map too, as float32 [U, k, map_pixels]: ``update`` then takes the batch's maps.
    """

    def __init__(self, num_units: int, k: int, map_pixels: int = 0) -> None:
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
            raise StatsError(f"num_units must be a positive integer, got {num_units!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise StatsError(f"k (images kept per unit) must be a positive integer, got {k!r}")
        if isinstance(map_pixels, bool) or not isinstance(map_pixels, int) or map_pixels < 0:
            raise StatsError(f"map_pixels must be a non-negative integer (h * w, or 0), got {map_pixels!r}")
        self.num_units = num_units
        self.k = k
        self.map_pixels = map_pixels
        self.count = 0
        self._maps = torch.empty(num_units, 0, map_pixels)
        self._scores = torch.empty(num_units, 0)
        self._indices = torch.empty(num_units, 0, dtype=torch.int64)
        self._peaks = torch.empty(num_units, 0, dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return self._scores.device

    def update(self, scores: torch.Tensor, image_indices: torch.Tensor, peaks: torch.Tensor,
               maps: torch.Tensor | None = None) -> None:
        """Add a batch: scores [B, U] float, image_indices [B] int64 (global), peaks [B, U] int64 (flat h*w),
        and with ``map_pixels`` the maps [B, U, map_pixels] (any float dtype; kept as float32)."""
        self._check_batch(scores, image_indices, peaks)
        self._check_maps(scores, maps)
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
            maps.detach().to(device).transpose(0, 1) if maps is not None and self.map_pixels else None,
        )
        self.count += batch

    def candidate_peaks(self, maps: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """[B, U] int64: the flat argmax of each map [B, U, P] whose score [B, U] is at or above its unit's k-th
        kept score (it may enter the top k), 0 for the others, which ``update`` cannot keep. One argmax per
        candidate instead of one per map: once k images are kept, a batch has few candidates."""
        if self._scores.shape[1] < self.k or self._scores.device != scores.device:
            return maps.argmax(dim=2)
        bar = self._scores[:, -1].to(scores.dtype)
        image, unit = torch.nonzero(scores >= bar[None, :], as_tuple=True)
        peaks = torch.zeros(scores.shape, dtype=torch.int64, device=scores.device)
        if len(image):
            peaks[image, unit] = maps[image, unit].argmax(dim=1)
        return peaks

    def merge(self, other: TopImages) -> None:
        """Fold in the top images of another part of the probe set (disjoint images)."""
        check_kind(_KIND, other, TopImages, self)
        check_same_args(_KIND, "merge", self._args(), other._args())
        if self.count == 0:
            self._to(other.device)
        device = self.device
        self._combine(other._scores.to(device), other._indices.to(device), other._peaks.to(device),
                      other._maps.to(device) if self.map_pixels else None)
        self.count += other.count

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image indices, scores, peaks), each [U, k'] with k' = min(k, images seen), best first."""
        return self._indices.clone(), self._scores.clone(), self._peaks.clone()

    def maps(self) -> torch.Tensor | None:
        """The kept images' maps, float32 [U, k', map_pixels] in the order of ``result``; None without maps."""
        return self._maps.clone() if self.map_pixels else None

    def state_dict(self) -> dict[str, StateValue]:
        """Arguments, images seen and the ranked tables."""
        return {
            **self._args(),
            "count": self.count,
            "scores": self._scores.clone(),
            "indices": self._indices.clone(),
            "peaks": self._peaks.clone(),
            **({"maps": self._maps.clone()} if self.map_pixels else {}),
        }

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state written by ``state_dict`` of a TopImages built with the same arguments."""
        require_keys(_KIND, state, ["num_units", "k", "count", "scores", "indices", "peaks"])
        theirs = {"num_units": as_int(_KIND, state, "num_units"), "k": as_int(_KIND, state, "k"),
                  "map_pixels": as_int(_KIND, state, "map_pixels") if "map_pixels" in state else 0}
        check_same_args(_KIND, "load", self._args(), theirs)
        count = as_int(_KIND, state, "count")
        scores, indices, peaks = (as_tensor(_KIND, state, key) for key in ("scores", "indices", "peaks"))
        expected = (self.num_units, min(self.k, count))
        if count < 0 or any(tuple(t.shape) != expected for t in (scores, indices, peaks)):
            raise StatsError(
                f"TopImages state is inconsistent (count {count}, expected tables of shape {expected}); "
                "load an unmodified state_dict"
            )
        maps = self._maps
        if self.map_pixels:
            require_keys(_KIND, state, ["maps"])
            maps = as_tensor(_KIND, state, "maps")
            if tuple(maps.shape) != (*expected, self.map_pixels) or not maps.is_floating_point():
                raise StatsError(f"TopImages maps have shape {tuple(maps.shape)}, expected "
                                 f"{(*expected, self.map_pixels)}; load an unmodified state_dict")
        self.count = count
        self._scores, self._indices, self._peaks = scores, indices.long(), peaks.long()
        self._maps = maps.float()

    def _args(self) -> dict[str, int]:
        return {"num_units": self.num_units, "k": self.k, "map_pixels": self.map_pixels}

    def _to(self, device: torch.device) -> None:
        self._scores = self._scores.to(device)
        self._indices = self._indices.to(device)
        self._peaks = self._peaks.to(device)
        self._maps = self._maps.to(device)

    def _combine(self, scores: torch.Tensor, indices: torch.Tensor, peaks: torch.Tensor,
                 maps: torch.Tensor | None = None) -> None:
        """Rank the kept entries together with new [U, m] entries (maps [U, m, P]) and keep the best k."""
        dtype = torch.promote_types(self._scores.dtype, scores.dtype)
        all_scores = torch.cat([self._scores.to(dtype), scores.to(dtype)], dim=1)
        all_indices = torch.cat([self._indices, indices], dim=1)
        keep = ranking(all_scores, all_indices, self.k)
        self._peaks = torch.cat([self._peaks, peaks], dim=1).gather(1, keep)
        self._scores, self._indices = all_scores.gather(1, keep), all_indices.gather(1, keep)
        if self.map_pixels and maps is not None:
            self._maps = pick_maps(self._maps, maps, keep)

    def _check_maps(self, scores: torch.Tensor, maps: torch.Tensor | None) -> None:
        """Refuse missing, unexpected or misshapen maps before any state changes."""
        if not self.map_pixels:
            if maps is not None:
                raise StatsError("TopImages was built without map_pixels; pass maps only to one built with them")
            return
        expected = (scores.shape[0], self.num_units, self.map_pixels)
        if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != expected or not maps.is_floating_point():
            got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else None
            raise StatsError(f"TopImages.update needs float maps {list(expected)} (batch, units, h*w); got {got}")

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
