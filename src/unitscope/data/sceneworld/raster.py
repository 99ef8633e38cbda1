"""Rendering: paint a layout into a shape-index map, then derive the image and every label map from it.

Each pixel keeps only the index of the last shape painted over it (painter's order). All maps are
per-shape tables gathered through that index: object, part and material labels, paint colours and their
colour names, texture tile windows and shading. So a pixel's labels always describe exactly what is
visible there, and the cost is a handful of vectorised gathers per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from unitscope.data.sceneworld.colors import name_colors
from unitscope.data.sceneworld.layout import Item, Layout
from unitscope.data.sceneworld.primitives import ELLIPSE, RECT
from unitscope.data.sceneworld.textures import PATTERN_VARIANTS, texture_bank
from unitscope.data.sceneworld.vocabulary import COLOR_NAMES, TEXTURES, label_numbers

MATERIAL_SHADING: dict[str, float] = {
    "metal": 0.35, "glass": 0.25, "plastic": 0.2, "ceramic": 0.2, "fabric": 0.15, "rubber": 0.2, "fur": 0.2,
    "skin": 0.15, "foliage": 0.2, "sky": -0.3, "water": -0.1,
}
_DEFAULT_SHADING = 0.12


@dataclass(frozen=True)
class ObjectInstance:
    """One placed object: class name, object label number, box (y0, x0, y1, x1) clipped to the image
    (end-exclusive), and its visible area in pixels after occlusion."""

    name: str
    label: int
    bbox: tuple[int, int, int, int]
    area: int


@dataclass(frozen=True)
class RenderedImage:
    """A full-resolution render with exact labels.

    image: uint8 [H, W, 3]. object_map, part_map, material_map, color_map: int32 [H, W] global label
    numbers (0 = none). base: float32 [H, W, 3] paint colour in [0, 1] before texture, shading, light
    and noise (colour labels name it). texture, scene: label numbers (scene None for object-centric).
    item_map: int32 [H, W] which item (placed object or background region, in painter's order, counting only
    the items drawn) each pixel shows: the exact mask of every instance.
    """

    image: np.ndarray
    object_map: np.ndarray
    part_map: np.ndarray
    material_map: np.ndarray
    color_map: np.ndarray
    base: np.ndarray
    texture: int
    scene: int | None
    class_index: int
    instances: tuple[ObjectInstance, ...]
    item_map: np.ndarray | None = None


@lru_cache(maxsize=4)
def _grids(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, pixel rows, texture-window offsets and a noise tile for one size."""
    y, x = np.mgrid[0:size, 0:size]
    centres = np.arange(size) + 0.5
    rows = (y + 0.5).astype(np.float32)
    window = (y * 2 * size + x).astype(np.intp)
    noise = np.random.default_rng(7).standard_normal((2 * size, 2 * size, 3)).astype(np.float32)
    return centres, rows, window, noise


class _Canvas:
    """The shape-index map and the per-shape tables filled while painting."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ids = np.zeros((size, size), np.intp)
        self.centres = _grids(size)[0]
        self.rows: list[tuple[object, ...]] = []

    def paint(self, item: Item, instance: int, tile_of: dict[tuple[str, int], int]) -> None:
        """Rasterise the shapes of one item (back to front) and record their attributes."""
        s = float(self.size)
        bx, by, bw, bh = item.box
        x_off, flip = (bx + bw, -bw) if item.mirror else (bx, bw)
        shift_y = int(item.texture_shift[0] * self.size)
        shift_x = int(item.texture_shift[1] * self.size)
        for prim in item.prims:
            g = prim.geo
            pid = len(self.rows)
            if prim.shape == RECT:
                xa, xb = (x_off + g[0] * flip) * s, (x_off + g[2] * flip) * s
                top, bottom = (by + g[1] * bh) * s, (by + g[3] * bh) * s
                self._rect(pid, min(xa, xb), top, max(xa, xb), bottom)
            elif prim.shape == ELLIPSE:
                top, bottom = (by + (g[1] - g[3]) * bh) * s, (by + (g[1] + g[3]) * bh) * s
                self._ellipse(pid, (x_off + g[0] * flip) * s, (by + g[1] * bh) * s, abs(g[2] * bw) * s, g[3] * bh * s)
            else:
                top, bottom = (by + g[0] * bh) * s, (by + g[1] * bh) * s
                ends = [(x_off + v * flip) * s for v in g[2:]]
                if item.mirror:
                    ends = [ends[1], ends[0], ends[3], ends[2]]
                self._trap(pid, top, bottom, *ends)
            lk = prim.look
            tile = tile_of[(lk.pattern, lk.variant)]
            self.rows.append((item.label, prim.part, lk.material, lk.color, lk.color2 or lk.color, tile,
                              shift_y, shift_x, top, bottom, instance))

    def _rect(self, pid: int, x0: float, y0: float, x1: float, y1: float) -> None:
        c0, r0 = round(x0), round(y0)
        c1, r1 = max(round(x1), c0 + 1), max(round(y1), r0 + 1)
        n = self.size
        self.ids[max(r0, 0):min(r1, n), max(c0, 0):min(c1, n)] = pid

    def _ellipse(self, pid: int, cx: float, cy: float, rx: float, ry: float) -> None:
        rx, ry, n = max(rx, 0.5), max(ry, 0.5), self.size
        r0, r1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, n)
        c0, c1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, n)
        if r1 <= r0 or c1 <= c0:
            return
        dy = np.square((self.centres[r0:r1] - cy) * (1.0 / ry))
        dx = np.square((self.centres[c0:c1] - cx) * (1.0 / rx))
        self.ids[r0:r1, c0:c1][np.add.outer(dy, dx) <= 1.0] = pid

    def _trap(self, pid: int, y0: float, y1: float, xl0: float, xr0: float, xl1: float, xr1: float) -> None:
        n = self.size
        r0, r1 = max(round(y0), 0), min(max(round(y1), round(y0) + 1), n)
        if r1 <= r0:
            return
        inv = 1.0 / max(y1 - y0, 1e-6)
        sl, sr = (xl1 - xl0) * inv, (xr1 - xr0) * inv
        yc = self.centres[r0:r1]
        lo = np.ceil(yc * sl + (xl0 - 0.5 - y0 * sl))
        hi = np.maximum(np.ceil(yc * sr + (xr0 - 0.5 - y0 * sr)), lo + 1)
        c0, c1 = max(int(min(lo[0], lo[-1])), 0), min(int(max(hi[0], hi[-1])), n)
        if c1 <= c0:
            return
        cols = self.centres[c0:c1] - 0.5
        self.ids[r0:r1, c0:c1][(cols >= lo[:, None]) & (cols < hi[:, None])] = pid


def _tile_index(bank_first: dict[str, int], counts: dict[str, int]) -> dict[tuple[str, int], int]:
    return {(p, v): first + v for p, first in bank_first.items() for v in range(counts[p])}


def render_layout(layout: Layout, size: int, remove_objects: bool = False) -> RenderedImage:
    """Render a layout at ``size`` x ``size``; ``remove_objects`` leaves only the background regions."""
    bank = texture_bank(size)
    tile_of = _tile_index(bank.first_tile, PATTERN_VARIANTS)
    canvas = _Canvas(size)
    kept = [it for it in layout.items if not (remove_objects and it.is_object)]
    for instance, item in enumerate(kept):
        canvas.paint(item, instance, tile_of)
    objects, parts, materials = label_numbers("object"), label_numbers("part"), label_numbers("material")
    cols = list(zip(*canvas.rows, strict=True))
    ids, n = canvas.ids, len(canvas.rows)
    _, rows, window, noise = _grids(size)
    tile = np.asarray(cols[5], np.intp)
    start = tile * (4 * size * size) + np.asarray(cols[6], np.intp) * (2 * size) + np.asarray(cols[7], np.intp)
    flat = np.take(start, ids) + window
    lum = np.take(bank.lum, flat)
    select = ids + n * np.take(bank.mask, flat)  # shape index, or n + index where the second colour shows
    paints = np.asarray(cols[3] + cols[4], np.float32)
    base = np.take(paints, select, axis=0)
    color_numbers = np.asarray([label_numbers("color")[c] for c in COLOR_NAMES], np.int32)[name_colors(paints)]
    k = np.asarray([MATERIAL_SHADING.get(m, _DEFAULT_SHADING) for m in cols[2]], np.float32)
    top, bottom = np.asarray(cols[8], np.float32), np.asarray(cols[9], np.float32)
    slope = -k / np.maximum(bottom - top, 1.0)
    offset = 1.0 + 0.5 * k - slope * top
    gx, gy, brightness = layout.light
    light = brightness * (1.0 + gy * (rows / size - 0.5) + gx * (rows.T / size - 0.5))
    gain = lum * (np.take(offset, ids) + np.take(slope, ids) * rows) * light
    sigma, fy, fx = layout.noise
    oy, ox = int(fy * size), int(fx * size)
    image = base * gain[..., None] + sigma * noise[oy:oy + size, ox:ox + size]
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pattern_area = np.bincount(np.take(bank.tile_pattern[tile], ids).ravel(), minlength=len(TEXTURES))
    texture = label_numbers("texture")[TEXTURES[int(pattern_area.argmax())]]
    item_map = np.take(np.asarray(cols[10], np.int32), ids)
    areas = np.bincount(item_map.ravel(), minlength=len(kept))
    instances = tuple(
        ObjectInstance(it.label, objects[it.label], _clip_box(it.box, size), int(areas[i]))
        for i, it in enumerate(kept) if it.is_object
    )
    scene = label_numbers("scene")[layout.scene] if layout.scene is not None else None
    return RenderedImage(
        image,
        np.take(np.asarray([objects[v] for v in cols[0]], np.int32), ids),
        np.take(np.asarray([parts[v] if v else 0 for v in cols[1]], np.int32), ids),
        np.take(np.asarray([materials[v] for v in cols[2]], np.int32), ids),
        np.take(color_numbers, select),
        base, texture, scene, layout.class_index, instances, item_map,
    )


def _clip_box(box: tuple[float, float, float, float], size: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    y0, x0 = max(math.floor(y * size), 0), max(math.floor(x * size), 0)
    y1, x1 = min(math.ceil((y + h) * size), size), min(math.ceil((x + w) * size), size)
    return y0, x0, max(y1, y0), max(x1, x0)
