"""An on-disk cache of every probe image's encoded labels, appended in pass 1 and read back in pass 2.

Pass 2 needs only the labels; rather than reopening every image and label file, pass 1 (whose loader
workers decode them anyway) appends each sample's :class:`~unitscope.stats.labels.SampleLabels` here.
Records have different sizes (a sample stacks any number of maps), so they are appended, and where each
starts is part of pass 1's checkpoint: a resumed run cuts the file back to the checkpoint's end and appends
from there, so the cache and the statistics always describe the same images. Positional file I/O, like
the activation cache, so resident memory does not grow with the probe set.

Record: int32 ``k, m, r``; the table [k, P], read row by row, as ``r`` runs of equal labels (int32 lengths,
then the labels as int16, int32 when a label number needs it) or, where runs would not be smaller (``r`` =
-1), whole; ``m`` int32 whole-image labels; C uint8 category flags. Label maps are piecewise constant: a
SceneWorld record is ~11 KB as runs against ~100 KB whole, so the cache writes, stores and reads a tenth.
Caches of an earlier format (``k, m`` and the table whole) resume in that format.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from unitscope.dissection.cache import adjacent_runs
from unitscope.errors import UsageError
from unitscope.stats.labels import SampleLabels, run_starts

_MISSING = -1
_FORMAT = 2  # run-length records; format 1 (no run count, every table whole) is read and continued as such
_WHOLE = -1  # run count of a record whose table is stored whole
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
        self.format = _FORMAT
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def resume(self, state: dict[str, object] | None) -> None:
        """Continue from a checkpoint's ``state_dict`` (None: start empty), dropping rows written after it."""
        if state is None:
            self.offsets[:], self.sizes[:], self.end, self.format = _MISSING, 0, 0, _FORMAT
        else:
            offsets, sizes, end = state.get("offsets"), state.get("sizes"), state.get("end")
            form = state.get("format", 1)  # checkpoints before run-length records carry no format
            if (not isinstance(offsets, torch.Tensor) or not isinstance(sizes, torch.Tensor)
                    or not isinstance(end, int) or offsets.shape != self.offsets.shape
                    or os.fstat(self._fd).st_size < end or form not in (1, _FORMAT)):
                raise UsageError(f"the label cache {self.path} does not fit its checkpoint; "
                                 "pass --overwrite to start afresh")
            self.offsets, self.sizes, self.end = offsets.numpy().copy(), sizes.numpy().copy(), end
            self.format = int(form)
        os.ftruncate(self._fd, self.end)

    def state_dict(self) -> dict[str, object]:
        return {"offsets": torch.from_numpy(self.offsets.copy()), "sizes": torch.from_numpy(self.sizes.copy()),
                "end": self.end, "format": self.format}

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
                try:
                    out.append(self._decode(raw[place:place + length]))
                except ValueError as err:  # a short or inconsistent record: the file was changed under us
                    raise UsageError(f"the label cache {self.path} is damaged at image {int(row)} ({err}); "
                                     "pass --overwrite to start afresh") from None
                place += length
        return out

    def flush(self) -> None:
        """Make appended records durable before a checkpoint claims them."""
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def _encode(self, sample: SampleLabels) -> list[np.ndarray]:
        """One record's pieces, in file order: the header, the table (as runs or whole), the whole-image labels,
        the categories."""
        k, m = len(sample.table), len(sample.whole)
        if sample.table.shape[1:] != (self.pixels,) or sample.annotated.shape != (self.categories,):
            raise UsageError(f"labels of shape {sample.table.shape} do not fit the label cache {self.path}")
        tail: list[np.ndarray] = [np.ascontiguousarray(sample.whole, dtype=np.int32),
                                  np.ascontiguousarray(sample.annotated, dtype=np.uint8)]
        if self.format == 1:
            return [np.array([k, m], np.int32), np.ascontiguousarray(sample.table, dtype=self.dtype), *tail]
        flat = sample.table.reshape(-1)
        at = run_starts(flat[None])  # runs of the whole table, read row by row
        if at.size * (4 + self.dtype.itemsize) >= flat.size * self.dtype.itemsize:
            return [np.array([k, m, _WHOLE], np.int32), np.ascontiguousarray(sample.table, dtype=self.dtype), *tail]
        lengths = np.diff(at, append=flat.size).astype(np.int32)
        return [np.array([k, m, at.size], np.int32), lengths, flat[at].astype(self.dtype), *tail]

    def _decode(self, raw: bytes) -> SampleLabels:
        header = 2 if self.format == 1 else 3
        k, m, *runs = (int(v) for v in np.frombuffer(raw, np.int32, header))
        place = 4 * header
        if not runs or runs[0] == _WHOLE:
            table = np.frombuffer(raw, self.dtype, k * self.pixels, place).astype(np.int32).reshape(k, self.pixels)
            place += k * self.pixels * self.dtype.itemsize
        else:
            lengths = np.frombuffer(raw, np.int32, runs[0], place)
            place += 4 * runs[0]
            values = np.frombuffer(raw, self.dtype, runs[0], place)
            place += runs[0] * self.dtype.itemsize
            if int(lengths.sum()) != k * self.pixels or bool((lengths < 1).any()):
                raise ValueError(f"its runs cover {int(lengths.sum())} of {k * self.pixels} pixels")
            table = np.repeat(values.astype(np.int32), lengths).reshape(k, self.pixels)
        whole = np.frombuffer(raw, np.int32, m, place).astype(np.int64)
        place += 4 * m
        annotated = np.frombuffer(raw, np.uint8, self.categories, place).astype(bool)
        if place + self.categories != len(raw):
            raise ValueError(f"the record holds {len(raw)} bytes, its contents {place + self.categories}")
        return SampleLabels(table, whole, annotated)
