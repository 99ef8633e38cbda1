"""Hooks: captured outputs survive in-place ops, hooks are always removed, the pass stops early."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unitscope.capture import LayerCapture


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def test_capture_clones_before_inplace_relu_and_stops_after_last() -> None:
    tail = Counting()
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(inplace=True), tail)
    with torch.no_grad():
        net[0].weight.fill_(-1.0)
    x = torch.ones(2, 1, 3, 3)
    with LayerCapture(net, ["0"]) as cap:
        out = cap.run(x)
        assert tail.calls == 1  # the first run's layout probe: one whole pass on one image, then stopped
        again = cap.run(x)
    assert torch.all(out["0"] == -1.0) and torch.equal(again["0"], out["0"])  # the in-place ReLU did not zero it
    assert tail.calls == 1  # stopped after layer "0"
    assert not net[0]._forward_hooks


def test_hooks_removed_even_on_error() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 1))
    with pytest.raises(RuntimeError), LayerCapture(net, ["0"]) as cap:
        cap.run(torch.ones(1, 2, 3, 3))  # wrong channel count
    assert not net[0]._forward_hooks


def test_unknown_path_refused() -> None:
    with pytest.raises(ValueError, match="no such module"):
        LayerCapture(nn.Sequential(nn.ReLU()), ["7"])
