"""Which pixels a class activation map should point at: the foreground objects, never the background.

An object label map covers every pixel of a scene (walls, floors and sky are object concepts too), so a
localisation score against all object labels is 1 by construction. CAM is scored on the *foreground*:

- SceneWorld: the placed object instances (every object label but the world's background regions,
  ``REGION_CLASSES``; the world paints nothing else into its object maps).
- A Broden directory: its ``object`` labels minus :data:`BACKGROUND_OBJECTS`, or minus the names the user
  gives (``--background NAME,...``).
- When the explained class is itself a foreground object (an object network), that object's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches

import numpy as np

from unitscope.analysis.cam.localisation import object_mask
from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.errors import UsageError

BACKGROUND_OBJECTS: tuple[str, ...] = (
    "wall", "floor", "ceiling", "sky", "ground", "grass", "road", "sidewalk", "pavement", "path", "runway",
    "building", "water", "sea", "river", "lake", "field", "land", "earth", "sand", "snow", "mountain", "hill",
)
"""Object labels of a Broden directory that are the scene's layout and surfaces ("stuff": ADE20K's and
PASCAL-Context's wall, floor, sky, ground, road, water, ... regions), not objects a scene holds. They fill
most pixels of most scenes, so a heatmap anywhere lands on them. Names a probe set lacks are ignored; it
includes all of SceneWorld's background regions, so a SceneWorld export read as a Broden directory is
scored on the same pixels as SceneWorld itself. ``cam --background`` replaces it."""


@dataclass(frozen=True)
class ForegroundRule:
    """The object label numbers a heatmap is scored against, and how they were chosen."""

    foreground: dict[str, int]  # foreground object name -> label number
    background: tuple[str, ...]  # object names of the probe set left out as background
    origin: str  # "sceneworld", "default" or "given"

    def relevant(self, class_name: str | None) -> set[int]:
        """The explained class's own pixels when it is a foreground object, else every foreground object."""
        if class_name in self.foreground:
            return {self.foreground[class_name]}
        return set(self.foreground.values())

    def mask(self, sample: ProbeSample, class_name: str | None) -> np.ndarray | None:
        """The foreground pixels of one sample at the label resolution (None: no object labels there)."""
        maps = sample.pixel_labels.get("object")
        return None if maps is None else object_mask(maps, self.relevant(class_name))

    def describe(self) -> dict[str, object]:
        what = {"sceneworld": "SceneWorld's placed objects", "default": "object labels minus BACKGROUND_OBJECTS",
                "given": "object labels minus --background"}[self.origin]
        return {"foreground": what, "background": list(self.background),
                "own_class": "an explained class that is a foreground object is scored on its own pixels"}


def foreground_rule(probe: ProbeSet, background: Sequence[str] | None = None) -> ForegroundRule:
    """The rule for ``probe``; ``background`` (names) replaces the default list, each one checked."""
    objects = {c.name: c.number for c in probe.concepts.in_category("object")}
    if background is not None:
        _check_names(background, objects)
        left_out, origin = set(background), "given"
    else:
        from unitscope.data.sceneworld import REGION_CLASSES, SceneWorldProbe

        world = isinstance(probe, SceneWorldProbe)
        left_out, origin = set(REGION_CLASSES if world else BACKGROUND_OBJECTS), "sceneworld" if world else "default"
    return ForegroundRule({name: number for name, number in objects.items() if name not in left_out},
                          tuple(name for name in objects if name in left_out), origin)


def parse_background(text: str | None) -> tuple[str, ...] | None:
    """``--background wall,floor,sky`` as names (None: the default list)."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UsageError("--background needs at least one object name, e.g. --background wall,floor,sky")
    return names


def _check_names(names: Sequence[str], objects: dict[str, int]) -> None:
    for name in names:
        if name not in objects:
            close = get_close_matches(name, list(objects), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UsageError(f"--background {name!r} is not an object label of this probe set{hint}; give names "
                             "from its label.csv, separated by commas")

