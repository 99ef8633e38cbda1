"""ablate on a residual block: editing a unit inside the block changes the output only through the residual
branch (the skip carries the block's input untouched), and the measured outcomes equal a brute-force copy
of the model whose channel is zeroed (or set to its replacement value) in its weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from test_ablation import CLASSES, planted  # noqa: F401  (the class-folder fixture)

from unitscope.ablation.measure import measure_conditions
from unitscope.ablation.sweep import ablate
from unitscope.data.classification import open_classification
from unitscope.models.loading import LoadedModel, load_model

WIDTH = 6

# stem -> one ResNet basic block (no batch norm) -> global pool -> linear head; y = relu(x + conv2(relu(conv1(x)))).
# Planted, plus seeded noise on every weight: stem units 0-2 read the raw R, G, B intensity (undoing ImageNet
# normalisation), units 3-5 their mean; conv1 and conv2 pass units 0-2 on (centre tap), so the block doubles
# the colour evidence, half through the skip and half through the residual branch; the head adds a bias to
# green and blue that the skip half alone does not beat. Removing conv1's unit 0 therefore leaves red images
# with the skip half only, and some of them flip to another class.
MODEL_SOURCE = f"""
import torch
from torch import nn

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


class TinyResNet(nn.Module):
    class_names = {list(CLASSES)!r}

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.stem = nn.Sequential(nn.Conv2d(3, {WIDTH}, 1), nn.ReLU())
        self.block = Block({WIDTH})
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear({WIDTH}, 3))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
            for c in range(3):
                self.stem[0].weight[c, c] += STD[c]
                self.stem[0].bias[c] += MEAN[c]
                self.stem[0].weight[3:, c] += STD[c] / 3
                self.block.conv1.weight[c, c, 1, 1] += 1.0
                self.block.conv2.weight[c, c, 1, 1] += 1.0
                self.head[2].weight[c, c] += 4.0
            self.head[2].bias[1:] += 0.8

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def build():
    return TinyResNet()
"""

# [conditions, units]: nothing, one unit, two units, four units of the block's conv.
MASKS = torch.tensor([[False] * WIDTH,
                      [True] + [False] * (WIDTH - 1),
                      [False, True, False, False, True, False],
                      [True, False, True, True, False, True]])


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("residual") / "tiny_resnet.py"
    path.write_text(MODEL_SOURCE)
    return f"{path}:build"


def brute_force(model: LoadedModel, conv: str, units: torch.Tensor, values: torch.Tensor,
                images: list[np.ndarray]) -> torch.Tensor:
    """Softmax of a copy of the model whose ``units`` of ``conv`` output their value everywhere: zero weights,
    bias = the value (what a constant channel is), the rest of the network, skip included, untouched."""
    module = copy.deepcopy(model.module)
    layer = module.get_submodule(conv)
    with torch.no_grad():
        for unit in torch.nonzero(units).flatten().tolist():
            layer.weight[unit] = 0.0
            layer.bias[unit] = values[unit]
        logits = module(model.preprocess.batch(images, model.device))
    return torch.softmax(logits.double(), dim=1)


@pytest.mark.parametrize("conv", ["block.conv1", "block.conv2"])
@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_block_conv_ablation_equals_brute_force(residual: str, planted: tuple[str, Path],  # noqa: F811
                                                conv: str, batch_size: int, value: float) -> None:
    _, data_dir = planted
    model = load_model(residual)
    data = open_classification(str(data_dir), model.class_names)
    values = torch.full((WIDTH,), value)
    measured = measure_conditions(model, conv, MASKS, values, data, batch_size=batch_size)
    images = [data[i][0] for i in range(len(data))]
    targets = torch.tensor([data[i][1] for i in range(len(data))])
    for c, mask in enumerate(MASKS):
        probs = brute_force(model, conv, mask, values, images)
        np.testing.assert_allclose(measured.score[c], probs[torch.arange(len(data)), targets].numpy(), rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_array_equal(measured.correct[c], (probs.argmax(dim=1) == targets).numpy())
    # Not vacuous: every ablation moves the true-class probability, and some move a prediction.
    assert all(np.abs(measured.score[c] - measured.score[0]).max() > 1e-3 for c in range(1, len(MASKS)))
    assert (measured.correct[1:] != measured.correct[0]).any()


def test_residual_accuracy_drops_equal_brute_force(residual: str, planted: tuple[str, Path]) -> None:  # noqa: F811
    _, data_dir = planted
    model = load_model(residual)
    result = ablate(model, "block.conv1", str(data_dir), units=(0, 2, 3, 5), seeds=2, seed=1)
    data = open_classification(str(data_dir), model.class_names)
    images = [data[i][0] for i in range(len(data))]
    targets = torch.tensor([data[i][1] for i in range(len(data))])
    clean = brute_force(model, "block.conv1", torch.zeros(WIDTH, dtype=torch.bool), torch.zeros(WIDTH), images)
    removed = brute_force(model, "block.conv1", MASKS[3], torch.zeros(WIDTH), images)
    rows = result.table[result.table["kind"] == "remove"].set_index("scene")
    for c, name in enumerate(CLASSES):
        mine = targets == c
        before = float((clean.argmax(dim=1) == targets)[mine].double().mean())
        after = float((removed.argmax(dim=1) == targets)[mine].double().mean())
        assert result.clean_accuracy[name] == pytest.approx(before)
        assert rows.loc[name, "accuracy"] == pytest.approx(after)
