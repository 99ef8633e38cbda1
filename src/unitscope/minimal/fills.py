"""What a removed region becomes: the image's mean colour, a heavy blur, or a gradient-domain rebuild.

Every fill turns kept flags per region, [C, K] bool, into C uint8 images in one call, so the greedy loop
can render all candidates of a step as one batch. ``mean`` hides everything about a removed region;
``blur`` keeps its coarse colour layout (a leak the reader should know about); ``gradient`` keeps no
colour of its own but lets kept regions' colours flow in (see :mod:`unitscope.minimal.poisson`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.ndimage import gaussian_filter

from unitscope.errors import UsageError
from unitscope.minimal.poisson import GradientFill, PoissonSolver
from unitscope.minimal.segments import Segmentation

FILLS: tuple[str, ...] = ("mean", "blur", "gradient")
BLUR_SIGMA_FRACTION = 0.08  # of the image's larger side: 9 px at 112 px, 18 px at 224 px


class Fill(Protocol):
    """Renders images in which only the kept regions are the original's."""

    def render(self, kept: np.ndarray) -> np.ndarray: ...


class CompositeFill:
    """Kept regions from the original, removed ones from a fixed background image."""

    def __init__(self, image: np.ndarray, segmentation: Segmentation, background: np.ndarray) -> None:
        self.image = image
        self.labels = segmentation.labels
        self.background = background

    def render(self, kept: np.ndarray) -> np.ndarray:
        """Images for kept flags [C, K] (bool): uint8 [C, H, W, 3]."""
        pixel_kept = np.asarray(kept, dtype=bool)[:, self.labels]
        return np.where(pixel_kept[..., None], self.image, self.background)


def mean_background(image: np.ndarray) -> np.ndarray:
    """The image's mean colour everywhere, rounded to uint8."""
    mean = np.rint(image.reshape(-1, 3).astype(np.float64).mean(axis=0)).astype(np.uint8)
    return np.broadcast_to(mean, image.shape).copy()


def blur_background(image: np.ndarray) -> np.ndarray:
    """A heavy Gaussian blur of the image (sigma a fixed share of its size, reflected borders)."""
    sigma = BLUR_SIGMA_FRACTION * max(image.shape[:2])
    blurred = gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")
    background: np.ndarray = np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    return background


def make_fill(
    name: str, image: np.ndarray, segmentation: Segmentation, solver: PoissonSolver | None = None
) -> Fill:
    """The fill called ``name`` for this image; ``solver`` lets gradient fills share a factorisation."""
    if name == "mean":
        return CompositeFill(image, segmentation, mean_background(image))
    if name == "blur":
        return CompositeFill(image, segmentation, blur_background(image))
    if name == "gradient":
        return GradientFill(image, segmentation, solver)
    raise UsageError(f"unknown fill {name!r}; choose one of {', '.join(FILLS)}")
