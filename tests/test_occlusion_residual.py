"""Incremental occlusion through residual blocks equals full recomputation; unknown modules fall back, saying why."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from unitscope.perturb import OccluderGrid, occlusion_discrepancy, plan_occlusion


def _randomise_batch_norm(model: nn.Module, seed: int) -> None:
    """Running statistics and affine parameters away from the identity, so batch norm is not a no-op."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator, dtype=torch.float64) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator, dtype=torch.float64) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator, dtype=torch.float64) * 0.5 + 1.0)
            module.bias.data.copy_(torch.randn(n, generator=generator, dtype=torch.float64) * 0.3)


class TinyResNet(nn.Module):
    """torchvision's ResNet layout (7x7/2 stem, 3x3/2 max-pool, stages of torchvision blocks with
    downsampling shortcuts) at a few channels per layer."""

    def __init__(self, block: type[BasicBlock | Bottleneck], widths: tuple[int, ...] = (4, 6, 8)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        inplanes = 4
        for i, planes in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            outplanes = planes * block.expansion
            downsample = None
            if stride != 1 or inplanes != outplanes:
                downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False),
                                           nn.BatchNorm2d(outplanes))
            blocks = [block(inplanes, planes, stride, downsample), block(outplanes, planes)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = outplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))  # type: ignore[no-any-return]


def tiny_resnet(block: type[BasicBlock | Bottleneck]) -> nn.Module:
    torch.manual_seed(0)
    net = TinyResNet(block).double().eval()
    _randomise_batch_norm(net, 1)
    return net


def _peaks(plan: object, image: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Each unit's own peak on the image, then the map's four corners (border windows)."""
    acts = plan.full_model(image.unsqueeze(0))[0].detach()  # type: ignore[attr-defined]
    h, w = acts.shape[1:]
    flat = acts[units].flatten(1).argmax(1)
    corners = torch.tensor([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]])
    return torch.cat([torch.stack([flat // w, flat % w], dim=1), corners])


def _both_engines(model: nn.Module, layer: str, image: torch.Tensor, patch: int, stride: int,
                  units: torch.Tensor, batch_size: int = 64, only: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, float]:
    size = (int(image.shape[1]), int(image.shape[2]))
    plan = plan_occlusion(model, layer, size)
    assert plan.path == "incremental", plan.reason
    peaks = _peaks(plan, image, units)
    units = torch.cat([units, units[:4]])
    args = (model, layer, image, units, peaks, patch, stride, "random", 3)
    fast = occlusion_discrepancy(*args, batch_size=batch_size, incremental=True, plan=plan, only=only)
    full = occlusion_discrepancy(*args, batch_size=batch_size, incremental=False, plan=plan, only=only)
    scale = float(plan.full_model(image.unsqueeze(0)).detach().abs().max())
    return fast, full, scale


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
@pytest.mark.parametrize(("layer", "patch", "stride", "size"), [
    ("layer1.0", 5, 3, (40, 40)),  # identity shortcut (BasicBlock) or stride-1 downsampling (Bottleneck)
    ("layer2", 7, 4, (37, 45)),  # strided block, odd non-square input: asymmetric padding at borders
    ("layer2.1.conv2", 3, 5, (40, 40)),  # inside a block, after residual sums
    ("layer3", 6, 2, (41, 39)),  # the whole network, maps of 3x3
])
def test_residual_blocks_run_incrementally_and_equal_full_recomputation(
        block: type[BasicBlock | Bottleneck], layer: str, patch: int, stride: int, size: tuple[int, int]) -> None:
    model = tiny_resnet(block)
    image = torch.randn(3, *size, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    fast, full, scale = _both_engines(model, layer, image, patch, stride, torch.arange(4))
    assert (full > 0).sum() >= 20
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-10 * scale)


def test_residual_results_do_not_depend_on_batch_size() -> None:
    model = tiny_resnet(BasicBlock)
    image = torch.randn(3, 40, 40, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    plan = plan_occlusion(model, "layer2", (40, 40))
    units, peaks = torch.tensor([0, 3, 5]), torch.tensor([[0, 0], [2, 3], [4, 4]])
    maps = [occlusion_discrepancy(model, "layer2", image, units, peaks, patch=5, stride=4, seed=3, batch_size=b,
                                  plan=plan) for b in (1, 9, 500)]
    assert maps[0].abs().sum() > 0
    for other in maps[1:]:
        torch.testing.assert_close(other, maps[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("layer", ["layer3", "layer4"])
def test_torchvision_resnet18_in_float32_within_1e5_of_full(layer: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    _randomise_batch_norm(model, 2)
    image = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(6))
    grid = OccluderGrid.build((64, 64), 11, 5)
    only = torch.zeros(grid.shape, dtype=torch.bool)
    only[::5, ::5] = True  # 9 positions: corners, edges and the middle
    fast, full, scale = _both_engines(model, layer, image, 11, 5, torch.tensor([0, 7, 100, 200]), only=only)
    assert (full > 0).sum() >= 20
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-5 * scale)


class Gate(nn.Module):
    """A custom module: fx traces into it and finds a product the engine does not know."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.attend = nn.MultiheadAttention(4, 1, batch_first=True)
        self.head = nn.Conv2d(8, 4, 3, padding=1)
        self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        tokens = y.flatten(2).transpose(1, 2)
        attended = self.attend(tokens, tokens, tokens)[0].transpose(1, 2).reshape(y.shape)
        return self.head(torch.cat([self.gate(y), attended], dim=1))  # type: ignore[no-any-return]


def test_unknown_modules_fall_back_per_layer_with_the_reason_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    model = Mixed().double().eval()
    image = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert plan_occlusion(model, "stem", (8, 8)).path == "incremental"
    with caplog.at_level(logging.INFO, logger="unitscope.perturb.occlusion"):
        plan = plan_occlusion(model, "head", (8, 8))
    assert plan.path == "full" and plan.reason.startswith("full recomputation over the whole image: ")
    assert "positions are mixed by attention at attend (MultiheadAttention)" in plan.reason and not plan.field_defined
    assert [r.getMessage() for r in caplog.records if "full recomputation" in r.getMessage()] == [
        f"occluding head of Mixed: {plan.reason}"]
    gated = plan_occlusion(model, "gate", (8, 8))
    assert gated.path == "full" and "'mul'" in gated.reason
    units, peaks = torch.tensor([1]), torch.tensor([[3, 4]])
    maps = [occlusion_discrepancy(model, "gate", image, units, peaks, 3, 2, fill="zeros", incremental=flag,
                                  plan=gated) for flag in (True, False)]
    assert maps[0].abs().sum() > 0
    torch.testing.assert_close(maps[0], maps[1], rtol=0, atol=0)  # both ran the full model


def test_functional_relu_and_sums_of_three_branches_run_incrementally() -> None:
    class Three(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, stride=1, padding=2)
            self.c = nn.Conv2d(4, 4, 3, stride=2, padding=1)
            self.pool = nn.MaxPool2d(3, 2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = torch.nn.functional.relu(self.a(x) + self.b(x))
            return self.c(s) + self.pool(s) + self.pool(torch.relu(s))  # type: ignore[no-any-return]

    torch.manual_seed(1)
    model = nn.Sequential(Three()).double().eval()  # "0": the module whose output is the last sum
    image = torch.randn(3, 15, 17, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    fast, full, scale = _both_engines(model, "0", image, 3, 2, torch.arange(4), batch_size=7)
    assert (full > 0).sum() >= 10
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-10 * scale)
