"""A planted world and network for explain's held-out null: units that are exactly a formula of concepts.

Images are 16x16 (labels at full resolution) of background noise of any colour that is not near (L1
distance 60 of 255 levels) one of the objects' colours. Four objects are painted in colours spread over
the colour cube: alpha and beta (5x5 squares that overlap by 2 to 4 columns), gamma and delta (4x4 squares
apart from everything).
Each region has its own colour: alpha only, beta only, alpha and beta, gamma, delta. The noise is labelled
"ground" (as SceneWorld labels wall, floor and sky).

The planted network is three 1x1 convolutions: ``hidden`` (+/- each channel minus each region colour, ReLU)
and ``bumps`` (one bump per colour, relu(1 - 6 * L1 distance): 1 on that region, 0 on every other pixel),
then ``units``: unit 0 = gamma OR delta (two bumps summed: the best single concept covers half of it),
unit 1 = alpha AND NOT beta (alpha is mostly under beta), unit 2 = alpha OR beta (three bumps), unit 3 =
gamma, the others dead. Dissected with the top 30 % quantile (more than any unit's area), each
unit's mask is exactly its formula. Its random twin (the three convolutions re-initialised) is a random
smooth function of colour, as likely to pick the noise around the planted colours as the objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitscope.data.probe import Concept, ConceptTable, ProbeSample

SIZE = 16
UNITS = 40
OR_UNIT, AND_NOT_UNIT, OR_OVERLAPPING_UNIT, SINGLE_UNIT = 0, 1, 2, 3
CONCEPTS = ConceptTable((Concept(1, "alpha", "object"), Concept(2, "beta", "object"), Concept(3, "gamma", "object"),
                         Concept(4, "delta", "object"), Concept(5, "ground", "object")), ("object",))
# region colours: alpha only, beta only, alpha and beta, gamma, delta
COLOURS = ((60, 200, 120), (200, 60, 120), (120, 120, 220), (200, 200, 40), (40, 90, 40))
CLEAR = 60  # uint8 levels (L1) between any noise pixel and any region colour; a bump reaches 255 / 6 = 42.5
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)

SOURCE = """
import torch
from torch import nn

COLOURS = {colours!r}


class Planted(nn.Module):
    def __init__(self, units={units}):
        super().__init__()
        regions = len(COLOURS)
        self.hidden = nn.Conv2d(3, 6 * regions, 1)
        self.bumps = nn.Conv2d(6 * regions, regions, 1)
        self.units = nn.Conv2d(regions, units, 1)
        hidden_w = torch.zeros(6 * regions, 3, 1, 1)
        hidden_b = torch.zeros(6 * regions)
        bumps_w = torch.zeros(regions, 6 * regions, 1, 1)
        for j, colour in enumerate(COLOURS):
            for i, value in enumerate(colour):
                hidden_w[6 * j + 2 * i, i] = 1.0
                hidden_b[6 * j + 2 * i] = -value / 255
                hidden_w[6 * j + 2 * i + 1, i] = -1.0
                hidden_b[6 * j + 2 * i + 1] = value / 255
            bumps_w[j, 6 * j:6 * j + 6] = -6.0
        units_w = torch.zeros(units, regions, 1, 1)
        units_w[0, 3:5] = 1.0  # gamma OR delta
        units_w[1, 0] = 1.0  # alpha AND NOT beta
        units_w[2, 0:3] = 1.0  # alpha OR beta
        units_w[3, 3] = 1.0  # gamma
        with torch.no_grad():
            self.hidden.weight.copy_(hidden_w)
            self.hidden.bias.copy_(hidden_b)
            self.bumps.weight.copy_(bumps_w)
            self.bumps.bias.fill_(1.0)
            self.units.weight.copy_(units_w)
            self.units.bias.zero_()

    def forward(self, x):
        return self.units(torch.relu(self.bumps(torch.relu(self.hidden(x)))))


def build():
    return Planted()
"""


def write_model(directory: Path) -> str:
    """Write the planted network's source; return its ``file.py:callable`` spec."""
    path = directory / "planted_explain_net.py"
    path.write_text(SOURCE.format(colours=COLOURS, units=UNITS))
    return f"{path}:build"


class ComposedProbe:
    """An in-memory ProbeSet; sample i depends only on (seed, i)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.name = f"planted-explain-{n}-{seed}"
        self.concepts = CONCEPTS
        self.image_size = (SIZE, SIZE)
        self.label_size = (SIZE, SIZE)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        image = rng.integers(0, 256, size=(SIZE, SIZE, 3))
        while True:  # noise of any colour but the objects': none within L1 distance CLEAR of theirs
            near = (np.abs(image[:, :, None, :] - np.array(COLOURS)).sum(axis=3) < CLEAR).any(axis=2)
            if not near.any():
                break
            image[near] = rng.integers(0, 256, size=(int(near.sum()), 3))
        image = image.astype(np.uint8)
        alpha = np.zeros((SIZE, SIZE), dtype=bool)
        beta = np.zeros((SIZE, SIZE), dtype=bool)
        y, x = (int(v) for v in rng.integers(1, 8, size=2))
        dy, dx = int(rng.integers(-1, 2)), int(rng.integers(1, 3))
        alpha[y:y + 5, x:x + 5] = True
        beta[y + dy:y + dy + 5, x + dx:x + dx + 5] = True
        taken = alpha | beta
        first = np.zeros((SIZE, SIZE), dtype=np.int32)  # alpha, else beta, gamma, delta
        second = np.zeros((SIZE, SIZE), dtype=np.int32)  # beta where it overlaps alpha
        for region, colour in zip((alpha & ~beta, beta & ~alpha, alpha & beta), COLOURS[:3], strict=True):
            image[region] = colour
        first[alpha], first[beta & ~alpha], second[alpha & beta] = 1, 2, 2
        for number, colour in ((3, COLOURS[3]), (4, COLOURS[4])):
            while True:  # a 4x4 square clear of everything placed so far (the image has room)
                sy, sx = (int(v) for v in rng.integers(0, SIZE - 3, size=2))
                if not taken[max(sy - 1, 0):sy + 5, max(sx - 1, 0):sx + 5].any():
                    break
            taken[sy:sy + 4, sx:sx + 4] = True
            image[sy:sy + 4, sx:sx + 4] = colour
            first[sy:sy + 4, sx:sx + 4] = number
        first[first == 0] = 5  # the noise is labelled too, as scenes label wall, floor and sky
        return ProbeSample(i, image, {"object": np.stack([first, second])})
