"""Scene classes: which objects each scene holds, how often, and (outdoors) its background odds.

Object frequencies are long-tailed as in SUN/ADE20K: two to four characteristic objects are common and
drawn large (``big``), many others are rare, and objects are shared between scenes. Every image holds
at least one characteristic object (``key``). Backgrounds come from one pool per group: indoor scenes
share it exactly; outdoor scenes only tilt the odds of ground type, water and road a little, so the
background alone says "outdoor" but hardly which outdoor scene.
"""

from __future__ import annotations

from dataclasses import dataclass

from unitscope.data.sceneworld.vocabulary import SCENE_CLASSES


@dataclass(frozen=True)
class Entry:
    """An object that a scene may hold: probability of appearing, count range, drawn near (big) or not."""

    obj: str
    p: float
    count: tuple[int, int] = (1, 1)
    big: bool = False


@dataclass(frozen=True)
class Outdoor:
    """Odds of an outdoor scene's background: ground type weights, water, water to the bottom, road."""

    ground: tuple[float, float, float, float]  # grass, sand, ground (soil), road
    water: float
    water_full: float
    road: float


GROUND_TYPES: tuple[str, ...] = ("grass", "sand", "ground", "road")


@dataclass(frozen=True)
class SceneSpec:
    """One scene class."""

    name: str
    group: str
    entries: tuple[Entry, ...]
    key: tuple[str, ...]
    outdoor: Outdoor | None = None


E = Entry
SCENE_SPECS: dict[str, SceneSpec] = {s.name: s for s in (
    SceneSpec("bedroom", "indoor", (
        E("bed", 0.97, big=True), E("lamp", 0.6), E("window", 0.5), E("cabinet", 0.35), E("painting", 0.35),
        E("door", 0.15), E("chair", 0.15), E("plant", 0.1), E("bookshelf", 0.06), E("person", 0.05),
    ), ("bed",)),
    SceneSpec("kitchen", "indoor", (
        E("stove", 0.8, big=True), E("fridge", 0.75, big=True), E("cabinet", 0.8, (1, 3)), E("sink", 0.3),
        E("window", 0.4), E("table", 0.3), E("chair", 0.25, (1, 2)), E("plant", 0.12), E("lamp", 0.08),
        E("person", 0.1), E("door", 0.1),
    ), ("stove", "fridge")),
    SceneSpec("bathroom", "indoor", (
        E("toilet", 0.85, big=True), E("bathtub", 0.65, big=True), E("sink", 0.75), E("window", 0.25),
        E("cabinet", 0.15), E("door", 0.15), E("plant", 0.1), E("painting", 0.06),
    ), ("toilet", "bathtub")),
    SceneSpec("living_room", "indoor", (
        E("sofa", 0.95, big=True), E("table", 0.5), E("lamp", 0.5), E("painting", 0.5), E("window", 0.5),
        E("plant", 0.35), E("chair", 0.25), E("bookshelf", 0.2), E("monitor", 0.12), E("person", 0.1),
        E("door", 0.08),
    ), ("sofa",)),
    SceneSpec("office", "indoor", (
        E("desk", 0.92, big=True), E("monitor", 0.85, (1, 2)), E("chair", 0.75), E("bookshelf", 0.5),
        E("window", 0.35), E("plant", 0.2), E("lamp", 0.2), E("cabinet", 0.2), E("person", 0.15),
        E("door", 0.1), E("painting", 0.08),
    ), ("desk",)),
    SceneSpec("street", "outdoor", (
        E("car", 0.9, (1, 3), big=True), E("house", 0.7, (1, 2)), E("streetlight", 0.6, (1, 2)),
        E("person", 0.4, (1, 2)), E("tree", 0.3), E("bench", 0.12), E("fence", 0.08), E("umbrella", 0.03),
    ), ("car", "streetlight"), Outdoor((0.2, 0.1, 0.2, 0.5), 0.15, 0.0, 0.45)),
    SceneSpec("forest", "outdoor", (
        E("tree", 0.99, (3, 7), big=True), E("rock", 0.4, (1, 2)), E("flower", 0.3, (1, 3)), E("person", 0.1),
        E("fence", 0.05), E("house", 0.05), E("cow", 0.03),
    ), ("tree",), Outdoor((0.45, 0.1, 0.35, 0.1), 0.25, 0.02, 0.15)),
    SceneSpec("beach", "outdoor", (
        E("umbrella", 0.9, (1, 3), big=True), E("person", 0.7, (1, 3)), E("rock", 0.3), E("boat", 0.2),
        E("chair", 0.15), E("tree", 0.12), E("house", 0.05),
    ), ("umbrella",), Outdoor((0.15, 0.45, 0.25, 0.15), 0.55, 0.05, 0.15)),
    SceneSpec("harbor", "outdoor", (
        E("boat", 0.98, (1, 3), big=True), E("house", 0.4, (1, 2)), E("streetlight", 0.35), E("person", 0.3),
        E("car", 0.12), E("fence", 0.15), E("rock", 0.1), E("umbrella", 0.03),
    ), ("boat",), Outdoor((0.15, 0.25, 0.3, 0.3), 0.7, 0.3, 0.25)),
    SceneSpec("pasture", "outdoor", (
        E("cow", 0.9, (1, 4), big=True), E("fence", 0.75, big=True), E("tree", 0.5, (1, 2)), E("flower", 0.3, (1, 3)),
        E("house", 0.2), E("person", 0.1), E("rock", 0.15),
    ), ("cow", "fence"), Outdoor((0.5, 0.1, 0.3, 0.1), 0.25, 0.02, 0.15)),
)}

if tuple(SCENE_SPECS) != SCENE_CLASSES:
    raise RuntimeError("SCENE_SPECS must list SCENE_CLASSES in the same order")
