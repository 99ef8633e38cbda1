"""The one module that touches ``unitscope.see``: what one forward pass sees, as the server shows it.

``Seer`` opens a run's all-in-one system once (lazily, in a worker thread) and turns each
:class:`~unitscope.see.Sight` into a :class:`SightView` of plain values and PNG bytes, so the pages and the
result store never depend on the see API's shape.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

PICTURE_SIDE = 640  # the longest side of the uploaded image as shown
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class UnitRef:
    layer: str
    unit: int


@dataclass(frozen=True)
class Box:
    """One object instance: its label, confidence, box as fractions of the picture (x0, y0, x1, y1), units."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    units: tuple[UnitRef, ...]


@dataclass(frozen=True)
class Scene:
    label: str
    probability: float


@dataclass(frozen=True)
class SightView:
    """What the result page shows: top scenes, boxes, and named PNG pictures ("image" is the upload itself)."""

    scenes: tuple[Scene, ...]
    boxes: tuple[Box, ...]
    pictures: dict[str, bytes]

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.pictures.values())


class Seer:
    """A run's all-in-one system, opened once on first use (thread-safe)."""

    def __init__(self, run: Path, device: str = "cpu", trust: Trust | None = None) -> None:
        self.run = run
        self.device = device
        self.trust = trust
        self._system: Any = None
        self._lock = threading.Lock()

    def system(self) -> Any:
        with self._lock:
            if self._system is None:
                from unitscope.see import SeeSystem

                trust = self.trust
                self._system = SeeSystem.open(self.run, model=trust.model if trust else None,
                                              weights=trust.weights if trust else None, device=self.device,
                                              trust=trust)
            return self._system

    def see(self, image: Image.Image, name: str = "upload") -> SightView:
        """One image through the run's system (one forward pass), as a view."""
        system = self.system()
        [sight] = system.see([image], names=[name])
        return view_of(sight.to_json(), image)


def view_of(found: Mapping[str, Any], image: Image.Image) -> SightView:
    """A :class:`SightView` from ``Sight.to_json()``: scenes, boxes (scaled to fractions) and its pictures."""
    height, width = _size(found, image)
    scenes = tuple(Scene(str(s.get("label", s.get("class", "?"))), float(s.get("probability", s.get("p", 0.0))))
                   for s in found.get("scenes", ()))
    boxes = tuple(Box(str(b.get("label", "?")), float(b.get("score", 0.0)), _fractions(b.get("box", ()), width, height),
                      tuple(UnitRef(str(u["layer"]), int(u["unit"])) for u in b.get("units", ())))
                  for b in found.get("boxes", ()))
    pictures = {"image": png(_shown(image))}
    for key, value in dict(found.get("images", {})).items():
        encoded = _picture(value)
        if encoded is not None and str(key).isidentifier():
            pictures[str(key)] = encoded
    return SightView(scenes, boxes, pictures)


def _size(found: Mapping[str, Any], image: Image.Image) -> tuple[int, int]:
    size = found.get("size")
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    return image.height, image.width


def _fractions(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return _clip(x0 / width), _clip(y0 / height), _clip(x1 / width), _clip(y1 / height)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _shown(image: Image.Image) -> Image.Image:
    scale = PICTURE_SIDE / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def _picture(value: object) -> bytes | None:
    """PNG bytes from PNG bytes or an image array (uint8, or floats in [0, 1])."""
    if isinstance(value, bytes | bytearray):
        return bytes(value) if bytes(value[:8]) == PNG_SIGNATURE else None
    if isinstance(value, Image.Image):
        return png(value)
    if isinstance(value, np.ndarray) and value.ndim in (2, 3):
        array = value if value.dtype == np.uint8 else (np.clip(value, 0, 1) * 255).round().astype(np.uint8)
        return png(Image.fromarray(array))
    return None


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
