"""Writing the report's many small image files: JPEG for outlined photos, PNG where pixels must be exact.

A full report draws k images per unit (20 × 512 for ResNet-18 layer4), so encoding is most of its cost.
Measured on report tiles (128 px, bench/report.py): Pillow's PNG at zlib level 1 with run-length matching
(Z_RLE) takes ~1.2 ms a tile (~22 kB), its JPEG at quality 90 without chroma subsampling ~0.15 ms (~6 kB).
Probe images are photos (Broden's are JPEG files themselves), and at 4:4:4 the one-pixel outline keeps its
colour, so the report's tiles are JPEG; PNG stays for what is not a photo (label maps, plots).
``threads=0`` writes in the caller (the default on 2 cores).
"""

from __future__ import annotations

import io
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from unitscope.dissection.threads import available_cores
from unitscope.errors import UsageError

PNG_COMPRESS_LEVEL = 1
JPEG_QUALITY = 90
SUFFIXES = (".png", ".jpg")


def default_threads() -> int:
    """Encoding threads: none on up to 2 cores (no faster there, a little more CPU; see bench/report.py),
    else up to 4 (Pillow encodes without the GIL, so they overlap with the drawing)."""
    cores = available_cores()
    return 0 if cores <= 2 else min(4, cores - 1)


def _pil(image: np.ndarray) -> Image.Image:
    """Pillow's view of uint8 [H, W, 3] / [H, W] pixels, or of packed uint32 [H, W] RGB pixels (RGBX, no copy)."""
    if image.dtype == np.uint32 and image.ndim == 2 and 0 not in image.shape:  # bytes R, G, B, 0
        packed = np.ascontiguousarray(image)
        return Image.frombuffer("RGBX", (packed.shape[1], packed.shape[0]), packed, "raw", "RGBX", 0, 1)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) \
            or 0 in image.shape:
        raise UsageError(f"an image file needs uint8 [H, W, 3] or [H, W] pixels, got {image.dtype} {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image))


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] (RGB) or [H, W] (grey) as the bytes of an 8-bit PNG file (lossless)."""
    buffer = io.BytesIO()
    pil = _pil(image)
    (pil.convert("RGB") if pil.mode == "RGBX" else pil).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                                                             compress_type=zlib.Z_RLE)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 [H, W, 3] (or [H, W], or packed uint32 [H, W]) as the bytes of a JPEG file, colour at full
    resolution (4:4:4)."""
    if not 1 <= quality <= 95:
        raise UsageError(f"JPEG quality must be in 1..95, got {quality}")
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def save_image(image: np.ndarray, path: Path) -> None:
    """Write uint8 [H, W, 3] (or [H, W]) as a PNG or JPEG file, by the suffix of ``path``."""
    path = Path(path)
    if path.suffix == ".png":
        path.write_bytes(encode_png(image))
    elif path.suffix == ".jpg":
        path.write_bytes(encode_jpeg(image))
    else:
        raise UsageError(f"cannot write {path.name}: image files end in one of {', '.join(SUFFIXES)}")


class ImageWriter:
    """Saves image files in the background (``threads`` > 0) or at once; ``close`` waits and re-raises errors."""

    def __init__(self, threads: int | None = None) -> None:
        count = default_threads() if threads is None else threads
        if count < 0:
            raise UsageError(f"image threads must be 0 or more, got {count}")
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="images") if count > 0 else None
        self._pending: list[Future[None]] = []

    def save(self, image: np.ndarray, path: Path) -> None:
        if self._pool is None:
            save_image(image, path)
            return
        self._pending.append(self._pool.submit(save_image, image, path))
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

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
