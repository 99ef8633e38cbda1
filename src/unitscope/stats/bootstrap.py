"""Per-image overlap counts kept from pass 2, and a bootstrap over probe images that reuses them.

Pass 2 already finds every (image, unit) mask's on pixels; ``ImageCounts`` keeps, per image, each unit's
active area and its intersection with each label present (sparse: only non-zero entries), and each
image's label areas. Resampling images with replacement then re-sums these counts — no forward pass, no
replay of activations — to give IoU, labels and detector counts of every resample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from unitscope.stats._state import StateValue, StatsError, require_keys
from unitscope.stats.iou import MaskCounts
from unitscope.stats.labels import LabelBatch

_KIND = "ImageCounts"
_FIELDS = ("inter", "active", "label_area", "annotated")


class ImageCounts:
    """Sparse per-image counts: rows (image, unit, label, count), (image, unit, area), (image, label, area).

    Held as int32 (image indices, unit and label numbers and pixel counts all fit): these rows grow with the probe
    set (AlexNet conv5: ~12 KB an image), and int64 doubled the memory a large run peaks at.
    """

    def __init__(self, num_units: int, num_labels: int) -> None:
        self.num_units, self.num_labels = num_units, num_labels
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in _FIELDS}

    def update(self, counts: MaskCounts, image_of: torch.Tensor, unit_of: torch.Tensor, labels: LabelBatch,
               images: np.ndarray, label_counts: torch.Tensor) -> None:
        """Record one batch; ``counts`` are its masks' label counts (MaskCounts.build), ``images`` [B] the probe
        indices of the batch's positions and ``label_counts`` [B, L + 1] each image's label areas
        (LabelBatch.label_counts)."""
        device = labels.device
        image_of, unit_of = image_of.to(device), unit_of.to(device)
        active = counts.active.to(device)
        mask, label = counts.mask.to(device), counts.label.to(device)
        rows = [torch.stack([image_of[mask], unit_of[mask], label, counts.count.to(device)], dim=1)]
        if labels.image_numbers.numel() > 0:
            owner = labels.image_owner.to(device)
            pair_mask, pair_label = torch.nonzero(image_of[:, None] == owner[None, :], as_tuple=True)
            rows.append(torch.stack([image_of[pair_mask], unit_of[pair_mask],
                                     labels.image_numbers.to(device)[pair_label], active[pair_mask]], dim=1))
        glob = torch.from_numpy(np.asarray(images, dtype=np.int64)).to(device)
        inter = torch.cat(rows)
        inter[:, 0] = glob[inter[:, 0]]
        self._parts["inter"].append(inter.to(torch.int32).cpu().numpy())
        active_rows = torch.stack([glob[image_of], unit_of, active], dim=1)
        self._parts["active"].append(active_rows.to(torch.int32).cpu().numpy())
        lab = label_counts.to(device).clone()
        lab[:, 0] = 0
        if labels.image_numbers.numel() > 0:
            lab[labels.image_owner.to(device), labels.image_numbers.to(device) + 1] = labels.num_pixels
        b, lnum = torch.nonzero(lab, as_tuple=True)
        self._parts["label_area"].append(torch.stack([glob[b], lnum - 1, lab[b, lnum]], dim=1).to(torch.int32).cpu()
                                         .numpy())
        ann = labels.annotated.cpu().numpy().astype(np.int32)
        self._parts["annotated"].append(np.concatenate([np.asarray(images, np.int32)[:, None], ann], axis=1))

    def parts(self, name: str) -> list[np.ndarray]:
        """The rows of table ``name`` as stored, in parts (their concatenation is ``table(name)``), uncopied."""
        width = {"inter": 4, "active": 3, "label_area": 3}.get(name)
        return [p.reshape(-1, width) if width else p for p in self._parts[name] if len(p)]

    def table(self, name: str) -> np.ndarray:
        parts = self._parts[name]
        width = {"inter": 4, "active": 3, "label_area": 3}.get(name)
        if not parts:
            return np.zeros((0, width or 1), dtype=np.int32)
        if len(parts) > 1:  # consolidate, so frequent checkpoints do not re-join every batch's part
            self._parts[name] = [np.concatenate(parts)]  # int32 (an older checkpoint's int64 part: int64)
        return self._parts[name][0]

    def merge(self, other: ImageCounts) -> None:
        """Add another disjoint part of the probe set; rows stay in image order (stable within an image)."""
        if (other.num_units, other.num_labels) != (self.num_units, self.num_labels):
            raise StatsError("ImageCounts.merge needs a statistic of the same shape")
        for name in _FIELDS:
            rows = np.concatenate([self.table(name), other.table(name)])
            order = np.argsort(rows[:, 0], kind="stable") if rows.size else np.zeros(0, np.int64)
            self._parts[name] = [rows[order]] if rows.size else []

    def state_dict(self) -> dict[str, StateValue]:
        return {"num_units": self.num_units, "num_labels": self.num_labels,
                **{name: torch.from_numpy(self.table(name)) for name in _FIELDS}}

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        require_keys(_KIND, state, ["num_units", "num_labels", *_FIELDS])
        if (state["num_units"], state["num_labels"]) != (self.num_units, self.num_labels):
            raise StatsError("ImageCounts state is of another layer; load an unmodified state_dict")
        for name in _FIELDS:
            value = state[name]
            if not isinstance(value, torch.Tensor):
                raise StatsError(f"ImageCounts state entry {name!r} is not a tensor")
            self._parts[name] = [value.numpy()] if value.numel() else []


@dataclass(frozen=True)
class BootstrapOutcome:
    """Per unit: share of resamples keeping the label; per resample: detector and unique-concept counts."""

    stability: np.ndarray  # [U]
    detectors: np.ndarray  # [R] IoU and significant
    unique: np.ndarray  # [R]
    iou_detectors: np.ndarray  # [R] IoU only
    by_category: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # [R, C] detectors
    draws: str = ""  # digest of the resampled image positions: equal digests, the same resamples


def draws_digest(draws: np.ndarray) -> str:
    """A short digest of a resample matrix [R, N]: two layers' (or networks') counts pair only when equal."""
    return hashlib.sha256(np.ascontiguousarray(draws, dtype=np.int64).tobytes()).hexdigest()[:16]


def bootstrap_labels(counts: ImageCounts, label_category: np.ndarray, best: np.ndarray, iou: np.ndarray,
                     significant: np.ndarray, iou_threshold: float, resamples: int, seed: int = 0,
                     candidates: int = 5) -> BootstrapOutcome:
    """Resample probe images ``resamples`` times; labels chosen among each unit's top ``candidates`` concepts.

    ``best`` [U] is each unit's full-data label number (-1: none), ``iou`` [U, L] the full-data IoU and
    ``significant`` [U, L] the full-data significance of each pair, reused in every resample.
    """
    units, width = iou.shape
    annotated = counts.table("annotated")
    images = np.unique(annotated[:, 0])
    n = len(images)
    if n == 0 or resamples < 1:
        empty = np.zeros(0)
        return BootstrapOutcome(np.full(units, np.nan), empty, empty, empty)
    position = np.full(int(images.max()) + 1, -1)
    position[images] = np.arange(n)
    k = min(candidates, width)
    order = np.argsort(-iou, axis=1, kind="stable")[:, :k]  # ties: lower label number first
    order = np.sort(order, axis=1)
    slot = np.full((units, width), -1)
    slot[np.arange(units)[:, None], order] = np.arange(units)[:, None] * k + np.arange(k)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))  # the same for every network dissected on one probe set
    weights = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)  # [R, N]

    def summed(rows: np.ndarray, column: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
        matrix = sp.csr_matrix((values.astype(np.float64), (position[rows], column)), shape=(n, size))
        return np.asarray((matrix.T @ weights.T).T)  # [R, size]

    # Part by part (as pass 2 stored them), so the peak memory is one part's, not the whole table's several times
    # over: every sum is of whole numbers in float64 (exact below 2**53), so the parts add to the same bytes.
    inter_b = np.zeros((resamples, units * k))
    for inter in counts.parts("inter"):
        s = slot[inter[:, 1], inter[:, 2]]
        keep = s >= 0
        inter_b += summed(inter[keep, 0], s[keep], inter[keep, 3], units * k)
    ann_by_image = np.zeros((n, annotated.shape[1] - 1))
    ann_by_image[position[annotated[:, 0]]] = annotated[:, 1:]
    cats = ann_by_image.shape[1]
    area_b = np.zeros((resamples, units * cats))
    for act in counts.parts("active"):
        rows = np.repeat(act[:, 0], cats)
        cols = (act[:, 1][:, None] * cats + np.arange(cats)[None, :]).reshape(-1)
        vals = (act[:, 2][:, None] * ann_by_image[position[act[:, 0]]]).reshape(-1)
        area_b += summed(rows, cols, vals, units * cats)
    area_b = area_b.reshape(resamples, units, cats)
    lab_b = np.zeros((resamples, width))
    for lab in counts.parts("label_area"):
        lab_b += summed(lab[:, 0], lab[:, 1], lab[:, 2], width)
    labels_of = order  # [U, k]
    category = label_category[labels_of].clip(min=0)
    union = (area_b[:, np.arange(units)[:, None], category] + lab_b[:, labels_of]
             - inter_b.reshape(resamples, units, k))
    iou_b = np.where(union > 0, inter_b.reshape(resamples, units, k) / np.maximum(union, 1), 0.0)
    pick = iou_b.argmax(axis=2)  # [R, U]
    chosen = labels_of[np.arange(units)[None, :], pick]
    top = np.take_along_axis(iou_b, pick[:, :, None], axis=2)[:, :, 0]
    stability = (chosen == best[None, :]).mean(axis=0)
    is_iou = top >= iou_threshold
    is_detector = is_iou & significant[np.arange(units)[None, :], chosen]
    unique = np.array([len(np.unique(chosen[r][is_detector[r]])) for r in range(resamples)])
    chosen_category = label_category[chosen]
    by_category = np.stack([(is_detector & (chosen_category == c)).sum(axis=1) for c in range(cats)], axis=1) \
        if cats else np.zeros((resamples, 0), np.int64)
    return BootstrapOutcome(stability, is_detector.sum(axis=1), unique, is_iou.sum(axis=1),
                            by_category.astype(np.int64), draws_digest(draws))
