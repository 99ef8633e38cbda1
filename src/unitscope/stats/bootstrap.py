"""Per-image overlap counts kept from pass 2, and a bootstrap over probe images that reuses them.

Pass 2 already finds every (image, unit) mask's on pixels; ``ImageCounts`` keeps, per image, each unit's
active area and its intersection with each label present (sparse: only non-zero entries), and each
image's label areas. Resampling images with replacement then re-sums these counts — no forward pass, no
replay of activations — to give IoU, labels and detector counts of every resample.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp
import torch

from unitscope.stats._state import StateValue, StatsError, require_keys
from unitscope.stats.iou import MaskCounts
from unitscope.stats.labels import LabelBatch

_KIND = "ImageCounts"
_FIELDS = ("inter", "active", "label_area", "annotated")
_WIDTH = {"inter": 4, "active": 3, "label_area": 3}  # the tables that grow with units x images: spillable
CHUNK_ROWS = 1 << 18  # rows handed out at a time (4 MB of "inter"): what reading the tables costs in memory
IMAGES_AT_ONCE = 1024  # images whose resample weights are widened to float64 at once (R x 1024 x 8 bytes)


class ImageCounts:
    """Sparse per-image counts: rows (image, unit, label, count), (image, unit, area), (image, label, area).

    Held as int32 (image indices, unit and label numbers and pixel counts all fit): these rows grow with the probe
    set (AlexNet conv5: ~12 KB an image, ~0.8 GB over Broden). Given ``spill``, a folder, the three large tables
    are appended to files there instead of memory (``<field>.i32``, raw little-endian int32 rows), so a run's
    memory does not grow with its probe set; :meth:`state_dict` then records only their row counts (a checkpoint
    stays small) and :meth:`load_state_dict` cuts the files back to them (a resumed run rewrites what followed).
    """

    def __init__(self, num_units: int, num_labels: int, spill: Path | None = None) -> None:
        self.num_units, self.num_labels = num_units, num_labels
        self.spill = spill
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in _FIELDS}
        self._rows = dict.fromkeys(_WIDTH, 0)  # rows in each spill file
        self._files: dict[str, BinaryIO] = {}

    def _spilled(self, name: str) -> bool:
        return self.spill is not None and name in _WIDTH

    def _path(self, name: str) -> Path:
        if self.spill is None:
            raise StatsError("ImageCounts has no spill folder")
        return self.spill / f"{name}.i32"

    def _append(self, name: str, rows: np.ndarray) -> None:
        if not self._spilled(name):
            self._parts[name].append(rows)
            return
        if name not in self._files:  # first write since opening or resuming: drop whatever followed the rows kept
            self._path(name).parent.mkdir(parents=True, exist_ok=True)
            handle = open(self._path(name), "a+b")  # noqa: SIM115 - kept open across batches, closed by close()
            handle.truncate(self._rows[name] * _WIDTH[name] * 4)
            self._files[name] = handle
        self._files[name].write(np.ascontiguousarray(rows, dtype="<i4").tobytes())
        self._rows[name] += len(rows)

    def close(self) -> None:
        """Flush and close the spill files (reading them, or another write, reopens what it needs)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()

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
        self._append("inter", inter.to(torch.int32).cpu().numpy())
        active_rows = torch.stack([glob[image_of], unit_of, active], dim=1)
        self._append("active", active_rows.to(torch.int32).cpu().numpy())
        lab = label_counts.to(device).clone()
        lab[:, 0] = 0
        if labels.image_numbers.numel() > 0:
            lab[labels.image_owner.to(device), labels.image_numbers.to(device) + 1] = labels.num_pixels
        b, lnum = torch.nonzero(lab, as_tuple=True)
        self._append("label_area", torch.stack([glob[b], lnum - 1, lab[b, lnum]], dim=1).to(torch.int32).cpu()
                     .numpy())
        ann = labels.annotated.cpu().numpy().astype(np.int32)
        self._append("annotated", np.concatenate([np.asarray(images, np.int32)[:, None], ann], axis=1))

    def parts(self, name: str) -> Iterator[np.ndarray]:
        """The rows of table ``name`` in order (their concatenation is ``table(name)``), at most CHUNK_ROWS at a
        time: read from the spill file part by part, or views of the parts in memory."""
        width = _WIDTH.get(name)
        if self._spilled(name) and width is not None:
            if name in self._files:
                self._files[name].flush()
            total = self._rows[name]
            if total == 0:
                return
            try:
                with open(self._path(name), "rb") as handle:
                    for start in range(0, total, CHUNK_ROWS):
                        count = min(CHUNK_ROWS, total - start) * width
                        part = np.fromfile(handle, dtype="<i4", count=count)
                        if part.size != count:
                            raise StatsError(f"{self._path(name)} holds fewer rows than recorded; rerun the "
                                             "dissection from the start (--overwrite)")
                        yield part.astype(np.int32, copy=False).reshape(-1, width)
            except FileNotFoundError as error:
                raise StatsError(f"{self._path(name)} is gone (the run's work folder was removed); per-image "
                                 "counts are read while the run is assembled") from error
            return
        for part in self._parts[name]:
            part = part.reshape(-1, width) if width else part
            for start in range(0, len(part), CHUNK_ROWS):
                yield part[start:start + CHUNK_ROWS]

    def table(self, name: str) -> np.ndarray:
        """The whole table ``name`` in memory (small tables; tests and merges: the bootstrap reads :meth:`parts`)."""
        width = _WIDTH.get(name)
        if self._spilled(name):
            chunks = list(self.parts(name))
            return np.concatenate(chunks) if chunks else np.zeros((0, width or 1), dtype=np.int32)
        parts = self._parts[name]
        if not parts:
            return np.zeros((0, width or 1), dtype=np.int32)
        if len(parts) > 1:  # consolidate, so frequent checkpoints do not re-join every batch's part
            self._parts[name] = [np.concatenate(parts)]  # int32 (an older checkpoint's int64 part: int64)
        return self._parts[name][0]

    def _replace(self, name: str, rows: np.ndarray) -> None:
        """Table ``name`` becomes ``rows`` (in memory, or rewritten in its spill file)."""
        if self._spilled(name):
            if name in self._files:
                self._files.pop(name).close()
            self._rows[name] = 0
            self._append(name, rows)  # opens the file cut to no rows, then writes these
            return
        self._parts[name] = [rows] if len(rows) else []

    def merge(self, other: ImageCounts) -> None:
        """Add another disjoint part of the probe set; rows stay in image order (stable within an image)."""
        if (other.num_units, other.num_labels) != (self.num_units, self.num_labels):
            raise StatsError("ImageCounts.merge needs a statistic of the same shape")
        for name in _FIELDS:
            rows = np.concatenate([self.table(name), other.table(name)])
            order = np.argsort(rows[:, 0], kind="stable") if rows.size else np.zeros(0, np.int64)
            self._replace(name, rows[order])

    def state_dict(self) -> dict[str, StateValue]:
        """The tables; of a spilled table only its row count (``<field>_rows``): the rows are in its file."""
        state: dict[str, StateValue] = {"num_units": self.num_units, "num_labels": self.num_labels}
        for name in _FIELDS:
            if self._spilled(name):
                if name in self._files:  # on disk before a checkpoint says so (as the activation cache)
                    self._files[name].flush()
                    os.fsync(self._files[name].fileno())
                state[f"{name}_rows"] = self._rows[name]
            else:
                state[name] = torch.from_numpy(self.table(name))
        return state

    def export_state(self) -> dict[str, StateValue]:
        """Every table in memory (what another process can load: ranks merging their shards)."""
        return {"num_units": self.num_units, "num_labels": self.num_labels,
                **{name: torch.from_numpy(self.table(name)) for name in _FIELDS}}

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        require_keys(_KIND, state, ["num_units", "num_labels"])
        if (state["num_units"], state["num_labels"]) != (self.num_units, self.num_labels):
            raise StatsError("ImageCounts state is of another layer; load an unmodified state_dict")
        for name in _FIELDS:
            value, rows = state.get(name), state.get(f"{name}_rows")
            if isinstance(value, torch.Tensor):
                self._replace(name, value.numpy())
            elif isinstance(rows, int) and self._spilled(name) and rows >= 0:
                self._check_spill(name, rows)
            else:
                raise StatsError(f"ImageCounts state entry {name!r} is missing or not a tensor"
                                 + (" (its rows are in a spill file this statistic was not given)"
                                    if rows is not None else ""))

    def _check_spill(self, name: str, rows: int) -> None:
        """Resume from a state that recorded ``rows`` rows of ``name`` in its spill file."""
        path = self._path(name)
        held = path.stat().st_size // (4 * _WIDTH[name]) if path.is_file() else 0
        if held < rows:
            raise StatsError(f"{path} holds {held} rows where the checkpoint recorded {rows}; rerun the "
                             "dissection from the start (--overwrite)")
        if name in self._files:
            self._files.pop(name).close()
        self._rows[name] = rows  # the next write cuts the file back to these rows


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


def resample_weights(n: int, resamples: int, seed: int) -> tuple[np.ndarray, str]:
    """How often each of ``n`` images is drawn in each resample [R, N] (uint16; int32 when one is drawn more),
    and the digest of the draws (:func:`draws_digest` of the [R, N] positions), drawn one resample at a time:
    the same numbers as drawing the whole matrix at once, without holding its 8 bytes per draw."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, n), dtype=np.uint16)
    digest = hashlib.sha256()
    for r in range(resamples):
        drawn = rng.integers(0, n, size=n)
        digest.update(np.ascontiguousarray(drawn, dtype=np.int64).tobytes())
        times = np.bincount(drawn, minlength=n)
        if times.max() > np.iinfo(weights.dtype).max:
            weights = weights.astype(np.int32)
        weights[r] = times
    return weights, digest.hexdigest()[:16]


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
    weights, digest = resample_weights(n, resamples, seed)  # the same for every network on one probe set

    def summed(rows: np.ndarray, column: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
        """[R, size]: each resample's sum of ``values`` at ``column`` over its images (rows of one part)."""
        out = np.zeros((resamples, size))
        where = position[rows]
        by_image = np.argsort(where, kind="stable")
        ranked = where[by_image]
        firsts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]) if len(ranked) else ranked
        for piece in np.split(by_image, firsts[IMAGES_AT_ONCE::IMAGES_AT_ONCE]):  # IMAGES_AT_ONCE images each
            images, local = np.unique(where[piece], return_inverse=True)
            matrix = sp.csr_matrix((values[piece].astype(np.float64), (local, column[piece])),
                                   shape=(len(images), size))
            out += np.asarray((matrix.T @ weights[:, images].T.astype(np.float64)).T)
        return out

    # Part by part (CHUNK_ROWS rows read at a time) and a few images' weights at a time, so the peak memory does
    # not grow with the probe set: every sum is of whole numbers in float64 (exact below 2**53), so the parts
    # and pieces add to the same bytes in any order.
    inter_b = np.zeros((resamples, units * k))
    for inter in counts.parts("inter"):
        s = slot[inter[:, 1], inter[:, 2]]
        keep = s >= 0
        inter_b += summed(inter[keep, 0], s[keep], inter[keep, 3], units * k)
    ann_by_image = np.zeros((n, annotated.shape[1] - 1))
    ann_by_image[position[annotated[:, 0]]] = annotated[:, 1:]
    cats = ann_by_image.shape[1]
    area_b = np.zeros((resamples, units, cats))
    for act in counts.parts("active"):
        annotated_in = ann_by_image[position[act[:, 0]]]  # [rows, C]: whether each row's image has category c
        for c in range(cats):  # one category at a time: the part's rows once each, not C copies of them at once
            has = annotated_in[:, c] != 0
            area_b[:, :, c] += summed(act[has, 0], act[has, 1], act[has, 2] * annotated_in[has, c], units)
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
                            by_category.astype(np.int64), digest)
