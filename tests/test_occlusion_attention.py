"""Occlusion where attention mixes positions: whole-image full recomputation, checked against brute force."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from arch_models import tiny_swin, tiny_vit
from cli_helpers import run_cli
from PIL import Image
from torch import nn

from unitscope.capture import LayerCapture
from unitscope.perturb import occlusion_discrepancy, plan_occlusion
from unitscope.perturb.occlusion import OcclusionPlan

MODELS = Path(__file__).with_name("arch_models.py")
PATCH, STRIDE = 8, 8


def brute_force(model: nn.Module, layer: str, image: torch.Tensor, units: torch.Tensor,
                peaks: torch.Tensor) -> torch.Tensor:
    """|a(occluded) - a(clean)| per unit: zero each occluder position in turn, run the whole model."""
    def values(x: torch.Tensor) -> torch.Tensor:
        with LayerCapture(model, [layer]) as capture:
            out = capture.run(x.unsqueeze(0))[layer][0]
        return out[units, peaks[:, 0], peaks[:, 1]]

    clean = values(image)
    h, w = image.shape[1:]
    rows, cols = range(0, h - PATCH + 1, STRIDE), range(0, w - PATCH + 1, STRIDE)
    maps = torch.zeros(len(units), len(rows), len(cols), dtype=image.dtype)
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            occluded = image.clone()
            occluded[:, y:y + PATCH, x:x + PATCH] = 0
            maps[:, i, j] = (values(occluded) - clean).abs()
    return maps


def assert_maps_equal_brute_force(model: nn.Module, layer: str, plan: OcclusionPlan, size: int, seed: int,
                                  middle_unit: int) -> None:
    """The plan's maps for three units (first, ``middle_unit``, last) at corner and edge peaks equal brute force."""
    image = torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    h, w = plan.map_size
    units = torch.tensor([0, middle_unit, plan.channels - 1])
    peaks = torch.tensor([[0, 0], [h - 1, w - 1], [h // 2, 1]])
    maps = occlusion_discrepancy(model, layer, image, units, peaks, PATCH, STRIDE, fill="zeros", batch_size=5,
                                 plan=plan)
    expected = brute_force(model, layer, image, units, peaks)
    assert maps.shape == expected.shape and expected.abs().max() > 0
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-10)


class Attended(nn.Module):
    """A 3x3 convolution, self-attention over its positions, then a 3x3 convolution: the theory (which
    does not see through the flatten/reshape) gives a 5-pixel field, attention reaches everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.attend = nn.MultiheadAttention(4, 1, batch_first=True)
        self.head = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        tokens = y.flatten(2).transpose(1, 2)
        attended = self.attend(tokens, tokens, tokens)[0].transpose(1, 2).reshape(y.shape)
        return self.head(y + attended)  # type: ignore[no-any-return]


def _attended() -> nn.Module:
    torch.manual_seed(0)
    return Attended()


@pytest.mark.parametrize(("factory", "layer", "size"), [
    (tiny_vit, "encoder.layers.encoder_layer_1", 64),  # tokens with a class token
    (tiny_swin, "features.1", 64),  # channels-last, after the first window attention
    (tiny_swin, "features.3", 64),  # after a shifted window and a patch merging
    (_attended, "head", 32),  # a field the theory reports, which attention makes wrong
])
def test_maps_where_attention_mixes_positions_equal_brute_force(factory: Callable[[], nn.Module], layer: str,
                                                                 size: int) -> None:
    model = factory().double().eval()
    plan = plan_occlusion(model, layer, (size, size))
    assert plan.path == "full" and not plan.field_defined
    assert plan.reason.startswith("full recomputation over the whole image: positions are mixed by attention at ")
    assert_maps_equal_brute_force(model, layer, plan, size, seed=3, middle_unit=1)


@pytest.mark.parametrize(("factory", "layer", "size"), [(tiny_vit, "encoder.layers.encoder_layer_1", 64),
                                                        (_attended, "head", 32)])
def test_global_attention_reaches_occluders_far_outside_any_local_window(factory: Callable[[], nn.Module],
                                                                         layer: str, size: int) -> None:
    model = factory().double().eval()
    image = torch.randn(3, size, size, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    maps = occlusion_discrepancy(model, layer, image, torch.tensor([0]), torch.tensor([[0, 0]]), PATCH, STRIDE,
                                 fill="zeros")
    assert maps[0, -1, -1] > 0  # the unit at the top-left corner changes when the bottom-right is occluded
    assert bool((maps[0] > 0).all())  # no occluder was skipped


def test_rf_empirical_runs_on_vit_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    layer = "encoder.layers.encoder_layer_1"
    result = run_cli(capsys, "rf", "--model", f"{MODELS}:tiny_vit", "--input-size", "64", "--layer", layer,
                     "--empirical", "--data", str(folder), "--topk", "1", "--patch", "16", "--stride", "16",
                     "--units", "0-1", "--out", str(out), "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)[layer]
    assert summary["theoretical"] is None and summary["units"] + summary["dead_units"] == 2
    assert summary["engine"].startswith("full recomputation over the whole image")
    record = json.loads((out / "rf.json").read_text())
    assert record["layers"][layer]["theoretical"] is None
    assert (out / "rf.csv").exists() and (out / "rf.png").exists()


def test_channels_last_map_with_a_field_is_read_as_the_capture_reads_it() -> None:
    """Swin's patch embedding has a field but a [B, h, w, C] output: maps must index units, not rows."""
    model = tiny_swin().double().eval()
    layer = "features.0"
    plan = plan_occlusion(model, layer, (64, 64))
    assert plan.field_defined and plan.path == "full" and "channels-last" in plan.reason
    assert_maps_equal_brute_force(model, layer, plan, 64, seed=5, middle_unit=3)
