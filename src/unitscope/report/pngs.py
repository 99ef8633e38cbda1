"""Writing the report's many small PNG files: Pillow tuned for speed, optionally on a few threads.

A full report writes k PNGs per unit (20 × 512 for ResNet-18 layer4), so encoding dominates its cost.
Pillow's default (zlib level 6, five row filters tried per row) takes ~6 ms for a 128 px tile here; at zlib
level 1 with the run-length strategy (Z_RLE) it takes ~1.7 ms and the files are no larger (measured on
report tiles: 23.3 kB against 23.4 kB). PNG is lossless, so the pixels are the same either way.
``threads=0`` writes in the caller (the default on 2 cores).
"""

from __future__ import annotations

import io
import os
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from unitscope.errors import UsageError

COMPRESS_LEVEL = 1


def default_threads() -> int:
    """Encoding threads: none on up to 2 cores (measured on 2 shared cores: no faster, ~8 % more CPU; see
    bench/report.py), else up to 4 (Pillow encodes without the GIL, so they overlap with the drawing)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(4, cores - 1)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] (RGB) or [H, W] (grey) as the bytes of an 8-bit PNG file."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) \
            or 0 in image.shape:
        raise UsageError(f"PNG needs uint8 [H, W, 3] or [H, W] pixels, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=COMPRESS_LEVEL,
                                                      compress_type=zlib.Z_RLE)
    return buffer.getvalue()


def save_png(image: np.ndarray, path: Path) -> None:
    """Write uint8 [H, W, 3] (or [H, W]) as a PNG file."""
    Path(path).write_bytes(encode_png(np.ascontiguousarray(image)))


class PngWriter:
    """Saves PNG files in the background (``threads`` > 0) or at once; ``close`` waits and re-raises errors."""

    def __init__(self, threads: int | None = None) -> None:
        count = default_threads() if threads is None else threads
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="png") if count > 0 else None
        self._pending: list[Future[None]] = []

    def save(self, image: np.ndarray, path: Path) -> None:
        if self._pool is None:
            save_png(image, path)
            return
        self._pending.append(self._pool.submit(save_png, image, path))
        if len(self._pending) > 256:  # bound what waits in memory
            self._drain(128)

    def _drain(self, keep: int = 0) -> None:
        done, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep:]
        for future in done:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            try:
                self._drain()
            finally:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
