"""Texture patterns: which patterns each material wears, and the precomputed tiles that render them.

A tile holds a luminance modulation (multiplied into the paint colour) and, for two-tone patterns, a
mask choosing the part's second colour. Tiles are 2x the image side; each painted shape reads an
S x S window at its own offset, so one bank serves every image of that size. Scales grow with the
image side so a 224 px world looks like a 112 px one, only sharper.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from unitscope.data.sceneworld.vocabulary import TEXTURES

PATTERN_VARIANTS: dict[str, int] = {
    "plain": 1, "grained": 2, "brushed": 2, "woven": 1, "striped": 3, "dotted": 2, "chequered": 2,
    "bricked": 1, "speckled": 2, "leafy": 1, "rippled": 1, "glossy": 1,
}
TWO_TONE: frozenset[str] = frozenset({"striped", "dotted", "chequered", "bricked"})

MATERIAL_PATTERNS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "wood": (("grained",), (1.0,)),
    "metal": (("brushed",), (1.0,)),
    "fabric": (("woven", "plain", "striped", "dotted", "chequered"), (3.0, 3.0, 1.5, 1.0, 0.7)),
    "glass": (("glossy",), (1.0,)),
    "brick": (("bricked",), (1.0,)),
    "stone": (("speckled",), (1.0,)),
    "foliage": (("leafy",), (1.0,)),
    "water": (("rippled",), (1.0,)),
    "plastic": (("plain",), (1.0,)),
    "ceramic": (("plain",), (1.0,)),
    "skin": (("plain",), (1.0,)),
    "hair": (("plain",), (1.0,)),
    "paint": (("plain",), (1.0,)),
    "wallpaper": (("striped", "dotted"), (2.0, 1.0)),
    "tile": (("chequered",), (1.0,)),
    "carpet": (("speckled", "woven"), (1.0, 1.0)),
    "asphalt": (("speckled",), (1.0,)),
    "sand": (("speckled",), (1.0,)),
    "soil": (("speckled",), (1.0,)),
    "sky": (("plain",), (1.0,)),
    "paper": (("plain",), (1.0,)),
    "rubber": (("plain",), (1.0,)),
    "fur": (("plain",), (1.0,)),
}
_TILE_SEED = 20150501


@dataclass(frozen=True)
class TextureBank:
    """All tiles for one image side: lum [T, 2S, 2S] float32, mask [T, 2S, 2S] bool, and their patterns."""

    size: int
    lum: np.ndarray
    mask: np.ndarray
    tile_pattern: np.ndarray
    first_tile: dict[str, int]

    def tile_of(self, pattern: str, variant: int) -> int:
        """Index of a pattern's variant in the stacks."""
        return self.first_tile[pattern] + variant


def _grids(side: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    return y, x


def _smooth_noise(rng: np.random.Generator, side: int, sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    n: np.ndarray = gaussian_filter(rng.standard_normal((side, side)).astype(np.float32), sigma, mode="wrap")
    scaled: np.ndarray = n / (n.std() + 1e-8)
    return scaled


def _pattern_tiles(pattern: str, side: int, u: float, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lum, mask) for every variant of one pattern."""
    y, x = _grids(side)
    ones, none = np.ones((side, side), np.float32), np.zeros((side, side), bool)
    if pattern == "plain":
        return [(ones, none)]
    if pattern == "grained":
        phase = y / (4.5 * u) + 0.8 * np.sin(2 * np.pi * x / (41 * u)) + 0.6 * _smooth_noise(rng, side, (1, 8 * u))
        lum: np.ndarray = 1 + 0.11 * np.sin(2 * np.pi * phase) + 0.04 * _smooth_noise(rng, side, (0.5, 3 * u))
        return [(lum, none), (lum.T.copy(), none)]
    if pattern == "brushed":
        lum = 1 + 0.06 * _smooth_noise(rng, side, (0.4, 6 * u)) + 0.08 * np.sin(2 * np.pi * (x + y) / (53 * u))
        return [(lum, none), (lum.T.copy(), none)]
    if pattern == "woven":
        a = np.sign(np.sin(2 * np.pi * x / (3.5 * u) + 0.3)) * np.sign(np.sin(2 * np.pi * y / (3.5 * u) + 0.3))
        return [(1 + 0.08 * a + 0.03 * rng.standard_normal((side, side)), none)]
    if pattern == "striped":
        return [
            (ones, (x // (4 * u)) % 2 == 0),
            (ones, (y // (4 * u)) % 2 == 0),
            (ones, ((x + y) // (4.5 * u)) % 2 == 0),
        ]
    if pattern == "dotted":
        tiles = []
        for spacing, radius in ((7 * u, 1.8 * u), (12 * u, 3.2 * u)):
            row = y // spacing
            dx = (x + (row % 2) * spacing / 2) % spacing - spacing / 2
            dy = y % spacing - spacing / 2
            tiles.append((ones, dx * dx + dy * dy <= radius * radius))
        return tiles
    if pattern == "chequered":
        return [(ones, ((x // c) + (y // c)) % 2 == 0) for c in (5 * u, 9 * u)]
    if pattern == "bricked":
        height, length, mortar = 5 * u, 11 * u, max(1.0, u)
        row = y // height
        xs = x + (row % 2) * length / 2
        mask = (y % height < mortar) | (xs % length < mortar)
        brick_id = (row * 97 + xs // length) % 64
        lum = 1 + 0.1 * rng.standard_normal(64).astype(np.float32)[brick_id.astype(np.int64)]
        return [(lum, mask)]
    if pattern == "speckled":
        fine = 1 + 0.09 * rng.standard_normal((side, side)).astype(np.float32)
        coarse = 1 + 0.1 * _smooth_noise(rng, side, 1.2 * u) + 0.04 * rng.standard_normal((side, side))
        return [(fine, none), (coarse, none)]
    if pattern == "leafy":
        blobs = _smooth_noise(rng, side, 1.4 * u)
        return [(1 + 0.16 * np.tanh(1.5 * blobs) + 0.04 * rng.standard_normal((side, side)), none)]
    if pattern == "rippled":
        phase = y / (5 * u) + 0.7 * np.sin(2 * np.pi * x / (37 * u)) + 0.3 * _smooth_noise(rng, side, 4 * u)
        return [(1 + 0.1 * np.sin(2 * np.pi * phase) + 0.1 * (np.sin(2 * np.pi * phase) > 0.93), none)]
    if pattern == "glossy":
        d = ((x + y) % (60 * u)) / (60 * u)
        lum = 0.95 + 0.32 * np.exp(-(((d - 0.3) / 0.07) ** 2)) + 0.18 * np.exp(-(((d - 0.5) / 0.03) ** 2))
        return [(lum, none)]
    raise KeyError(pattern)


@lru_cache(maxsize=4)
def texture_bank(size: int) -> TextureBank:
    """The tiles for images of side ``size`` (computed once per size, from a fixed seed)."""
    rng = np.random.default_rng(_TILE_SEED)
    side, u = 2 * size, size / 112.0
    lums: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    owners: list[int] = []
    first: dict[str, int] = {}
    for index, pattern in enumerate(TEXTURES):
        tiles = _pattern_tiles(pattern, side, u, rng)
        if len(tiles) != PATTERN_VARIANTS[pattern]:
            raise RuntimeError(f"pattern {pattern} has {len(tiles)} tiles, expected {PATTERN_VARIANTS[pattern]}")
        first[pattern] = len(lums)
        for lum, mask in tiles:
            lums.append(np.asarray(lum, np.float32))
            masks.append(np.asarray(mask, bool))
            owners.append(index)
    return TextureBank(size, np.stack(lums), np.stack(masks), np.asarray(owners, np.int64), first)
