"""Images to simplify, each with its true class in the model's class list and, where known, object maps.

``--data`` is resolved as for ``unitscope evaluate`` (SceneWorld variants or a folder of class
sub-folders), so a minimal-image run and an accuracy check see the same images and targets. SceneWorld
also gives exact full-resolution object maps for the retention table. Its "object" label category also
names background regions (sky, wall, floor, …); those are not objects here, so their pixels count as
"not on an object", as the paper's question (do minimal scenes keep *objects*?) needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from unitscope.data.sceneworld import OBJECT_CLASSES, REGION_CLASSES, SceneWorldProbe
from unitscope.data.sceneworld.vocabulary import label_numbers
from unitscope.errors import UsageError


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


class ImageSource(Protocol):
    """What ``run_minimal`` walks through: a name and random-access labelled images."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> LabelledImage: ...


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
    """Labelled images from ``open_classification`` (no object maps)."""

    def __init__(self, name: str, data: Sequence[tuple[np.ndarray, int]]) -> None:
        self.name = name
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> LabelledImage:
        image, target = self.data[i]
        return LabelledImage(i, image, int(target))


class SceneWorldSource:
    """SceneWorld renders with their class in the model's classes and their object maps."""

    def __init__(self, name: str, probe: SceneWorldProbe, remap: np.ndarray) -> None:
        self.name = name
        self.probe = probe
        self.remap = remap
        objects = label_numbers("object")
        self.object_names = {objects[name]: name for name in OBJECT_CLASSES}
        self.background = np.array([objects[name] for name in REGION_CLASSES])

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, i: int) -> LabelledImage:
        rendered = self.probe.render(i)
        things = np.where(np.isin(rendered.object_map, self.background), 0, rendered.object_map)
        return LabelledImage(i, rendered.image, int(self.remap[rendered.class_index]), things[None], self.object_names)


def open_source(
    spec: str, class_names: Sequence[str] | None, n: int, seed: int, size: int
) -> MinimalSource | SceneWorldSource:
    """Resolve ``--data`` (see the module notes)."""
    from unitscope.data import SCENEWORLD_SPECS
    from unitscope.data.class_names import no_class_names
    from unitscope.data.classification import class_remap, open_classification

    if spec not in SCENEWORLD_SPECS:
        data = open_classification(spec, class_names, n=n, seed=seed, size=size, command="minimal")
        return MinimalSource(data.name, data)  # type: ignore[arg-type]
    if not class_names:
        raise no_class_names("minimal")
    if n <= 0:
        raise UsageError(f"--n must be positive, got {n}")
    probe = SceneWorldProbe(n=n, seed=seed, size=size, **SCENEWORLD_SPECS[spec])  # type: ignore[arg-type]
    return SceneWorldSource(spec, probe, class_remap(probe.class_names, class_names, f"--data {spec}"))
