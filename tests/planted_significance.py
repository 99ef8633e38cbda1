"""A planted model for label confidence: exact detectors, weak detectors, null (noise) units and dead units.

On the PlantedProbe world (red square, green bar, blue white noise), a 3x3 convolution then 2x2 average
pooling (8x8 maps, so each map cell covers 2x2 label pixels):
  units 0, 1: red and green channels (exact detectors of "square"/"red" and "bar"/"green");
  units 2, 3: faint red and green plus blurred blue noise (weak but real detectors, square or bar);
  units 4, 5: dead (all-zero weights, never active);
  units 6…: null units, blurred blue noise with random positive kernels (independent of every label).
"""

from __future__ import annotations

from pathlib import Path

EXACT = (0, 1)
WEAK = (2, 3)
DEAD = (4, 5)
FIRST_NULL = 6

SOURCE = """
import torch
from torch import nn

def build(nulls={nulls}, seed={seed}):
    gen = torch.Generator().manual_seed(seed)
    units = 6 + nulls
    net = nn.Sequential(nn.Conv2d(3, units, 3, padding=1, bias=False), nn.AvgPool2d(2))
    weight = torch.zeros(units, 3, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    weight[1, 1, 1, 1] = 1.0
    for u in (2, 3):
        weight[u, 0, 1, 1] = 0.02
        weight[u, 1, 1, 1] = 0.03
        weight[u, 2] = torch.rand(3, 3, generator=gen) / 4.5
    weight[6:, 2] = torch.rand(nulls, 3, 3, generator=gen)
    with torch.no_grad():
        net[0].weight.copy_(weight)
    return net
"""


def write_significance_model(directory: Path, nulls: int = 50, seed: int = 0) -> str:
    """Write the model's source; return its ``file.py:callable`` spec."""
    path = directory / f"planted_significance_{nulls}_{seed}.py"
    path.write_text(SOURCE.format(nulls=nulls, seed=seed))
    return f"{path}:build"


NOISE_SOURCE = """
import torch
from torch import nn


class IndependentNoise(nn.Module):
    '''Per image, {units} maps of uniform noise drawn from a generator seeded by the image's pixels: every
    unit and image independent of the others and of every label (the image decides only the seed).'''

    def __init__(self, units, seed, size):
        super().__init__()
        self.units, self.seed, self.size = units, seed, size

    def forward(self, x):
        codes = torch.round(x * 255).long().flatten(1)
        weights = torch.arange(1, codes.shape[1] + 1)
        maps = []
        for row in codes:
            gen = torch.Generator().manual_seed(int((row * weights).sum()) * 7919 + self.seed)
            maps.append(torch.rand(self.units, self.size, self.size, generator=gen))
        return torch.stack(maps)


def build(units={units}, seed={seed}, size={size}):
    blur = nn.Conv2d(units, units, 3, padding=1, groups=units, bias=False)  # smooth maps, as a CNN's are
    with torch.no_grad():
        blur.weight.fill_(1 / 9)
    return nn.Sequential(IndependentNoise(units, seed, size), blur)
"""


def write_noise_model(directory: Path, units: int = 200, seed: int = 0, size: int = 16) -> str:
    """Null units only, each independent of the others (unlike the blurs of one blue channel above, which
    all see the same noise): layer ``1`` holds ``units`` blurred noise maps. Not traceable by torch.fx (a
    loop over images), so dissect it with ``upsample="bilinear"``."""
    path = directory / f"planted_noise_{units}_{seed}.py"
    path.write_text(NOISE_SOURCE.format(units=units, seed=seed, size=size))
    return f"{path}:build"
