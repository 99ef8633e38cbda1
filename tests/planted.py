"""A tiny labelled world with planted detectors, for dissection tests with known answers.

Images are 16x16 with labels at full resolution. Each image has one red square (object "square", colour
"red") and one green bar (object "bar", colour "green"); the part "corner" marks the square's top-left pixel.
Scene labels: "left" when the square lies in the left half, else "right". The planted model is a 1x1
convolution: unit 0 = red channel, unit 1 = green channel, unit 2 = blue channel (always 0 except noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitscope.data.probe import Concept, ConceptTable, ProbeSample

SIZE = 16
CONCEPTS = ConceptTable(
    (
        Concept(1, "square", "object"),
        Concept(2, "bar", "object"),
        Concept(3, "red", "color"),
        Concept(4, "green", "color"),
        Concept(5, "corner", "part"),
        Concept(6, "left", "scene"),
        Concept(7, "right", "scene"),
    ),
    ("object", "part", "scene", "color"),
)

MODEL_SOURCE = """
import torch
from torch import nn

def build():
    net = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    return net
"""


def write_model(directory: Path) -> str:
    """Write the planted model's source and return its ``file.py:callable`` spec."""
    path = directory / "planted_net.py"
    path.write_text(MODEL_SOURCE)
    return f"{path}:build"


class PlantedProbe:
    """An in-memory ProbeSet; sample i depends only on (seed, i)."""

    def __init__(self, n: int, seed: int = 0, blue_noise: bool = True) -> None:
        self.n = n
        self.seed = seed
        self.blue_noise = blue_noise
        self.name = f"planted-{n}-{seed}"
        self.concepts = CONCEPTS
        self.image_size = (SIZE, SIZE)
        self.label_size = (SIZE, SIZE)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        image = np.zeros((SIZE, SIZE, 3), np.uint8)
        obj = np.zeros((SIZE, SIZE), np.int32)
        col = np.zeros((SIZE, SIZE), np.int32)
        part = np.zeros((SIZE, SIZE), np.int32)
        y, x = rng.integers(0, SIZE - 4, size=2)
        image[y:y + 4, x:x + 4, 0] = 255
        obj[y:y + 4, x:x + 4] = 1
        col[y:y + 4, x:x + 4] = 3
        part[y, x] = 5
        row = int(rng.integers(0, SIZE))
        bar = (slice(row, row + 1), slice(0, SIZE))
        free = obj[bar] == 0
        image[bar][free, 1] = 255
        obj[bar][free] = 2
        col[bar][free] = 4
        if self.blue_noise:
            image[..., 2] = rng.integers(0, 60, size=(SIZE, SIZE))
        scene = 6 if x + 2 < SIZE / 2 else 7
        labels = {"object": obj[None], "color": col[None]}
        if i % 2 == 0:  # parts annotated in even images only: exercises Broden's per-category rule
            labels["part"] = part[None]
        return ProbeSample(i, image, labels, {"scene": (scene,)})
