"""The occlusion engine: Captum as oracle, hand-computed maps, incremental == full, batch-size independence."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.perturb import (
    OccluderGrid,
    grid_to_pixels,
    occluder_patches,
    occlusion_discrepancy,
    plan_occlusion,
    relevant_positions,
)
from unitscope.receptive import FieldGeometry


def _randomise_batch_norm(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator, dtype=torch.float64))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator, dtype=torch.float64) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator, dtype=torch.float64))
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator, dtype=torch.float64))


def small_alexnet() -> nn.Sequential:
    """AlexNet's layer kinds in miniature (LRN, ceil-mode and dilated layers too), float64, eval."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.LocalResponseNorm(3),
        nn.MaxPool2d(3, 2), nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2, ceil_mode=True), nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Dropout(),
        nn.ReLU(), nn.AvgPool2d(2, 1, padding=1),
    ).double().eval()
    _randomise_batch_norm(net, torch.Generator().manual_seed(1))
    return net


def small_sceneworld() -> SceneWorldNet:
    torch.manual_seed(0)
    net = SceneWorldNet(SceneWorldNetConfig(num_classes=3, widths=(4, 6, 6, 6, 6), fc_width=8)).double().eval()
    _randomise_batch_norm(net, torch.Generator().manual_seed(2))
    return net


class Residual(nn.Module):
    """A residual block: the sum changes where either branch does."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return self.out(y + self.body(y))


def test_hand_computed_map_of_a_summing_unit() -> None:
    # One unit summing a 3x3x3 window of an all-ones image: zero-filling one pixel lowers it by 3 (one per
    # channel) wherever that pixel lies inside the window of the peak (1, 2) = rows 1-3, columns 2-4.
    conv = nn.Conv2d(3, 1, 3, bias=False).double()
    conv.weight.data.fill_(1.0)
    model = nn.Sequential(conv)
    image = torch.ones(3, 6, 6, dtype=torch.float64)
    for incremental in (True, False):
        got = occlusion_discrepancy(model, "0", image, torch.tensor([0]), torch.tensor([[1, 2]]), patch=1,
                                    stride=1, fill="zeros", incremental=incremental)
        expected = torch.zeros(1, 6, 6, dtype=torch.float64)
        expected[0, 1:4, 2:5] = 3.0
        assert torch.equal(got, expected)


def _strongest(plan: object, image: torch.Tensor) -> tuple[int, tuple[int, int]]:
    """The unit firing most on the clean image and where (as the empirical analysis picks peaks)."""
    act = plan.full_model(image.unsqueeze(0))[0]  # type: ignore[attr-defined]
    unit, flat = divmod(int(act.argmax()), act.shape[1] * act.shape[2])
    return unit, divmod(flat, act.shape[2])


@pytest.mark.parametrize("layer", ["3", "7", "11"])
@pytest.mark.parametrize("incremental", [True, False])
def test_matches_captum_occlusion(layer: str, incremental: bool) -> None:
    model = small_alexnet()
    image = torch.randn(3, 30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plan = plan_occlusion(model, layer, (30, 30))
    unit, peak = _strongest(plan, image)
    grid = OccluderGrid.build((30, 30), 4, 2)
    ours = occlusion_discrepancy(model, layer, image, torch.tensor([unit]), torch.tensor([peak]), patch=4,
                                 stride=2, fill="zeros", signed=True, incremental=incremental, plan=plan)
    oracle = Occlusion(lambda x: plan.full_model(x)[:, unit, peak[0], peak[1]]).attribute(
        image.unsqueeze(0), sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0.0)
    assert ours.abs().max() > 0.01
    # Captum returns float32 attributions (it casts before dividing by the window counts).
    torch.testing.assert_close(grid_to_pixels(ours, grid)[0].float(), oracle[0, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(oracle[0, 0], oracle[0, 2], rtol=0, atol=0)


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2", "conv3", "conv5.0", "conv5", "pool5"])
def test_incremental_equals_full_recomputation_on_sceneworld_net(layer: str) -> None:
    model = small_sceneworld()
    image = torch.randn(3, 112, 112, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    plan = plan_occlusion(model, layer, (112, 112))
    assert plan.path == "incremental"
    h, w = plan.map_size
    acts = plan.full_model(image.unsqueeze(0))[0, :4].flatten(1)
    strongest = torch.stack([acts.argmax(1) // w, acts.argmax(1) % w], dim=1)  # each unit's own peak
    units = torch.tensor([0, 1, 2, 3, 0, 1])
    peaks = torch.cat([strongest, torch.tensor([[0, 0], [h - 1, w - 1]])])  # and two corners
    args = (model, layer, image, units, peaks, 11, 5, "random", 7)
    fast = occlusion_discrepancy(*args, batch_size=64, incremental=True, plan=plan)
    full = occlusion_discrepancy(*args, batch_size=64, incremental=False, plan=plan)
    assert (full > 0).sum() >= 10
    scale = plan.full_model(image.unsqueeze(0)).detach().abs().max()
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-10 * float(scale))


@pytest.mark.parametrize("incremental", [True, False])
def test_results_do_not_depend_on_batch_size(incremental: bool) -> None:
    model = small_alexnet()
    image = torch.randn(3, 30, 30, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    units, peaks = torch.tensor([0, 4, 7]), torch.tensor([[0, 0], [2, 1], [3, 3]])
    maps = [occlusion_discrepancy(model, "8", image, units, peaks, patch=5, stride=2, seed=3, batch_size=b,
                                  incremental=incremental) for b in (1, 7, 500)]
    assert maps[0].abs().sum() > 0
    for other in maps[1:]:
        torch.testing.assert_close(other, maps[0], rtol=0, atol=1e-12)


def test_chains_without_convolutions_run_incrementally() -> None:
    model = nn.Sequential(nn.MaxPool2d(3, 2, padding=1), nn.ReLU(), nn.AvgPool2d(2))
    image = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    plan = plan_occlusion(model, "2", (16, 16))
    assert plan.path == "incremental"
    units, peaks = torch.tensor([2, 0]), torch.tensor([[1, 2], [3, 3]])
    fast, full = (occlusion_discrepancy(model, "2", image, units, peaks, 3, 2, seed=1, incremental=flag, plan=plan)
                  for flag in (True, False))
    assert full.abs().sum() > 0
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-12)


def test_occluders_outside_the_field_are_skipped_and_zero() -> None:
    # Field of size 5, jump 2, start 0: peak row 2 sees input rows 2..6, so 3-pixel occluders at stride 1
    # overlap it when their first row lies in 0..6; peak column 0 sees columns -2..2: first column 0..2.
    grid = OccluderGrid.build((12, 12), 3, 1)
    mask = relevant_positions(FieldGeometry(5, 2, 0.0), torch.tensor([[2, 0]]), grid)
    assert mask[0, :, 0].nonzero().squeeze(1).tolist() == list(range(7))
    assert mask[0, 0, :].nonzero().squeeze(1).tolist() == [0, 1, 2]
    model = small_alexnet()
    image = torch.randn(3, 30, 30, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    plan = plan_occlusion(model, "3", (30, 30))
    grid = OccluderGrid.build((30, 30), 3, 1)
    outside = ~relevant_positions(plan.geometry, torch.tensor([[0, 0]]), grid)
    got = occlusion_discrepancy(model, "3", image, torch.tensor([1]), torch.tensor([[0, 0]]), 3, 1, plan=plan)
    assert outside.any() and torch.all(got[outside] == 0) and got.abs().sum() > 0


@pytest.mark.parametrize("incremental", [True, False])
def test_residual_networks_run_incrementally_and_agree_with_captum(incremental: bool) -> None:
    model = Residual().double().eval()
    plan = plan_occlusion(model, "out", (10, 10))
    assert plan.path == "incremental" and "1 residual sums" in plan.reason
    image = torch.randn(3, 10, 10, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ours = occlusion_discrepancy(model, "out", image, torch.tensor([2]), torch.tensor([[4, 5]]), patch=2,
                                 stride=2, fill="zeros", signed=True, plan=plan, incremental=incremental)
    oracle = Occlusion(lambda x: plan.full_model(x)[:, 2, 4, 5]).attribute(
        image.unsqueeze(0), sliding_window_shapes=(3, 2, 2), strides=(3, 2, 2), baselines=0.0)
    assert ours.abs().max() > 0.01
    torch.testing.assert_close(grid_to_pixels(ours, OccluderGrid.build((10, 10), 2, 2))[0].float(), oracle[0, 0],
                               rtol=1e-5, atol=1e-6)


def test_random_occluders_depend_only_on_seed_and_position() -> None:
    grid = OccluderGrid.build((20, 20), 5, 5)
    first, again = occluder_patches("random", grid, seed=1), occluder_patches("random", grid, seed=1)
    assert first.shape == (16, 3, 5, 5) and torch.equal(first, again)
    assert not torch.equal(first, occluder_patches("random", grid, seed=2))
    # Uniform pixels in [0, 1], normalised with ImageNet statistics: the red channel spans [-2.12, 2.25].
    assert first[:, 0].min() >= -0.485 / 0.229 - 1e-6 and first[:, 0].max() <= 0.515 / 0.229 + 1e-6


def test_grid_to_pixels_averages_covering_occluders() -> None:
    grid = OccluderGrid.build((3, 3), 2, 1)
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    pixels = grid_to_pixels(maps, grid)[0]
    assert pixels[0, 0] == 1.0 and pixels[1, 1] == 2.5 and pixels[0, 1] == 1.5 and pixels[2, 2] == 4.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"patch": 40}, "larger than"),
        ({"stride": 0}, "stride must be a positive"),
        ({"units": torch.tensor([8])}, "out of range"),
        ({"peaks": torch.tensor([[9, 0]])}, "outside"),
        ({"layer_path": "nothing"}, "does not run"),
        ({"image": torch.zeros(1, 30, 30)}, "[3, H, W]"),
        ({"fill": "plaid"}, "unknown occluder fill"),
        ({"batch_size": 0}, "batch size"),
    ],
)
def test_bad_arguments_are_usage_errors(call: dict, message: str) -> None:
    kwargs = {"model": small_alexnet(), "layer_path": "7", "image": torch.zeros(3, 30, 30, dtype=torch.float64),
              "units": torch.tensor([0]), "peaks": torch.tensor([[0, 0]]), **call}
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        occlusion_discrepancy(**kwargs)


def test_layers_without_spatial_extent_are_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(UsageError, match="no spatial extent"):
        plan_occlusion(model, "2", (6, 6))
