"""Named colours (Broden's eleven) and the colour swatches objects are painted from.

A pixel's colour label is the name of the prototype nearest to its *base* paint colour in CIE Lab
(before texture, shading, lighting and noise). Each name has a few prototypes (light, dark, muted) so
that, e.g., pale sky blue is "blue" rather than "grey".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage.color import rgb2lab

from unitscope.data.sceneworld.vocabulary import COLOR_NAMES

RGB = tuple[float, float, float]

COLOR_PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((200, 30, 30), (150, 20, 25), (230, 60, 50), (170, 50, 60)),
    "orange": ((240, 140, 30), (220, 110, 20), (250, 170, 80), (230, 150, 110)),
    "yellow": ((240, 220, 40), (250, 240, 120), (200, 180, 30), (240, 230, 170)),
    "green": ((50, 150, 50), (30, 90, 30), (120, 190, 80), (90, 130, 60), (160, 200, 150), (40, 120, 110)),
    "blue": ((40, 80, 200), (20, 40, 120), (100, 160, 230), (150, 200, 240), (70, 130, 180), (60, 70, 110)),
    "purple": ((120, 50, 160), (80, 30, 110), (170, 110, 200), (150, 120, 180)),
    "pink": ((240, 150, 190), (220, 80, 150), (250, 200, 210), (230, 180, 190)),
    "brown": ((120, 75, 35), (80, 50, 25), (170, 120, 70), (140, 100, 60), (190, 150, 110), (110, 80, 60)),
    "black": ((15, 15, 15), (40, 40, 45)),
    "white": ((245, 245, 245), (230, 230, 220), (250, 245, 230)),
    "grey": ((128, 128, 128), (90, 90, 90), (170, 170, 170), (200, 200, 205)),
}


@lru_cache(maxsize=1)
def _prototype_lab() -> tuple[np.ndarray, np.ndarray]:
    """Lab coordinates of all prototypes and the colour index each belongs to."""
    rgbs, owners = [], []
    for index, name in enumerate(COLOR_NAMES):
        for rgb in COLOR_PROTOTYPES[name]:
            rgbs.append(rgb)
            owners.append(index)
    lab = rgb2lab(np.asarray(rgbs, dtype=np.float64)[None] / 255.0)[0]
    return lab, np.asarray(owners, dtype=np.int64)


def name_colors(rgb: np.ndarray) -> np.ndarray:
    """Index into ``COLOR_NAMES`` of the nearest named colour for each RGB triple in [0, 1] (shape [..., 3])."""
    rgb = np.asarray(rgb, dtype=np.float64)
    flat = rgb.reshape(-1, 3)
    lab = rgb2lab(np.clip(flat, 0.0, 1.0)[None])[0]
    protos, owners = _prototype_lab()
    dist = ((lab[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
    nearest: np.ndarray = owners[dist.argmin(1)].reshape(rgb.shape[:-1])
    return nearest


def _swatches(*rgb255: tuple[int, int, int]) -> tuple[RGB, ...]:
    """Swatch pool from 0-255 triples (written that way for readability)."""
    return tuple((r / 255.0, g / 255.0, b / 255.0) for r, g, b in rgb255)


WOOD = _swatches((200, 160, 110), (170, 120, 70), (110, 70, 40), (80, 50, 30), (150, 75, 40), (220, 190, 140))
BARK = _swatches((90, 60, 35), (110, 75, 45), (70, 50, 35), (120, 100, 80))
METAL = _swatches((170, 170, 175), (90, 90, 95), (200, 200, 205), (45, 45, 50))
GOLD = _swatches((200, 160, 60), (180, 140, 50))
VIVID = _swatches(
    (200, 30, 30), (30, 70, 180), (240, 200, 30), (245, 245, 245), (30, 30, 35), (40, 130, 60),
    (240, 130, 30), (160, 160, 165), (120, 40, 140), (230, 110, 160), (60, 150, 200),
)
FABRIC = _swatches(
    (190, 40, 40), (40, 70, 160), (50, 120, 60), (30, 40, 80), (220, 200, 160), (130, 130, 135),
    (120, 60, 150), (230, 140, 170), (230, 130, 40), (230, 200, 60), (40, 130, 130), (240, 240, 235),
    (110, 70, 40), (35, 35, 40),
)
BEDDING = _swatches(
    (245, 245, 240), (240, 230, 200), (170, 200, 235), (240, 190, 200), (245, 235, 160), (180, 220, 170),
    (170, 170, 175), (40, 50, 100), (200, 60, 60), (150, 110, 190),
)
PALE = _swatches((245, 245, 240), (240, 230, 200), (250, 240, 180), (235, 215, 180), (245, 220, 225))
WALL = _swatches(
    (235, 235, 230), (240, 230, 200), (225, 210, 180), (190, 210, 230), (200, 225, 195), (245, 235, 170),
    (240, 200, 205), (200, 200, 200), (200, 120, 90), (160, 180, 140), (200, 185, 220), (220, 180, 80),
    (60, 70, 110), (120, 160, 190),
)
CEILING = _swatches((245, 245, 245), (240, 235, 220), (220, 220, 220), (235, 225, 200))
TILE = _swatches((240, 240, 240), (150, 150, 150), (220, 205, 170), (40, 40, 40), (190, 100, 70), (90, 140, 200))
CARPET = _swatches((130, 130, 135), (200, 180, 150), (160, 50, 50), (60, 80, 140), (80, 120, 80), (120, 90, 70))
CERAMIC = _swatches((245, 245, 245), (240, 240, 235), (235, 235, 240), (180, 210, 235), (240, 200, 210), (40, 40, 45))
SKIN = _swatches((240, 200, 170), (225, 170, 130), (190, 130, 90), (140, 90, 60), (90, 60, 40))
HAIR = _swatches((30, 25, 20), (90, 60, 30), (220, 190, 120), (170, 80, 40), (150, 150, 150), (60, 40, 25))
TROUSERS = _swatches((50, 70, 130), (35, 35, 40), (120, 120, 125), (110, 80, 50), (190, 170, 120), (30, 50, 90))
FOLIAGE = _swatches((60, 130, 50), (40, 100, 40), (90, 150, 60), (110, 160, 70), (30, 80, 40), (70, 120, 60))
AUTUMN = _swatches((200, 120, 40), (180, 60, 30), (210, 170, 50))
GRASS = _swatches((90, 160, 70), (110, 170, 60), (70, 130, 50), (140, 170, 80), (170, 165, 95))
SAND = _swatches((230, 210, 160), (220, 195, 140), (240, 225, 185), (210, 180, 120))
SOIL = _swatches((140, 100, 60), (120, 90, 60), (160, 120, 80), (100, 80, 60))
ASPHALT = _swatches((80, 80, 85), (100, 100, 100), (60, 60, 65), (120, 120, 115))
WATER = _swatches((50, 110, 170), (40, 90, 140), (70, 140, 180), (40, 120, 130), (90, 130, 150))
SKY_BLUE = _swatches((110, 170, 230), (140, 190, 240), (90, 150, 220), (170, 210, 245))
SKY_OTHER = _swatches((190, 195, 200), (160, 165, 175), (240, 170, 110), (240, 160, 150), (150, 120, 180))
BRICK = _swatches((170, 70, 50), (150, 60, 40), (190, 100, 70), (130, 80, 60))
STONE = _swatches((150, 150, 145), (120, 115, 110), (170, 160, 140), (100, 100, 100), (140, 130, 110))
ROOF = _swatches((170, 60, 40), (120, 70, 50), (80, 80, 90), (60, 60, 65), (150, 100, 60), (50, 80, 120))
GLASS = _swatches((170, 210, 240), (200, 225, 240), (120, 160, 200), (50, 60, 90), (150, 190, 200))
SCREEN = _swatches((30, 40, 60), (60, 100, 170), (190, 210, 230), (20, 20, 25), (80, 140, 90))
LIGHT = _swatches((255, 240, 170), (250, 250, 235), (255, 220, 120))
HIDE = _swatches((245, 245, 240), (130, 80, 40), (35, 30, 30), (190, 150, 100), (160, 100, 50))
BLOOM = _swatches(
    (220, 30, 40), (245, 210, 40), (240, 130, 180), (140, 60, 170), (250, 250, 250), (245, 140, 30), (70, 90, 200),
)
