"""The receptive-field trace says common layers' output shapes itself (#29): the same shapes torch computes, and
no torch._dynamo or sympy import (1.9 s of every dissection's start-up, on meta tensors)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from unitscope.receptive.graph import _broadcast, _output_shape

LAYERS: list[tuple[nn.Module, tuple[int, ...]]] = [
    (nn.Conv2d(3, 8, 11, stride=4, padding=2), (2, 3, 224, 224)),
    (nn.Conv2d(3, 5, (3, 5), stride=(2, 1), padding=(1, 0), dilation=(2, 1)), (1, 3, 17, 12)),
    (nn.MaxPool2d(3, 2), (1, 4, 55, 55)),
    (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (1, 4, 14, 15)),
    (nn.MaxPool2d(2, ceil_mode=True), (1, 4, 7, 7)),
    (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 8, 9)),
    (nn.AdaptiveAvgPool2d((6, 6)), (1, 4, 13, 13)),
    (nn.AdaptiveAvgPool2d((None, 2)), (1, 4, 5, 7)),
    (nn.AdaptiveMaxPool2d(1), (3, 4, 5, 7)),
    (nn.BatchNorm2d(4), (2, 4, 5, 5)),
    (nn.GroupNorm(2, 4), (2, 4, 5, 5)),
    (nn.LayerNorm(6), (2, 3, 6)),
    (nn.Linear(9, 4), (2, 3, 9)),
]


@pytest.mark.parametrize(("layer", "shape"), LAYERS, ids=[f"{type(m).__name__}-{s}" for m, s in LAYERS])
def test_said_shapes_are_torchs(layer: nn.Module, shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        expected = tuple(layer.eval()(torch.zeros(shape)).shape)
    assert _output_shape(layer, torch.empty(shape, device="meta")) == expected


def test_misfits_raise_as_the_layer_would() -> None:
    for layer, shape in ((nn.Conv2d(3, 8, 3), (1, 4, 9, 9)), (nn.Conv2d(3, 8, 5), (1, 3, 3, 3)),
                         (nn.BatchNorm2d(4), (1, 3, 2, 2)), (nn.Linear(9, 4), (2, 8))):
        with pytest.raises(RuntimeError):
            _output_shape(layer, torch.empty(shape, device="meta"))
    assert _broadcast((2, 1, 3), (4, 1)) == (2, 4, 3) == torch.broadcast_shapes((2, 1, 3), (4, 1))
    with pytest.raises(RuntimeError):
        _broadcast((2, 3), (4, 3))


def test_resnet_geometry_imports_neither_dynamo_nor_sympy() -> None:
    code = ("import sys, torchvision\n"
            "from unitscope.receptive.theory import alignment_geometry\n"
            "g = alignment_geometry(torchvision.models.resnet18(), (224, 224))\n"
            "assert g['layer4'] == (32.0, 0.0), g['layer4']\n"
            "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))")
    prelude = "from unitscope.models.torchvision_import import import_torchvision; import_torchvision()\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
