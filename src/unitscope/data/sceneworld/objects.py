"""The object catalogue: each class's builder, real-world height and where it may stand.

``height`` is the object's height as a fraction of the image when it stands nearest the camera.
Placements: ``floor`` (anywhere on the floor), ``back`` (against the back wall), ``wall`` (hung on it),
``on`` (on a table, desk or cabinet), ``ground`` (outdoors), ``water`` (on water if there is any).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unitscope.data.sceneworld import objects_furniture as F
from unitscope.data.sceneworld import objects_outdoor as O
from unitscope.data.sceneworld import objects_room as R
from unitscope.data.sceneworld.primitives import Dice, Prim
from unitscope.data.sceneworld.vocabulary import OBJECT_CLASSES

Builder = Callable[[Dice, str], tuple[float, list[Prim]]]


@dataclass(frozen=True)
class ObjectSpec:
    """How to draw and where to put one object class; ``home`` is the group it belongs to naturally."""

    name: str
    build: Builder
    height: float
    indoor: tuple[str, ...]
    outdoor: tuple[str, ...]
    home: str


def _spec(name: str, build: Builder, height: float, indoor: tuple[str, ...], outdoor: tuple[str, ...],
          home: str) -> ObjectSpec:
    return ObjectSpec(name, build, height, indoor, outdoor, home)


OBJECT_SPECS: dict[str, ObjectSpec] = {s.name: s for s in (
    _spec("bed", F.build_bed, 0.38, ("floor",), ("ground",), "indoor"),
    _spec("chair", F.build_chair, 0.32, ("floor",), ("ground",), "indoor"),
    _spec("table", F.build_table, 0.26, ("floor",), ("ground",), "indoor"),
    _spec("sofa", F.build_sofa, 0.32, ("floor",), ("ground",), "indoor"),
    _spec("lamp", F.build_lamp, 0.5, ("floor", "on"), ("ground",), "indoor"),
    _spec("window", R.build_window, 0.3, ("wall",), ("ground",), "indoor"),
    _spec("door", R.build_door, 0.55, ("back",), ("ground",), "indoor"),
    _spec("toilet", R.build_toilet, 0.37, ("floor", "back"), ("ground",), "indoor"),
    _spec("sink", R.build_sink, 0.32, ("back",), ("ground",), "indoor"),
    _spec("bathtub", R.build_bathtub, 0.28, ("floor", "back"), ("ground",), "indoor"),
    _spec("stove", R.build_stove, 0.4, ("back",), ("ground",), "indoor"),
    _spec("fridge", R.build_fridge, 0.62, ("back",), ("ground",), "indoor"),
    _spec("cabinet", F.build_cabinet, 0.38, ("back",), ("ground",), "indoor"),
    _spec("desk", F.build_desk, 0.32, ("floor", "back"), ("ground",), "indoor"),
    _spec("monitor", R.build_monitor, 0.2, ("on",), ("ground",), "indoor"),
    _spec("bookshelf", F.build_bookshelf, 0.6, ("back",), ("ground",), "indoor"),
    _spec("painting", R.build_painting, 0.2, ("wall",), ("ground",), "indoor"),
    _spec("plant", R.build_plant, 0.3, ("floor", "on"), ("ground",), "indoor"),
    _spec("bench", F.build_bench, 0.22, ("floor",), ("ground",), "outdoor"),
    _spec("car", O.build_car, 0.25, ("floor",), ("ground",), "outdoor"),
    _spec("person", O.build_person, 0.46, ("floor",), ("ground",), "outdoor"),
    _spec("tree", O.build_tree, 0.68, ("floor",), ("ground",), "outdoor"),
    _spec("boat", O.build_boat, 0.34, ("floor",), ("water",), "outdoor"),
    _spec("house", O.build_house, 0.5, ("back",), ("ground",), "outdoor"),
    _spec("streetlight", O.build_streetlight, 0.75, ("floor",), ("ground",), "outdoor"),
    _spec("fence", O.build_fence, 0.17, ("floor",), ("ground",), "outdoor"),
    _spec("cow", O.build_cow, 0.28, ("floor",), ("ground",), "outdoor"),
    _spec("umbrella", O.build_umbrella, 0.45, ("floor",), ("ground",), "outdoor"),
    _spec("rock", O.build_rock, 0.18, ("floor",), ("ground",), "outdoor"),
    _spec("flower", O.build_flower, 0.18, ("floor", "on"), ("ground",), "outdoor"),
)}

if tuple(OBJECT_SPECS) != OBJECT_CLASSES:
    raise RuntimeError("OBJECT_SPECS must list OBJECT_CLASSES in the same order")
