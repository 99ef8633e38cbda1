"""Drawing vocabulary shared by every object builder: random draws, looks and the three shapes.

Shapes are given in the unit box of their object (x to the right, y downwards, y = 1 on the ground):
``RECT`` (x0, y0, x1, y1), ``TRAP`` (y0, y1, xl0, xr0, xl1, xr1: a trapezoid with horizontal top and
bottom, which also covers triangles and slanted bars) and ``ELLIPSE`` (cx, cy, rx, ry). These three are
rasterised with a few vectorised numpy operations each, which is what makes rendering fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import numpy as np

from unitscope.data.sceneworld.colors import RGB
from unitscope.data.sceneworld.textures import MATERIAL_PATTERNS, PATTERN_VARIANTS, TWO_TONE

RECT, TRAP, ELLIPSE = 0, 1, 2
_BLOCK = 256

T = TypeVar("T")


class Dice:
    """Uniform draws served from blocks of one numpy generator: cheap scalar draws, same stream order."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = rng.random(_BLOCK).tolist()
        self._i = 0

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """A uniform float in [lo, hi)."""
        if self._i == _BLOCK:
            self._buf = self._rng.random(_BLOCK).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return lo + (hi - lo) * v

    def chance(self, p: float) -> bool:
        """True with probability p."""
        return self.u() < p

    def int(self, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi] (both ends included)."""
        return min(lo + int(self.u() * (hi - lo + 1)), hi)

    def pick(self, items: Sequence[T]) -> T:
        """One element, uniformly."""
        return items[min(int(self.u() * len(items)), len(items) - 1)]

    def weighted(self, items: Sequence[T], weights: Sequence[float]) -> T:
        """One element with probability proportional to its weight."""
        x = self.u() * sum(weights)
        for item, w in zip(items, weights, strict=True):
            x -= w
            if x < 0:
                return item
        return items[-1]

    def jitter(self, color: RGB, amount: float = 0.06) -> RGB:
        """A nearby colour: a common brightness change plus small per-channel changes."""
        b = self.u(1.0 - amount, 1.0 + amount)
        return (
            min(max(color[0] * b + self.u(-amount, amount) * 0.5, 0.0), 1.0),
            min(max(color[1] * b + self.u(-amount, amount) * 0.5, 0.0), 1.0),
            min(max(color[2] * b + self.u(-amount, amount) * 0.5, 0.0), 1.0),
        )


class Look(NamedTuple):
    """How a part is painted: material, texture pattern (and its variant) and one or two colours."""

    material: str
    pattern: str
    variant: int
    color: RGB
    color2: RGB | None


class Prim(NamedTuple):
    """One shape of an object, with the part it belongs to (None: the object has no part there)."""

    shape: int
    geo: tuple[float, ...]
    part: str | None
    look: Look


def look(d: Dice, material: str, pool: Sequence[RGB], pattern: str | None = None,
         color2: RGB | None = None, variant: int | None = None) -> Look:
    """A random look of a material: colour from ``pool``, pattern from the material's patterns."""
    color = d.jitter(d.pick(pool))
    if pattern is None:
        names, weights = MATERIAL_PATTERNS[material]
        pattern = d.weighted(names, weights)
    if variant is None:
        variant = d.int(0, PATTERN_VARIANTS[pattern] - 1)
    if pattern in TWO_TONE and color2 is None:
        color2 = second_color(d, color)
    return Look(material, pattern, variant, color, color2 if pattern in TWO_TONE else None)


def second_color(d: Dice, color: RGB) -> RGB:
    """A contrasting colour for two-tone patterns: near-white, near-black or a darker shade."""
    kind = d.int(0, 2)
    if kind == 0:
        return d.jitter((0.95, 0.94, 0.9), 0.03)
    if kind == 1:
        return d.jitter((0.12, 0.12, 0.14), 0.03)
    return (color[0] * 0.55, color[1] * 0.55, color[2] * 0.55)


def subtle(d: Dice, color: RGB) -> RGB:
    """A second colour close to ``color`` (a little darker or lighter), for quiet wallpaper and tiles."""
    if d.chance(0.5):
        f = d.u(0.75, 0.88)
        return (color[0] * f, color[1] * f, color[2] * f)
    w = d.u(0.3, 0.5)
    return (color[0] + (1 - color[0]) * w, color[1] + (1 - color[1]) * w, color[2] + (1 - color[2]) * w)


def shade(lk: Look, factor: float) -> Look:
    """The same look, lighter (factor > 1) or darker (factor < 1)."""
    c = lk.color
    return lk._replace(color=(min(c[0] * factor, 1.0), min(c[1] * factor, 1.0), min(c[2] * factor, 1.0)))


def rect(x0: float, y0: float, x1: float, y1: float, part: str | None, lk: Look) -> Prim:
    """Axis-aligned rectangle."""
    return Prim(RECT, (x0, y0, x1, y1), part, lk)


def trap(y0: float, y1: float, xl0: float, xr0: float, xl1: float, xr1: float,
         part: str | None, lk: Look) -> Prim:
    """Trapezoid spanning [xl0, xr0] at y0 and [xl1, xr1] at y1 (a triangle when one span is empty)."""
    return Prim(TRAP, (y0, y1, xl0, xr0, xl1, xr1), part, lk)


def oval(cx: float, cy: float, rx: float, ry: float, part: str | None, lk: Look) -> Prim:
    """Axis-aligned ellipse."""
    return Prim(ELLIPSE, (cx, cy, rx, ry), part, lk)
