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

from unitscope.analysis.overlay import blend_heatmap, blend_labels, concept_colours

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

PICTURE_SIDE = 640  # the longest side of the uploaded image as shown


@dataclass(frozen=True)
class UnitRef:
    """A unit behind an object: its layer and number, its Network Dissection label, whether it detects the object."""

    layer: str
    unit: int
    label: str = ""
    detector: bool = False


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
    """What the result page shows: top scenes, boxes, and PNG pictures ("image": the upload as shown,
    "segmentation", "cam")."""

    scenes: tuple[Scene, ...]
    boxes: tuple[Box, ...]
    pictures: dict[str, bytes]
    legend: tuple[tuple[str, str], ...] = ()  # segmentation concept → colour (#rrggbb)
    cam: str = ""  # how the class map was made ("cam at conv5")

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.pictures.values())


class Seer:
    """A run's all-in-one system, opened once (on first use or by :meth:`warm`), one image at a time (its
    hooks hold per-pass state, so two workers never share it)."""

    def __init__(self, run: Path, device: str = "cpu", trust: Trust | None = None, fit_n: int | None = None) -> None:
        self.run = run
        self.device = device
        self.trust = trust
        self.fit_n = fit_n
        self._system: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self._system is None:
            from unitscope.see import SeeOptions, SeeSystem

            options = SeeOptions(fit_n=self.fit_n) if self.fit_n is not None else None
            self._system = SeeSystem.open(self.run, device=self.device, trust=self.trust, options=options)
        return self._system

    def warm(self) -> None:
        """Open the system now (the network and its concept vectors), so the first upload need not wait."""
        with self._lock:
            self._open()

    def see(self, image: Image.Image, name: str = "upload") -> SightView:
        """One image through the run's system (one forward pass), as a view."""
        with self._lock:
            [sight] = self._open().see([image], names=[name])
            found = sight.to_json()
        return view_of(found, image)


def view_of(found: Mapping[str, Any], image: Image.Image) -> SightView:
    """A :class:`SightView` from ``Sight.to_json()`` (schema ``unitscope.see/sight`` 1): the scene's top classes,
    the objects' boxes as fractions of the picture with their units, the segmentation and the class map drawn
    over the shown image."""
    height, width = (int(v) for v in found["image_size"])
    scenes = tuple(Scene(str(s["name"]), float(s["probability"])) for s in found["scene"])
    boxes = tuple(Box(str(o["concept"]), float(o["confidence"]), _fractions(o["box"], width, height),
                      tuple(UnitRef(str(u["layer"]), int(u["unit"]), str(u.get("label", "")),
                                    bool(u.get("detector", False))) for u in o["units"]))
                  for o in found["objects"])
    shown = _shown(image)
    picture = np.asarray(shown, dtype=np.uint8)
    segmentation = found["segmentation"]
    names = {int(k): str(v) for k, v in segmentation["concepts"].items()}
    colours = concept_colours(sorted(names))
    labels = np.asarray(segmentation["labels"], dtype=np.int64)
    cam = found["cam"]
    heat = np.asarray(cam["heatmap"], dtype=np.float32) / float(cam["scale"])
    heat_shown = np.asarray(Image.fromarray(heat, mode="F").resize(shown.size, Image.Resampling.BILINEAR))
    pictures = {"image": png(shown),
                "segmentation": png(Image.fromarray(blend_labels(picture, labels, colours))),
                "cam": png(Image.fromarray(blend_heatmap(picture, heat_shown)))}
    legend = tuple((names[k], _hex(colours[k])) for k in sorted(names))
    return SightView(scenes, boxes, pictures, legend, f"{cam['method']} at {cam['layer']}")


def _fractions(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as fractions of the image from see's (y0, x0, y1, x1) in image pixels."""
    y0, x0, y1, x1 = (float(v) for v in box)
    return _clip(x0 / width), _clip(y0 / height), _clip(x1 / width), _clip(y1 / height)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _hex(colour: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


def _shown(image: Image.Image) -> Image.Image:
    scale = PICTURE_SIDE / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
