"""Drawing a region on an image: the outside dimmed, a two-ring outline, thumbnails side by side.

Pixel work only (numpy), shared by the report, the explanation pictures and the annotation tasks; which
region to draw is :mod:`unitscope.report.unit_images`' business. Stacks of tiles are composed on packed
pixels (:func:`pack_rgb`: one uint32 per RGB pixel), which moves a pixel as one number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unitscope.errors import UsageError


@dataclass(frozen=True)
class OutlineStyle:
    """How a region is drawn: outline colour, how much the outside is darkened, largest thumbnail side, and
    whether the boundary is outlined at all (the annotation tasks show the region masked only, as the paper)."""

    color: tuple[int, int, int] = (255, 214, 10)
    dim: float = 0.5
    shade: tuple[int, int, int] = (16, 20, 28)
    max_side: int = 128
    outline: bool = True

    def validate(self) -> None:
        if not 0 <= self.dim <= 1:
            raise UsageError(f"outline dim must be in [0, 1], got {self.dim}")
        if self.max_side < 8:
            raise UsageError(f"thumbnail side must be at least 8 pixels, got {self.max_side}")


def region_boundaries(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) one-pixel boundary rings of a stack of boolean masks [..., H, W].

    The same rings as ``skimage.segmentation.find_boundaries(mask, mode="inner"/"outer")`` (4-connected;
    the image border is not a boundary): erosion and dilation by the 4-neighbour cross, written as shifted
    ANDs and ORs of the whole stack (several times faster than ``scipy.ndimage`` on small masks).
    """
    masks = masks.astype(bool, copy=False)
    eroded, dilated = masks.copy(), masks.copy()
    for axis in (-2, -1):
        n = masks.shape[axis]
        if n < 2:
            continue
        head = [slice(None)] * masks.ndim
        tail = [slice(None)] * masks.ndim
        head[axis], tail[axis] = slice(0, n - 1), slice(1, n)
        eroded[tuple(tail)] &= masks[tuple(head)]  # outside the image counts as inside (border_value=1)
        eroded[tuple(head)] &= masks[tuple(tail)]
        dilated[tuple(tail)] |= masks[tuple(head)]
        dilated[tuple(head)] |= masks[tuple(tail)]
    return masks & ~eroded, dilated & ~masks


def dim_images(images: np.ndarray, style: OutlineStyle | None = None) -> np.ndarray:
    """uint8 images [..., H, W, 3] blended towards ``style.shade`` by ``style.dim`` (what lies outside a region)."""
    style = style or OutlineStyle()
    shade = np.asarray(style.shade, np.float32)
    return (images.astype(np.float32) * (1 - style.dim) + shade * style.dim).round().clip(0, 255).astype(np.uint8)


def outline_regions(images: np.ndarray, masks: np.ndarray, style: OutlineStyle | None = None,
                    dimmed: np.ndarray | None = None) -> np.ndarray:
    """uint8 [..., H, W, 3] images with the outside of ``masks`` [..., H, W] darkened and the boundary drawn.

    The inner pixel ring takes ``style.color`` and the outer ring ``style.shade``, so the outline stands out
    on light and dark images alike. ``dimmed``: ``dim_images(images, style)`` when the caller has it (an image
    shown for many units is dimmed once).
    """
    style = style or OutlineStyle()
    if images.shape[:-1] != masks.shape or images.shape[-1] != 3:
        raise UsageError(f"masks {masks.shape} do not match images {images.shape}; upsample them to the image size")
    dimmed = dim_images(images, style) if dimmed is None else dimmed
    return np.ascontiguousarray(unpack_rgb(outline_packed(pack_rgb(images), pack_rgb(dimmed), masks, style)))


def pack_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] pixels as one uint32 each [...] (RGB and a zero byte), so a pixel moves as one number."""
    packed = np.zeros((*images.shape[:-1], 4), dtype=np.uint8)
    packed[..., :3] = images
    return packed.view(np.uint32)[..., 0]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """The uint8 [..., 3] view of :func:`pack_rgb`'s pixels (not contiguous; copy it to keep it compact)."""
    return np.ascontiguousarray(packed).view(np.uint8).reshape(*packed.shape, 4)[..., :3]


def outline_packed(images: np.ndarray, dimmed: np.ndarray, masks: np.ndarray, style: OutlineStyle) -> np.ndarray:
    """:func:`outline_regions` on packed pixels (uint32 [..., H, W], see :func:`pack_rgb`); ~4x faster on
    stacks of tiles than selecting among three-byte pixels."""
    masks = masks.astype(bool, copy=False)
    out = np.where(masks, images, dimmed)
    if not style.outline:
        return out
    inner, outer = region_boundaries(masks)
    out[outer] = pack_rgb(np.asarray(style.shade, np.uint8))
    out[inner] = pack_rgb(np.asarray(style.color, np.uint8))
    return out


def outline_region(image: np.ndarray, mask: np.ndarray, style: OutlineStyle | None = None) -> np.ndarray:
    """One image [H, W, 3] with its region ``mask`` [H, W] outlined (see :func:`outline_regions`)."""
    return outline_regions(image, mask, style)


def display_size(image_size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The (h, w) an image is shown at: its own size, or scaled down so its longer side is ``max_side``."""
    h, w = image_size
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def tile_images(images: Sequence[np.ndarray], gap: int = 3, background: int = 255) -> np.ndarray:
    """Images side by side (top-aligned, ``gap`` pixels apart) in one uint8 strip."""
    if not images:
        raise UsageError("nothing to tile; give at least one image")
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    strip = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for im in images:
        strip[: im.shape[0], x: x + im.shape[1]] = im
        x += im.shape[1] + gap
    return strip


def placeholder(size: tuple[int, int]) -> np.ndarray:
    """A grey tile for an image that could not be read."""
    return np.full((*size, 3), 200, dtype=np.uint8)
