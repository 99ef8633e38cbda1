"""Dissection, listing and reports on the architecture families users bring (tiny, random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from unitscope.capture import LayerCapture, spatial_output
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings

MODELS = Path(__file__).with_name("arch_models.py")
CASES = [  # factory, layer, expected (units, h, w) at 64 px
    ("tiny_resnet50", "layer3", (1024, 4, 4)),
    ("tiny_vgg16", "features.22", (32, 8, 8)),
    ("tiny_densenet121", "features.denseblock3", (32, 4, 4)),
    ("tiny_convnext", "features.5", (48, 4, 4)),
    ("tiny_vit", "encoder.layers.encoder_layer_1", (32, 8, 8)),
    ("tiny_swin", "features.5", (64, 4, 4)),
]


def test_tokens_become_a_grid_without_the_class_token() -> None:
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # class token + 2×2 grid, dim 3
    grid = spatial_output(tokens)
    assert grid.shape == (2, 3, 2, 2)
    assert torch.equal(grid[1, 2, 1, 0], tokens[1, 1 + 2, 2])  # token 1 + (row 1 * 2 + col 0), channel 2
    nhwc = torch.randn(1, 2, 3, 4)
    assert torch.equal(spatial_output(nhwc, channels_last=True), nhwc.permute(0, 3, 1, 2))
    assert spatial_output(torch.randn(2, 7)).shape == (2, 7)  # not spatial: unchanged


@pytest.mark.parametrize(("factory", "layer", "shape"), CASES)
def test_each_family_dissects_twenty_images(factory: str, layer: str, shape: tuple[int, int, int],
                                            tmp_path: Path) -> None:
    result = dissect(f"{MODELS}:{factory}", [layer], "sceneworld", tmp_path / "run", n=20, size=64,
                     settings=DissectSettings(topk=3, batch_size=10), progress=False)
    if factory == "tiny_vit":  # the report draws each unit's regions on the token grid
        from unitscope.report.run_report import render_report

        assert render_report(result).is_file()
    stats = result.layers[layer]
    assert tuple(stats.shape) == shape
    units = stats.units
    assert len(units) == shape[0] and units["iou"].between(0, 1).all()
    assert np.load(tmp_path / "run" / layer / "iou.npy").shape[0] == shape[0]


def test_swin_maps_are_channels_first_and_vit_grids_follow_the_image() -> None:
    from tests.arch_models import tiny_swin, tiny_vit

    swin = tiny_swin().eval()
    with LayerCapture(swin, ["features.1"]) as cap:
        out = cap.run(torch.randn(1, 3, 64, 64))["features.1"]
    assert out.shape == (1, 16, 16, 16)  # embed_dim 16 channels over the 16×16 patch grid
    vit = tiny_vit().eval()
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, :8, 56:] = 5.0  # top-right patch only
    with LayerCapture(vit, ["encoder.layers.encoder_layer_0"]) as cap:
        plain = cap.run(torch.zeros(1, 3, 64, 64))["encoder.layers.encoder_layer_0"]
        lit = cap.run(image)["encoder.layers.encoder_layer_0"]
    change = (lit - plain).abs().sum(dim=1)[0]  # [8, 8]: where the grid changed most
    assert divmod(int(change.argmax()), 8) == (0, 7)


def test_layers_command_lists_shapes_and_fields() -> None:
    from unitscope.cli.main import cli, register_commands

    register_commands(cli)
    done = CliRunner().invoke(cli, ["layers", "--model", f"{MODELS}:tiny_vit", "--input-size", "64"])
    assert done.exit_code == 0, done.output
    rows = {line.split()[0]: line.split() for line in done.output.splitlines()[1:-1]}
    assert rows["conv_proj"][2] == "32×8×8" and rows["conv_proj"][3] == "8"  # patch embedding: field = patch
    assert rows["encoder.layers.encoder_layer_1"][2] == "32×8×8"
