"""Categorical colours sized to the concepts shown: each new colour is the one farthest from all before it.

Distances are taken in OKLab (Ottosson 2020), where equal steps look about equally different, so the
first ``n`` colours are as far apart as a greedy choice allows for every ``n`` (the Glasbey et al. 2007
idea). Greys and very dark or very light colours are left out: the pictures show unlabeled pixels as
the dimmed grey image and the label previews as black. numpy only, so ``data/`` can use it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RGB = tuple[float, float, float]
GRID = 16  # sRGB steps per channel of the candidate colours
MIN_CHROMA = 0.07
LIGHTNESS = (0.45, 0.93)
GREYS = (0.0, 0.25, 0.5, 0.75, 1.0)  # lightness of the greys every colour is kept away from

_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                [0.2119034982, 0.6806995451, 0.1073969566],
                [0.0883024619, 0.2817188376, 0.6299787005]])
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                [1.9779984951, -2.4285922050, 0.4505937099],
                [0.0259040371, 0.7827717662, -0.8086757660]])


def oklab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (…, 3) to OKLab (…, 3)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lab: np.ndarray = np.cbrt(linear @ _M1.T) @ _M2.T
    return lab


def _candidates() -> tuple[np.ndarray, np.ndarray]:
    steps = np.linspace(0.0, 1.0, GRID)
    rgb = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = oklab(rgb)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = (chroma >= MIN_CHROMA) & (lab[:, 0] >= LIGHTNESS[0]) & (lab[:, 0] <= LIGHTNESS[1])
    return rgb[keep], lab[keep]


def distinct_colours(n: int) -> list[RGB]:
    """``n`` colours, each the candidate farthest (in OKLab) from the greys and every colour before it.

    Deterministic (ties go to the first candidate); past the number of candidates colours repeat.
    """
    if n <= 0:
        return []
    rgb, lab = _candidates()
    greys = np.array([[level, 0.0, 0.0] for level in GREYS])
    nearest = np.min(np.linalg.norm(lab[:, None, :] - greys[None], axis=2), axis=1)
    chosen: list[int] = []
    for _ in range(min(n, len(rgb))):
        best = int(np.argmax(nearest))
        chosen.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[best], axis=1))
    picks = [chosen[k % len(chosen)] for k in range(n)]
    return [(float(rgb[i, 0]), float(rgb[i, 1]), float(rgb[i, 2])) for i in picks]


def colours_for(numbers: Sequence[int]) -> dict[int, RGB]:
    """A distinct colour per label number, in the order given (0 = unlabeled gets none)."""
    ordered = [number for number in dict.fromkeys(numbers) if number != 0]
    return dict(zip(ordered, distinct_colours(len(ordered)), strict=True))


def min_distance(colours: Sequence[RGB]) -> float:
    """The smallest OKLab distance between two of ``colours`` (how tellable apart the worst pair is)."""
    lab = oklab(np.asarray(colours, dtype=np.float64))
    gaps = np.linalg.norm(lab[:, None, :] - lab[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return float(gaps.min()) if len(lab) > 1 else float("inf")
