"""Split an image into removable elements: SLIC superpixels, optionally plus long edge segments.

Zhou et al. 2015 removed "segments" (regions and edges) one at a time. We use scikit-image's SLIC
superpixels, because their number is controllable and they are compact (felzenszwalb's size varies by
orders of magnitude, which makes one greedy step remove either a speck or half the image). With
``edges=True``, long Canny edges, thickened by a pixel on each side and split into connected components,
become elements of their own; they take their pixels from the superpixels underneath.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.color import rgb2gray
from skimage.feature import canny
from skimage.measure import label as connected_components
from skimage.segmentation import expand_labels, slic

from unitscope.errors import UsageError

SUPERPIXEL = "superpixel"
EDGE = "edge"
SLIC_COMPACTNESS = 20.0
CANNY_SIGMA = 2.0
EDGE_THICKNESS = 1


class TooFewRegionsError(UsageError):
    """The segmentation left fewer than two regions, so there is nothing to choose between."""


@dataclass(frozen=True)
class Segmentation:
    """A partition of an image into K elements.

    labels: int32 [H, W], values 0..K-1, every value used.
    kinds: K strings, ``"superpixel"`` or ``"edge"``.
    """

    labels: np.ndarray
    kinds: tuple[str, ...]

    @property
    def num_regions(self) -> int:
        return len(self.kinds)

    def sizes(self) -> np.ndarray:
        """Pixels per element, int64 [K]."""
        return np.bincount(self.labels.ravel(), minlength=self.num_regions)


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as a uint8 [H, W, 3] array, or a UsageError saying what it is instead."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UsageError(
            f"expected a uint8 RGB image of shape [H, W, 3], got {image.dtype} {tuple(image.shape)}; "
            "convert it with PIL.Image.open(path).convert('RGB')"
        )
    if min(image.shape[:2]) < 2:
        raise UsageError(f"the image is {image.shape[0]}x{image.shape[1]} pixels; it needs at least 2x2")
    return image


def from_labels(labels: np.ndarray, kinds: tuple[str, ...] | None = None) -> Segmentation:
    """A Segmentation from any integer label map (relabelled to 0..K-1 in order of first value)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"a segmentation must be a 2-D integer label map, got {labels.dtype} {labels.shape}")
    values, dense = np.unique(labels, return_inverse=True)
    if kinds is None:
        kinds = (SUPERPIXEL,) * len(values)
    if len(kinds) != len(values):
        raise UsageError(f"{len(kinds)} region kinds given for {len(values)} regions; give one per region")
    seg = Segmentation(dense.reshape(labels.shape).astype(np.int32), tuple(kinds))
    return require_regions(seg)


def require_regions(seg: Segmentation) -> Segmentation:
    """Refuse a segmentation with fewer than two regions: there would be nothing to choose."""
    if seg.num_regions < 2:
        raise TooFewRegionsError(
            f"the segmentation has {seg.num_regions} region(s); removing regions needs at least 2 "
            "(ask for more with --segments, or use an image with some structure)"
        )
    return seg


def edge_components(image: np.ndarray, min_length: int) -> np.ndarray:
    """Long Canny edges as thickened connected components: int32 [H, W], 0 = no edge, 1..E."""
    thin = canny(rgb2gray(image), sigma=CANNY_SIGMA)  # type: ignore[no-untyped-call]
    comps = connected_components(thin, connectivity=2)  # type: ignore[no-untyped-call]
    lengths = np.bincount(comps.ravel())
    lengths[0] = 0
    long_ids = np.flatnonzero(lengths >= min_length)
    keep = np.zeros(len(lengths), dtype=np.int32)
    keep[long_ids] = np.arange(1, len(long_ids) + 1, dtype=np.int32)
    edges: np.ndarray = expand_labels(keep[comps], distance=EDGE_THICKNESS).astype(np.int32)  # type: ignore[no-untyped-call]
    return edges


def segment_image(
    image: np.ndarray, n_segments: int = 40, edges: bool = False, min_edge_length: int | None = None
) -> Segmentation:
    """Superpixels (about ``n_segments`` of them; SLIC may return fewer) and optional edge segments.

    ``min_edge_length`` (pixels along the thin edge) defaults to a fifth of the image's larger side.
    """
    image = check_image(image)
    if n_segments < 2:
        raise UsageError(f"--segments is {n_segments}; it must be at least 2 so there is something to remove")
    superpixels = slic(
        image, n_segments=n_segments, compactness=SLIC_COMPACTNESS, start_label=0, channel_axis=-1
    ).astype(np.int32)
    if not edges:
        return from_labels(superpixels)
    length = max(image.shape[:2]) // 5 if min_edge_length is None else min_edge_length
    edge_map = edge_components(image, max(1, length))
    offset = int(superpixels.max()) + 1
    combined = np.where(edge_map > 0, edge_map - 1 + offset, superpixels)
    values = np.unique(combined)
    kinds = tuple(EDGE if v >= offset else SUPERPIXEL for v in values)
    return from_labels(combined, kinds)
