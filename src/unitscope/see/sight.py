"""What ``see`` finds in one image, as plain data with a documented, versioned JSON form (``docs/see.md``).

A :class:`Sight` holds the scene's top-5 classes, the CAM of the predicted class, the concept-vector
segmentation and the object instances found in it (boxes with a confidence and the units behind each).
Arrays (heatmap, segmentation) stay numpy in memory; ``to_json`` writes them as nested lists of small
integers (the heatmap in 0…255, the segmentation as concept numbers), so one JSON line is a whole sight.
``Sight.from_json(sight.to_json())`` gives the sight back (the heatmap to 1/255).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitscope.errors import UsageError

SCHEMA = "unitscope.see/sight"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SceneGuess:
    """One of the scene's top classes: its index in the classifier, name and softmax probability."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Support:
    """A unit behind an object: its layer (the run's name), unit number, its share of the box's concept score
    (``w_cu · x_u`` over the box, standardised features, divided by the sum over the units shown), and its
    Network Dissection label, IoU and whether it is a detector of the box's concept."""

    layer: str
    unit: int
    contribution: float
    label: str
    iou: float
    detector: bool

    @property
    def page(self) -> str:
        """The unit's page, relative to the run's ``report.html``."""
        return f"units/{self.layer}/{self.unit}.html"


@dataclass(frozen=True)
class ObjectBox:
    """One object instance: a connected region of the segmentation of one concept.

    ``box`` is (y0, x0, y1, x1), end-exclusive, in *image* pixels; ``pixels`` its area at the segmentation's
    (label) resolution; ``confidence`` the mean probability of the concept over the region (softmax over the
    concept vectors' scores)."""

    concept: str
    number: int
    box: tuple[int, int, int, int]
    confidence: float
    pixels: int
    units: tuple[Support, ...] = ()


@dataclass(frozen=True)
class Sight:
    """Everything ``see`` found in one image (``name``: the caller's name for it, e.g. the file stem)."""

    name: str
    image_size: tuple[int, int]  # (h, w) of the image as given
    scene: tuple[SceneGuess, ...]
    cam_method: str
    cam_layer: str
    heatmap: np.ndarray  # float [h, w] in [0, 1] at the segmentation's resolution
    segmentation: np.ndarray  # int [h, w] concept numbers (0 = none)
    concepts: dict[int, str]  # concept number -> name, for every number in ``segmentation``
    objects: tuple[ObjectBox, ...]
    passes: int = 1  # forward passes spent on this image's batch (``--minimal`` adds its own)
    minimal: dict[str, object] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def top(self) -> SceneGuess:
        return self.scene[0]

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (schema ``unitscope.see/sight``, ``version`` 1)."""
        heat = np.clip(np.round(np.asarray(self.heatmap, dtype=np.float64) * 255), 0, 255).astype(np.int64)
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "name": self.name,
            "image_size": list(self.image_size),
            "scene": [{"index": g.index, "name": g.name, "probability": g.probability} for g in self.scene],
            "cam": {"method": self.cam_method, "layer": self.cam_layer, "scale": 255, "heatmap": heat.tolist()},
            "segmentation": {"labels": np.asarray(self.segmentation, dtype=np.int64).tolist(),
                             "concepts": {str(k): v for k, v in sorted(self.concepts.items())}},
            "objects": [{"concept": o.concept, "number": o.number, "box": list(o.box), "confidence": o.confidence,
                         "pixels": o.pixels,
                         "units": [{"layer": s.layer, "unit": s.unit, "contribution": s.contribution,
                                    "label": s.label, "iou": s.iou, "detector": s.detector, "page": s.page}
                                   for s in o.units]} for o in self.objects],
            "passes": self.passes,
            "minimal": self.minimal,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sight:
        """Read the JSON form back; another schema or version is one ``UsageError``."""
        if data.get("schema") != SCHEMA or data.get("version") != SCHEMA_VERSION:
            raise UsageError(f"not a {SCHEMA} version {SCHEMA_VERSION} record (schema {data.get('schema')!r}, "
                             f"version {data.get('version')!r}); write it again with this unitscope's see")
        cam, seg = data["cam"], data["segmentation"]
        objects = tuple(
            ObjectBox(o["concept"], int(o["number"]), (int(o["box"][0]), int(o["box"][1]), int(o["box"][2]),
                                                      int(o["box"][3])),
                      float(o["confidence"]), int(o["pixels"]),
                      tuple(Support(s["layer"], int(s["unit"]), float(s["contribution"]), s["label"], float(s["iou"]),
                                    bool(s["detector"])) for s in o["units"]))
            for o in data["objects"])
        return cls(
            name=str(data["name"]),
            image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
            scene=tuple(SceneGuess(int(g["index"]), str(g["name"]), float(g["probability"])) for g in data["scene"]),
            cam_method=str(cam["method"]),
            cam_layer=str(cam["layer"]),
            heatmap=np.asarray(cam["heatmap"], dtype=np.float64) / float(cam["scale"]),
            segmentation=np.asarray(seg["labels"], dtype=np.int64),
            concepts={int(k): str(v) for k, v in seg["concepts"].items()},
            objects=objects,
            passes=int(data["passes"]),
            minimal=data.get("minimal"),
            extra=dict(data.get("extra") or {}),
        )
