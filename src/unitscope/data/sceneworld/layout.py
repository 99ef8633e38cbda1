"""What composition hands to the renderer: labelled items in painter's order, plus lighting.

Everything random is decided here, so rendering is a pure function of the layout: the background-only
control renders the very same layout with the object items left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from unitscope.data.sceneworld.primitives import Prim


@dataclass(frozen=True)
class Item:
    """One labelled thing (an object instance or a background region) and its shapes.

    ``box`` (x, y, w, h) in image units maps the shapes' unit box into the image, mirrored left-right
    when ``mirror``; ``texture_shift`` (fy, fx) in [0, 1) picks where its texture windows start.
    """

    label: str
    prims: tuple[Prim, ...]
    box: tuple[float, float, float, float]
    mirror: bool
    depth: float
    is_object: bool
    texture_shift: tuple[float, float]


@dataclass(frozen=True)
class Stage:
    """Background geometry objects are placed against (image units, y downwards).

    indoor: ``horizon`` is the floor line at the back wall, ``wall`` the back wall's (left, right,
    top) extent. outdoor: ``horizon`` is where sky meets land or water, ``ground_top`` where walkable
    ground starts, ``water`` the water band, ``road`` (centre x, half width at top, at bottom, top y).
    """

    group: str
    horizon: float
    ground_top: float
    wall: tuple[float, float, float] = (0.0, 1.0, 0.0)
    water: tuple[float, float] | None = None
    road: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Layout:
    """A composed image: items back to front, the classification target and the lighting."""

    items: tuple[Item, ...]
    class_index: int
    scene: str | None
    light: tuple[float, float, float]  # gradient along x, gradient along y, overall brightness
    noise: tuple[float, float, float]  # sigma (0-1 intensity units), window shift fy, fx
