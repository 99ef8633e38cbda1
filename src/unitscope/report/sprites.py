"""A unit's top images as one file: its k outlined tiles side by side in equal cells, one JPEG per unit.

A report shows k top images for every unit (20 × 512 for ResNet-18 layer4). As single files they cost more
to create than to draw (~0.15 ms to create a file here, ~0.15 ms to encode a 128 px tile, plus Pillow's
per-call overhead); as one sprite per unit they cost one file and one encoder call. A unit page shows
each cell with CSS (:func:`~unitscope.report.unit_pages.cell_style`), so it keeps a figure, caption and
link per image.
Tiles are packed pixels (uint32 [H, W], :func:`~unitscope.report.unit_images.pack_rgb`), as the renderer
draws them, so nothing is copied byte by byte between drawing and encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from unitscope.errors import UsageError
from unitscope.report.image_files import ImageWriter
from unitscope.report.outlines import pack_rgb
from unitscope.report.unit_images import LayerRequest, UnitKey
from unitscope.report.unit_pages import unit_page_path, unit_png_path, unit_sprite_path, unit_strip_path

WHITE = int(pack_rgb(np.full(3, 255, np.uint8)))
STRIP_GAP = 3  # pixels between a card's images


def sprite(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Packed tiles in one row of equal cells (the largest tile's size), each centred on white."""
    if not tiles:
        raise UsageError("a sprite needs at least one tile")
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    out = np.full((height, width * len(tiles)), WHITE, dtype=np.uint32)
    for i, tile in enumerate(tiles):
        top, left = (height - tile.shape[0]) // 2, (width - tile.shape[1]) // 2
        out[top: top + tile.shape[0], i * width + left: i * width + left + tile.shape[1]] = tile
    return out


def strip(tiles: Sequence[np.ndarray], gap: int = STRIP_GAP) -> np.ndarray:
    """Packed tiles side by side (top-aligned, ``gap`` white pixels apart): a gallery card's picture."""
    if not tiles:
        raise UsageError("a strip needs at least one tile")
    height = max(t.shape[0] for t in tiles)
    out = np.full((height, sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)), WHITE, dtype=np.uint32)
    x = 0
    for tile in tiles:
        out[: tile.shape[0], x: x + tile.shape[1]] = tile
        x += tile.shape[1] + gap
    return out


class SpriteWriter:
    """The renderer's tile sink for a report on disk: per unit, its sprite and its card strip, once complete.

    A unit's tiles are held until all of its k are drawn (the report renders units in rounds that bound
    them), then ``units/<layer>/<unit>/top.jpg`` and ``units/<layer>/<unit>.jpg`` are written and the tiles
    dropped; with ``png``, each tile also as ``units/<layer>/<unit>/<rank>.png``. ``cards`` maps each
    finished unit to its strip's path and ``cells`` to its sprite's cell size.
    """

    def __init__(self, requests: Mapping[str, LayerRequest], per_card: int, directory: Path,
                 files: ImageWriter, png: bool = False) -> None:
        self.directory = directory
        self.png = png
        self.files = files
        self.per_card = per_card
        self.count = {(name, int(u)): len(images) for name, request in requests.items()
                      for u, images in request.images.items()}
        self.partial: dict[UnitKey, dict[int, np.ndarray]] = {}
        self.cards: dict[UnitKey, str] = {}
        self.cells: dict[UnitKey, tuple[int, int]] = {}
        for name, unit in self.count:
            (directory / unit_page_path(name, unit)).with_suffix("").mkdir(parents=True, exist_ok=True)

    def __call__(self, key: UnitKey, slot: int, tile: np.ndarray) -> None:
        parts = self.partial.setdefault(key, {})
        parts[slot] = tile
        if len(parts) < self.count[key]:
            return
        del self.partial[key]
        tiles = [parts[i] for i in range(self.count[key])]
        name, unit = key
        whole = sprite(tiles)
        self.cells[key] = (whole.shape[0], whole.shape[1] // len(tiles))
        self.files.save(whole, self.directory / unit_sprite_path(name, unit))
        self.cards[key] = unit_strip_path(name, unit)
        self.files.save(strip(tiles[: self.per_card]), self.directory / self.cards[key])
        if self.png:
            for rank, tile in enumerate(tiles):
                self.files.save(tile, self.directory / unit_png_path(name, unit, rank))


def unit_rounds(requests: Mapping[str, LayerRequest], tiles_per_round: int) -> list[dict[str, LayerRequest]]:
    """The requests split into rounds of whole units, each drawing about ``tiles_per_round`` tiles at most
    (a unit with more is a round of its own), in the order given."""
    if tiles_per_round < 1:
        raise UsageError(f"tiles per round must be at least 1, got {tiles_per_round}")
    rounds: list[dict[str, dict[int, Sequence[int]]]] = [{}]
    held = 0
    for name, request in requests.items():
        for unit, images in request.images.items():
            if held and held + len(images) > tiles_per_round:
                rounds.append({})
                held = 0
            rounds[-1].setdefault(name, {})[int(unit)] = images
            held += len(images)
    return [{name: _subset(requests[name], units) for name, units in chosen.items()} for chosen in rounds if chosen]


def _subset(request: LayerRequest, images: dict[int, Sequence[int]]) -> LayerRequest:
    return LayerRequest(
        path=request.path,
        thresholds={u: request.thresholds[u] for u in images},
        images=images,
        maps=None if request.maps is None else {u: request.maps[u] for u in images},
    )
