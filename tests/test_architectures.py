"""Dissection, listing and reports on the architecture families users bring (tiny, random weights)."""

from __future__ import annotations

import json
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
        from unitscope.dissection.reopen import Trust
        from unitscope.report.run_report import render_report

        assert render_report(result, trust=Trust(model_code=True)).is_file()  # our own model file: opted in
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
    assert rows["conv_proj"][2:] == ["32×8×8", "32", "8"]  # shape, units; patch embedding: field = patch
    assert rows["encoder.layers.encoder_layer_1"][2:4] == ["32×8×8", "32"]


CAM_CASES = [  # factory, method, layer chosen by --method auto
    ("tiny_resnet50", "cam", "layer4"),  # layer4 → GAP → fc
    ("tiny_vgg16", "gradcam", "features.11"),
    ("tiny_densenet121", "gradcam", "features"),  # ReLU and pooling are functional: Grad-CAM
    ("tiny_convnext", "gradcam", "features"),  # LayerNorm between the pooling and the classifier
    ("tiny_vit", "gradcam", "encoder.layers.encoder_layer_1.ln_1"),  # the class token attends to every patch
    ("tiny_swin", "cam", "permute"),  # channels-last norm → permute → GAP → head
]


@pytest.mark.parametrize(("factory", "method", "layer"), CAM_CASES)
def test_cam_explains_each_family(factory: str, method: str, layer: str, tmp_path: Path) -> None:
    from unitscope.analysis.cam.run import CamOptions, run_cam
    from unitscope.analysis.inputs import open_inputs
    from unitscope.models.loading import load_model

    model = load_model(f"{MODELS}:{factory}")
    summary = run_cam(model, open_inputs(None, "sceneworld", 3, 1, 64), tmp_path, CamOptions(batch_size=2, pictures=1))
    assert (summary.method, summary.layer) == (method, layer)
    assert len(summary.rows) == 3 and (tmp_path / "cam_00000.png").is_file()
    assert summary.baseline is not None and summary.baseline.localisation.n_images == summary.localisation.n_images


def _rf(factory: str, layer: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``unitscope rf --json`` through the real entry point: exit status and stdout + stderr."""
    from unitscope.cli.main import main

    try:
        main(["rf", "--model", f"{MODELS}:{factory}", "--input-size", "64", "--layer", layer, "--json"])
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("factory", "layer", "size"), [
    ("tiny_resnet50", "layer3", "43"),  # 7 s2, pool 3 s2, then one 3x3 per stage (strided from layer2 on)
    ("tiny_vgg16", "features.22", "92"),  # VGG-16's conv4_3, as in the literature
    ("tiny_densenet121", "features.denseblock3", "135"),
    ("tiny_convnext", "features.5", "184"),  # 4 + 6·4 + 4 + 6·8 + 8 + 6·16: through permute, LayerNorm, Linear
])
def test_theoretical_fields_of_convolutional_families(factory: str, layer: str, size: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, output = _rf(factory, layer, capsys)
    assert code == 0, output
    assert json.loads(output)[layer]["size"] == int(size)


@pytest.mark.parametrize(("factory", "layer"), [("tiny_vit", "encoder.layers.encoder_layer_1"),
                                                ("tiny_swin", "features.5"), ("tiny_swin", "features.1.0.attn")])
def test_attention_layers_say_why_they_have_no_theoretical_field(factory: str, layer: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, output = _rf(factory, layer, capsys)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"unitscope: error: layer {layer} "), output
    assert "attention" in lines[0] and "not defined" in lines[0]


def test_vit_input_size_is_fixed_by_its_positional_embedding() -> None:
    from unitscope.errors import UsageError
    from unitscope.models.loading import load_model

    model = load_model(f"{MODELS}:tiny_vit")
    assert model.preprocess.input_size == (64, 64)  # probe images of any size are resized to 64
    with pytest.raises(UsageError, match="takes only 64×64 inputs"):
        model.preprocess.with_overrides(32)
    assert model.preprocess.with_overrides(64).input_size == (64, 64)
    assert load_model(f"{MODELS}:tiny_resnet50").preprocess.input_size is None  # others take any size


def test_vit_report_regions_cover_the_patch_that_lit_the_unit() -> None:
    """The report's activation region of a ViT unit is its token grid upsampled onto the image."""
    from unitscope.models.loading import load_model
    from unitscope.report.unit_images import LayerRequest, RegionRenderer

    model = load_model(f"{MODELS}:tiny_vit")
    layer = "encoder.layers.encoder_layer_0"
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, 8:16, 48:56] = 5.0  # patch (row 1, column 6) of the 8×8 grid
    with LayerCapture(model.module, [layer]) as cap:
        plain = cap.run(torch.zeros(1, 3, 64, 64))[layer]
        lit = cap.run(image)[layer]
    unit = int((lit - plain)[0, :, 1, 6].argmax())  # the unit that the planted patch raised most
    grid = lit[0, unit]
    threshold = float(grid.flatten().sort().values[-2] + grid.max()) / 2  # only the hottest cell above it
    assert divmod(int(grid.argmax()), 8) == (1, 6)
    renderer = RegionRenderer(model, probe=None, upsample="rf")  # type: ignore[arg-type]
    request = LayerRequest(layer, {unit: threshold}, {unit: [0]})
    mask = renderer._masks("vit", lit[:, unit], request, [unit], (64, 64), (64, 64))[0]
    rows, cols = np.nonzero(mask)
    assert mask.any() and rows.min() >= 8 - 4 and rows.max() < 16 + 4 and cols.min() >= 48 - 4 and cols.max() < 56 + 4
    assert mask[8:16, 48:56].mean() > 0.5  # the region sits on the patch (bilinear cell edges blur by ≤ half a cell)
