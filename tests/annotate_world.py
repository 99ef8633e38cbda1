"""A tiny run to annotate: 90 16x16 images of coloured rectangles, a 1x1 convolution with 6 colour units.

Unit u's map is ``WEIGHTS[u] · rgb / 255`` (mean 0, std 1), so its region on an image can be computed by hand
from the pixels and the unit's threshold (:func:`expected_region`). Colours are drawn per image, so the units
have different top images and every task finds catch images among the other units' tops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitscope.data.probe import Concept, ConceptTable, ProbeSample

SIZE = 16
WEIGHTS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, -1.0, 0.0), (0.0, 1.0, -1.0),
           (-1.0, 0.0, 1.0))
CONCEPTS = ConceptTable((Concept(1, "box", "object"),), ("object",))
MODEL_SOURCE = f"""
import torch
from torch import nn

def build():
    net = nn.Sequential(nn.Conv2d(3, {len(WEIGHTS)}, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor({WEIGHTS!r}).view({len(WEIGHTS)}, 3, 1, 1))
    return net
"""


class BoxesProbe:
    """Image i: a random background colour and two random rectangles of random colours (seeded by i)."""

    def __init__(self, n: int = 90) -> None:
        self.n = n
        self.name = f"boxes-{n}"
        self.concepts = CONCEPTS
        self.image_size = (SIZE, SIZE)
        self.label_size = (SIZE, SIZE)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([7, i])
        image = np.empty((SIZE, SIZE, 3), np.uint8)
        image[:] = rng.integers(0, 256, size=3)
        labels = np.zeros((SIZE, SIZE), np.int32)
        for _ in range(2):
            y, x = rng.integers(0, SIZE - 5, size=2)
            h, w = rng.integers(3, 6, size=2)
            image[y:y + h, x:x + w] = rng.integers(0, 256, size=3)
            labels[y:y + h, x:x + w] = 1
        return ProbeSample(i, image, {"object": labels[None]}, {})


def dissect_boxes(directory: Path, topk: int = 60, n: int = 90) -> Path:
    """Dissect the colour units on :class:`BoxesProbe`, keeping ``topk`` top images (with their maps)."""
    from unitscope.dissection.run import dissect
    from unitscope.dissection.settings import DissectSettings

    model = directory / "boxes_net.py"
    model.write_text(MODEL_SOURCE)
    out = directory / f"run-top{topk}"
    settings = DissectSettings(quantile=0.2, upsample="bilinear", batch_size=30, workers=0, topk=topk)
    dissect(f"{model}:build", ["0"], BoxesProbe(n), out, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            settings=settings, progress=False)
    return out


def expected_region(image: np.ndarray, unit: int, threshold: float) -> np.ndarray:
    """[H, W] bool: where unit ``unit`` exceeds ``threshold`` on ``image``, computed by hand."""
    return (image.astype(np.float64) / 255 @ np.asarray(WEIGHTS[unit])) > threshold
