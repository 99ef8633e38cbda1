"""A planted world for the colour control: red stoves, a colour-only unit and a shape unit.

Images are 24x24 on a black background with faint noise. Each holds a "stove" (a 6x6 square) and a "box"
(a one-pixel line across the image, at least two rows away from the stove). Paints come from 24 hues, each
scaled so that R + G + B = 255 (so a sum over channels sees shape, not hue). In the original world every
stove is red and boxes take any other hue; in its recoloured twin (``recolored()``) both classes draw from
all 24 hues, so colour says nothing about the class. The model is one 3x3 convolution:
  unit 0 (``COLOUR_UNIT``): R - G - B at the centre pixel — fires on red pixels of any object;
  unit 1 (``SHAPE_UNIT``): the sum of every channel over the 3x3 window — fires inside squares, whatever
  their paint (a one-pixel line fills a third of the window).
``twin`` chooses what ``recolored()`` returns: ``"recolor"`` (the control), ``"same"`` (the very same images,
an oracle: nothing may change) or ``"dim"`` (the same images at half brightness: with the run's thresholds
kept, nothing reaches them; with thresholds recomputed on the twin, everything would).
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from unitscope.data.probe import Concept, ConceptTable, ProbeSample

SIZE = 24
STOVE_SIDE = 6
HUES = 24
COLOUR_UNIT, SHAPE_UNIT = 0, 1
CONCEPTS = ConceptTable(
    (Concept(1, "stove", "object"), Concept(2, "box", "object"), Concept(3, "red", "color"),
     Concept(4, "other", "color")),
    ("object", "color"),
)
MODEL_SOURCE = """
import torch
from torch import nn

def build():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1, bias=False))
    weight = torch.zeros(2, 3, 3, 3)
    weight[0, :, 1, 1] = torch.tensor([1.0, -1.0, -1.0])
    weight[1] = 1.0 / 9.0
    with torch.no_grad():
        net[0].weight.copy_(weight)
    return net
"""


def write_colour_model(directory: Path) -> str:
    """Write the planted model's source; return its ``file.py:callable`` spec."""
    path = directory / "planted_colour_net.py"
    path.write_text(MODEL_SOURCE)
    return f"{path}:build"


def hue_paint(k: int) -> np.ndarray:
    """Hue ``k`` of ``HUES`` at full saturation, scaled to a channel sum of 255 (hue 0 is pure red)."""
    rgb = np.array(colorsys.hsv_to_rgb(k / HUES, 1.0, 1.0))
    return rgb * 255.0 / rgb.sum()


class PlantedColourProbe:
    """The planted world (``recolor=False``) or its twin; sample i depends only on (seed, i)."""

    def __init__(self, n: int, seed: int = 0, recolor: bool = False, twin: str = "recolor",
                 scale: float = 1.0) -> None:
        self.n, self.seed, self.recolor, self.twin, self.scale = n, seed, recolor, twin, scale
        self.name = f"planted-colour-{n}-{seed}" + ("-recolored" if recolor else "")
        self.concepts = CONCEPTS
        self.image_size = (SIZE, SIZE)
        self.label_size = (SIZE, SIZE)

    def __len__(self) -> int:
        return self.n

    def recolored(self) -> PlantedColourProbe:
        if self.twin == "same":
            return PlantedColourProbe(self.n, self.seed)
        if self.twin == "dim":
            return PlantedColourProbe(self.n, self.seed, scale=0.5)
        return PlantedColourProbe(self.n, self.seed, recolor=True)

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        layout = np.random.default_rng([self.seed, i])  # geometry and noise: the same in both worlds
        paint = np.random.default_rng([self.seed, i, 1])  # colours: drawn apart from the layout
        y, x = (int(v) for v in layout.integers(0, SIZE - STOVE_SIDE + 1, size=2))
        free = [r for r in range(SIZE) if r < y - 2 or r > y + STOVE_SIDE + 1]
        row = free[int(layout.integers(len(free)))]
        noise = layout.integers(0, 7, size=(SIZE, SIZE, 3))
        stove_hue = int(paint.integers(HUES)) if self.recolor else 0
        box_hue = int(paint.integers(HUES)) if self.recolor else int(paint.integers(1, HUES))
        image = noise.astype(np.float64)
        obj = np.zeros((SIZE, SIZE), np.int32)
        image[y:y + STOVE_SIDE, x:x + STOVE_SIDE] += hue_paint(stove_hue)
        obj[y:y + STOVE_SIDE, x:x + STOVE_SIDE] = 1
        image[row, :] += hue_paint(box_hue)
        obj[row, :] = 2
        colour = np.where(obj == 1, 3 if stove_hue == 0 else 4, np.where(obj == 2, 3 if box_hue == 0 else 4, 0))
        pixels = np.clip(np.round(image * self.scale), 0, 255).astype(np.uint8)
        return ProbeSample(i, pixels, {"object": obj[None], "color": colour.astype(np.int32)[None]}, {})
