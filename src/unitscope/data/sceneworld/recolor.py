"""The colour control: the same layout, every labelled thing painted from one palette shared by all classes.

In SceneWorld an object's paint comes from its class's swatches (stoves metal or ceramic, plants green), so
a colour filter can overlap a class as well as a detector of its shape does. The recoloured world keeps
everything composition decided (layout, shapes, materials, texture patterns, lighting, noise) and replaces
only the paint: each item (placed objects and background regions alike) gets one colour drawn from
``SHARED_PALETTE`` — a named colour chosen uniformly, one of its prototypes, a small jitter — and each of its
parts (the shapes without a part name count as one) a lighter or darker shade of it, drawn the same way for
every class; a two-toned pattern's second colour is a darker shade of its part's. Independent draws per part
would leak the class back through the mean: an item's mean colour would depend on how many parts it has and
how large they are (on 3,000 scenes, 0.06 bits of class in the named colour of an item's mean paint after the
estimator's bias, against 0.004 with one paint per item; tests/test_colour_control.py measures it). The draws
come from a generator keyed by (seed, image, item), apart from the layout's stream, so sample i of the
recoloured set has exactly the masks of sample i of the original; only the ``color`` labels, which name the
paint, change with it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from unitscope.data.sceneworld.colors import COLOR_PROTOTYPES, RGB
from unitscope.data.sceneworld.layout import Item, Layout
from unitscope.data.sceneworld.primitives import Dice
from unitscope.data.sceneworld.vocabulary import COLOR_NAMES

SHARED_PALETTE: tuple[tuple[RGB, ...], ...] = tuple(
    tuple((r / 255.0, g / 255.0, b / 255.0) for r, g, b in COLOR_PROTOTYPES[name]) for name in COLOR_NAMES
)
PART_SHADES = (0.7, 1.2)  # each part's brightness relative to its item's paint, drawn uniformly
SECOND_SHADE = 0.6  # a two-toned pattern's second colour: the part's paint this much darker
_STREAM = 0xC0104  # a fourth seed word: the recolour stream never meets the layout's [seed, index] stream


def recolor_rng(seed: int, index: int, item: int) -> np.random.Generator:
    """The generator of the paints of item ``item`` (painter's order) of sample ``index`` of the set ``seed``."""
    return np.random.default_rng([seed, index, item, _STREAM])


def shared_paint(d: Dice) -> RGB:
    """One colour of the shared palette: a named colour uniformly, then one of its prototypes, jittered."""
    return d.jitter(d.pick(d.pick(SHARED_PALETTE)), 0.05)


def _shade(color: RGB, factor: float) -> RGB:
    return (min(color[0] * factor, 1.0), min(color[1] * factor, 1.0), min(color[2] * factor, 1.0))


def recolor_item(item: Item, d: Dice) -> Item:
    """``item`` painted in one colour of the shared palette, each part a lighter or darker shade of it (so parts
    stay told apart), a two-toned pattern's second colour a darker shade still."""
    paint = shared_paint(d)
    paints: dict[str | None, tuple[RGB, RGB]] = {}
    prims = []
    for prim in item.prims:
        if prim.part not in paints:
            shade = _shade(paint, d.u(*PART_SHADES))
            paints[prim.part] = (shade, _shade(shade, SECOND_SHADE))
        first, second = paints[prim.part]
        look = prim.look._replace(color=first, color2=second if prim.look.color2 is not None else None)
        prims.append(prim._replace(look=look))
    return replace(item, prims=tuple(prims))


def recolor_layout(layout: Layout, seed: int, index: int) -> Layout:
    """The layout of sample ``index`` with every item repainted (deterministic per seed, image and item)."""
    items = tuple(recolor_item(item, Dice(recolor_rng(seed, index, k))) for k, item in enumerate(layout.items))
    return replace(layout, items=items)
