"""An on-disk cache of every probe image's encoded labels, appended in pass 1 and read back in pass 2.

Pass 2 needs only the labels; rather than reopening every image and label file, pass 1 (whose loader
workers decode them anyway) appends each sample's :class:`~unitscope.stats.labels.SampleLabels` here.
Records have different sizes (a sample stacks any number of maps), so they are appended, and where each
starts is part of pass 1's checkpoint: a resumed run cuts the file back to the checkpoint's end and appends
from there, so the cache and the statistics always describe the same images. Positional file I/O, like
the activation cache, so resident memory does not grow with the probe set.

Record: int32 ``k, m``; the table [k, P] as int16 (int32 when a label number needs it); ``m`` int32
whole-image labels; C uint8 category flags.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from unitscope.dissection.cache import adjacent_runs
from unitscope.errors import UsageError
from unitscope.stats.labels import SampleLabels

_MISSING = -1
_PIECES_PER_WRITE = 1024  # IOV_MAX on Linux: buffers one pwritev may take


class LabelCache:
    """Encoded labels of ``n_rows`` probe images (a row may be missing: an unreadable image)."""

    def __init__(self, path: Path, n_rows: int, pixels: int, categories: int, num_labels: int) -> None:
        self.path = path
        self.pixels, self.categories = pixels, categories
        self.dtype = np.dtype(np.int16 if num_labels <= np.iinfo(np.int16).max else np.int32)
        self.offsets = np.full(n_rows, _MISSING, dtype=np.int64)
        self.sizes = np.zeros(n_rows, dtype=np.int64)
        self.end = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def resume(self, state: dict[str, object] | None) -> None:
        """Continue from a checkpoint's ``state_dict`` (None: start empty), dropping rows written after it."""
        if state is None:
            self.offsets[:], self.sizes[:], self.end = _MISSING, 0, 0
        else:
            offsets, sizes, end = state.get("offsets"), state.get("sizes"), state.get("end")
            if (not isinstance(offsets, torch.Tensor) or not isinstance(sizes, torch.Tensor)
                    or not isinstance(end, int) or offsets.shape != self.offsets.shape
                    or os.fstat(self._fd).st_size < end):
                raise UsageError(f"the label cache {self.path} does not fit its checkpoint; "
                                 "pass --overwrite to start afresh")
            self.offsets, self.sizes, self.end = offsets.numpy().copy(), sizes.numpy().copy(), end
        os.ftruncate(self._fd, self.end)

    def state_dict(self) -> dict[str, object]:
        return {"offsets": torch.from_numpy(self.offsets.copy()), "sizes": torch.from_numpy(self.sizes.copy()),
                "end": self.end}

    def complete(self, rows: np.ndarray) -> bool:
        """Whether every row of ``rows`` is stored."""
        return bool((self.offsets[rows] != _MISSING).all())

    def write(self, rows: list[int], labels: list[SampleLabels]) -> None:
        """Append the labels of ``rows`` (one vectored write: the records' pieces are not joined in memory)."""
        pieces: list[memoryview] = []
        start = self.end
        for row, sample in zip(rows, labels, strict=True):
            record = self._encode(sample)
            size = sum(piece.nbytes for piece in record)
            self.offsets[row], self.sizes[row] = self.end, size
            self.end += size
            pieces.extend(piece.data for piece in record)  # contiguous: each a memoryview of its bytes
        for first in range(0, len(pieces), _PIECES_PER_WRITE):
            group = pieces[first:first + _PIECES_PER_WRITE]
            written = os.pwritev(self._fd, group, start)
            if written != sum(piece.nbytes for piece in group):
                raise OSError(f"short write to the label cache {self.path}")
            start += written

    def read(self, rows: np.ndarray) -> list[SampleLabels]:
        """The labels of ``rows`` (each stored), one read per run of consecutive records."""
        out: list[SampleLabels] = []

        def follows(j: int) -> bool:  # record j starts where record j - 1 ends in the file
            return bool(self.offsets[rows[j]] == self.offsets[rows[j - 1]] + self.sizes[rows[j - 1]])

        for start, end in adjacent_runs(len(rows), follows):
            first = int(self.offsets[rows[start]])
            if first == _MISSING:
                raise UsageError(f"image {int(rows[start])} is missing from the label cache {self.path}; "
                                 "pass --overwrite to start afresh")
            size = int(self.offsets[rows[end - 1]] + self.sizes[rows[end - 1]]) - first
            raw = os.pread(self._fd, size, first)
            place = 0
            for row in rows[start:end]:
                length = int(self.sizes[row])
                out.append(self._decode(raw[place:place + length]))
                place += length
        return out

    def flush(self) -> None:
        """Make appended records durable before a checkpoint claims them."""
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def _encode(self, sample: SampleLabels) -> list[np.ndarray]:
        """One record's pieces, in file order: (k, m) int32, the table, the whole-image labels, the categories."""
        k, m = len(sample.table), len(sample.whole)
        if sample.table.shape[1:] != (self.pixels,) or sample.annotated.shape != (self.categories,):
            raise UsageError(f"labels of shape {sample.table.shape} do not fit the label cache {self.path}")
        return [np.array([k, m], np.int32), np.ascontiguousarray(sample.table, dtype=self.dtype),
                np.ascontiguousarray(sample.whole, dtype=np.int32),
                np.ascontiguousarray(sample.annotated, dtype=np.uint8)]

    def _decode(self, raw: bytes) -> SampleLabels:
        k, m = (int(v) for v in np.frombuffer(raw, np.int32, 2))
        place = 8
        table = np.frombuffer(raw, self.dtype, k * self.pixels, place).astype(np.int32).reshape(k, self.pixels)
        place += k * self.pixels * self.dtype.itemsize
        whole = np.frombuffer(raw, np.int32, m, place).astype(np.int64)
        place += 4 * m
        annotated = np.frombuffer(raw, np.uint8, self.categories, place).astype(bool)
        return SampleLabels(table, whole, annotated)
