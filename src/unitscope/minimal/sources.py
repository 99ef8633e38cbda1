"""Images to simplify, each with its true class in the model's class list and, where known, object maps.

``--data`` is resolved as for ``unitscope evaluate`` (SceneWorld variants or a folder of class
sub-folders), so a minimal-image run and an accuracy check see the same images and targets. SceneWorld
(and any probe set with pixel ``object`` labels) also gives ground-truth object maps for the retention
table; they are brought to the image's size by nearest-neighbour sampling when stored smaller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from unitscope.data.probe import ProbeSet


@dataclass(frozen=True)
class LabelledImage:
    """One image to simplify."""

    index: int
    image: np.ndarray  # uint8 [H, W, 3]
    target: int  # index into the model's classes
    object_maps: np.ndarray | None = None  # int [k, H, W] label numbers, 0 = no object
    object_names: Mapping[int, str] = field(default_factory=dict)
    name: str = ""  # file name stem for outputs; the zero-padded index when empty

    @property
    def ident(self) -> str:
        return self.name or f"{self.index:05d}"


def resize_nearest(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Label maps [k, h, w] sampled at [k, height, width] (nearest neighbour, pixel centres)."""
    _, h, w = maps.shape
    if (h, w) == (height, width):
        return maps
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return maps[:, rows[:, None], cols[None, :]]


class SingleImage:
    """One image given on the command line."""

    def __init__(self, image: np.ndarray, target: int, name: str) -> None:
        self.name = name
        self.sample = LabelledImage(0, image, target, name=name)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> LabelledImage:
        if i != 0:
            raise IndexError(i)
        return self.sample


class MinimalSource:
    """Labelled images from ``open_classification``, with object maps from a probe set when it has them."""

    def __init__(self, name: str, data: Sequence[tuple[np.ndarray, int]], probe: ProbeSet | None = None) -> None:
        self.name = name
        self.data = data
        self.probe = probe
        self.object_names: dict[int, str] = (
            {c.number: c.name for c in probe.concepts.in_category("object")} if probe is not None else {}
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> LabelledImage:
        image, target = self.data[i]
        maps = None
        if self.probe is not None:
            sample = self.probe[i]
            labels = sample.pixel_labels.get("object")
            if labels is not None:
                maps = resize_nearest(np.asarray(labels), image.shape[0], image.shape[1])
        return LabelledImage(i, image, int(target), maps, self.object_names)


def open_source(
    spec: str, class_names: Sequence[str] | None, n: int, seed: int, size: int
) -> MinimalSource:
    """Resolve ``--data`` (see the module notes)."""
    from unitscope.data import SCENEWORLD_SPECS, open_probe
    from unitscope.data.classification import open_classification

    data = open_classification(spec, class_names, n=n, seed=seed, size=size)
    probe = open_probe(spec, n=n, seed=seed, size=size) if spec in SCENEWORLD_SPECS else None
    if probe is not None and len(probe) != len(data):
        probe = None
    return MinimalSource(data.name, data, probe)  # type: ignore[arg-type]
