"""A planted GAP classifier over the planted world (tests/planted.py), shared by the analysis tests.

``features`` is a 1x1 convolution copying the channels (unit 0 = red = the square, unit 1 = green =
the bar, unit 2 = blue); global average pooling and a linear layer with hand-picked weights follow, so
CAM and Grad-CAM are computable by hand.
"""

from __future__ import annotations

from pathlib import Path

from planted import PlantedProbe

from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings

FC_WEIGHT = ((2.0, -1.0, 0.0), (-1.0, 3.0, 0.5))
FC_BIAS = (0.25, -0.5)

GAP_SOURCE = f"""
import torch
from torch import nn


class PlantedGap(nn.Module):
    class_names = ["left", "right"]

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor({FC_WEIGHT!r}))
            self.fc.bias.copy_(torch.tensor({FC_BIAS!r}))

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.features(x))))


def build():
    return PlantedGap()
"""

UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)


def write_gap_model(directory: Path) -> str:
    """Write the planted GAP classifier and return its ``file.py:callable`` spec."""
    path = directory / "planted_gap.py"
    path.write_text(GAP_SOURCE)
    return f"{path}:build"


def dissect_planted(directory: Path, n: int = 12) -> tuple[str, Path]:
    """Dissect the planted GAP model's ``features`` on the planted world (no blue noise): a run dir."""
    spec = write_gap_model(directory)
    out = directory / "run"
    settings = DissectSettings(quantile=0.3, upsample="bilinear", batch_size=4, workers=0)
    dissect(spec, ["features"], PlantedProbe(n, blue_noise=False), out, mean=UNIT_MEAN, std=UNIT_STD,
            settings=settings, progress=False)
    return spec, out


def load_run(path: Path) -> DissectionResult:
    return DissectionResult.load(path)


def test_planted_gap_model_dissects_as_planted(tmp_path: Path) -> None:
    """The fixture itself: units 0 and 1 detect the square and the bar exactly; blue detects nothing."""
    _, run_dir = dissect_planted(tmp_path, n=6)
    units = load_run(run_dir).units["features"].set_index("unit")
    assert units.loc[0, "label"] == "square" and units.loc[0, "iou"] == 1.0
    assert units.loc[1, "label"] == "bar" and units.loc[1, "iou"] == 1.0
    assert not units.loc[2, "detector"]
