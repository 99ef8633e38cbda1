"""An on-disk cache of one layer's activations, written and read with positional file I/O.

Plain ``pwrite``/``pread`` rather than a memory map: mapped pages would count toward the process's resident
memory and grow with the probe set, while the page cache that file I/O uses does not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


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


class ActivationCache:
    """Rows of float32 activations [units, h, w], one per probe image, in a flat file."""

    def __init__(self, path: Path, shape: tuple[int, int, int], n_rows: int, fresh: bool) -> None:
        self.path = path
        self.shape = shape
        self.row_bytes = int(np.prod(shape)) * 4
        self.n_rows = n_rows
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if fresh else 0)
        self._fd = os.open(path, flags, 0o644)
        if fresh:
            os.ftruncate(self._fd, self.row_bytes * n_rows)

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Store ``values[j]`` as row ``rows[j]``; consecutive rows go out in one call."""
        data = np.ascontiguousarray(values, dtype=np.float32)
        for start, end in adjacent_runs(len(rows), lambda j: bool(rows[j] == rows[j - 1] + 1)):
            os.pwrite(self._fd, data[start:end].tobytes(), int(rows[start]) * self.row_bytes)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows as float32 [len(rows), units, h, w]."""
        out = np.empty((len(rows), *self.shape), dtype=np.float32)
        flat = out.reshape(len(rows), -1)
        for start, end in adjacent_runs(len(rows), lambda j: bool(rows[j] == rows[j - 1] + 1)):
            raw = os.pread(self._fd, (end - start) * self.row_bytes, int(rows[start]) * self.row_bytes)
            flat[start:end] = np.frombuffer(raw, dtype=np.float32).reshape(end - start, -1)
        return out

    def flush(self) -> None:
        """Make written rows durable before a checkpoint claims them."""
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
