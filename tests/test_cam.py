"""cam: CAM of a tiny GAP network equals its hand computation and pytorch-grad-cam's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from planted import PlantedProbe, write_model
from pytorch_grad_cam import GradCAM as ReferenceGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from test_analysis_planted import FC_WEIGHT, UNIT_MEAN, UNIT_STD, write_gap_model
from torch import nn

from unitscope.analysis.cam.localisation import LocalisationMeter, top_share_on_mask
from unitscope.analysis.cam.methods import CAM, ChannelWeightedCAM, GradCAM
from unitscope.analysis.cam.site import find_cam_site
from unitscope.cli.main import main
from unitscope.data.broden_export import write_broden
from unitscope.errors import UsageError
from unitscope.models.loading import load_model
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig


def _planted_batch(n: int = 4) -> tuple[torch.Tensor, np.ndarray]:
    probe = PlantedProbe(n, seed=2)
    images = np.stack([probe[i].image for i in range(n)])
    return Preprocessing(None, UNIT_MEAN, UNIT_STD).batch(list(images)), images.astype(np.float64) / 255


def _hand_cam(pixels: np.ndarray, target: int) -> np.ndarray:
    raw = np.maximum(pixels @ np.array(FC_WEIGHT[target]), 0)  # features = the pixels (1x1 identity conv)
    low = raw.min()
    return (raw - low) / (raw.max() - low + 1e-7)


@pytest.mark.parametrize("target", [0, 1])
def test_cam_equals_hand_computation_and_pytorch_grad_cam(tmp_path: Path, target: int) -> None:
    model = load_model(write_gap_model(tmp_path))
    x, pixels = _planted_batch()
    site = find_cam_site(model.module, x)
    assert site.method == "cam" and site.layer == "features"
    result = CAM(model.module, site.layer, site.classifier)(x, [target] * len(x))  # type: ignore[arg-type]
    for i in range(len(x)):
        np.testing.assert_allclose(result.heatmaps[i].numpy(), _hand_cam(pixels[i], target), atol=1e-6)
    reference = ReferenceGradCAM(model.module, [model.module.features])(x, [ClassifierOutputTarget(target)] * len(x))
    np.testing.assert_allclose(result.heatmaps.numpy(), reference, atol=1e-5)
    gradcam = GradCAM(model.module, "features")(x, [target] * len(x))  # Grad-CAM = CAM / (h·w) on a GAP net
    np.testing.assert_allclose(gradcam.heatmaps.numpy(), result.heatmaps.numpy(), atol=1e-4)


def test_gradcam_matches_pytorch_grad_cam_with_upsampling_and_any_batch_size() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 5)).eval()
    with torch.no_grad():
        net[0].weight.mul_(4.0)
    x = torch.randn(5, 3, 16, 16)
    site = find_cam_site(net, x)
    assert site.method == "gradcam" and site.layer == "3"  # last non-pooling spatial output
    cam = GradCAM(net, site.layer)
    whole = cam(x, [1, 2, 3, 4, 0])
    assert all(p.grad is None for p in net.parameters())  # the model's .grad fields stay untouched
    reference = ReferenceGradCAM(net, [net[3]])(x, [ClassifierOutputTarget(t) for t in [1, 2, 3, 4, 0]])
    np.testing.assert_allclose(whole.heatmaps.numpy(), reference, atol=2e-4)
    singles = torch.cat([cam(x[i:i + 1], [t]).heatmaps for i, t in enumerate([1, 2, 3, 4, 0])])
    np.testing.assert_allclose(singles.numpy(), whole.heatmaps.numpy(), atol=1e-6)


def test_a_new_variant_overrides_one_function(tmp_path: Path) -> None:
    class UniformCAM(ChannelWeightedCAM):
        needs_gradients = False

        def channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor | None,
                            targets: torch.Tensor) -> torch.Tensor:
            return torch.ones(activations.shape[:2])

    model = load_model(write_gap_model(tmp_path))
    x, pixels = _planted_batch(2)
    heat = UniformCAM(model.module, "features")(x).heatmaps
    raw = pixels.sum(axis=3)
    expected = (raw - raw.min(axis=(1, 2), keepdims=True)) / (np.ptp(raw, axis=(1, 2), keepdims=True) + 1e-7)
    np.testing.assert_allclose(heat.numpy(), expected, atol=1e-6)


def test_site_choice_without_gap() -> None:
    net = SceneWorldNet(SceneWorldNetConfig(4, widths=(4, 4, 4, 4, 4), fc_width=8, input_size=32)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert find_cam_site(net, x).layer == "conv5" and find_cam_site(net, x).method == "gradcam"
    assert find_cam_site(net, x, layer="conv3").layer == "conv3"
    with pytest.raises(UsageError, match="gradcam"):
        find_cam_site(net, x, method="cam")


def test_top_share_by_hand_with_ties() -> None:
    heat = np.array([[0.9, 0.5, 0.5], [0.5, 0.1, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 12 px: top 20% = 2
    mask = np.zeros_like(heat, dtype=bool)
    mask[0, 1] = True  # one of the three pixels tied at 0.5 → 1 remaining place shared by 3
    assert top_share_on_mask(heat, mask, 0.2) == pytest.approx((0 + 1 / 3) / 2)
    mask[0, 0] = True
    assert top_share_on_mask(heat, mask, 0.2) == pytest.approx((1 + 1 / 3) / 2)
    meter = LocalisationMeter(0.2)
    meter.update(heat, mask)
    meter.update(heat, np.zeros_like(mask))  # no object: skipped
    score = meter.result()
    assert score.n_images == 1 and score.skipped == 1 and score.object_share == pytest.approx(2 / 12)
    assert score.mass_on_objects == pytest.approx(1.4 / heat.sum())


def test_cli_writes_overlays_and_a_localisation_score(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = write_gap_model(tmp_path)
    broden = write_broden(tmp_path / "broden", PlantedProbe(3, seed=4, blue_noise=False), progress=False)
    main(["cam", "--model", spec, "--data", str(broden), "--n", "3", "--class", "left", "--out", str(tmp_path / "o"),
          "--pictures", "2"])
    report = json.loads((tmp_path / "o" / "cam.json").read_text())
    assert report["method"] == "cam" and report["layer"] == "features" and len(report["images"]) == 3
    assert sorted(p.name for p in (tmp_path / "o").glob("cam_*.png")) == ["cam_00000.png", "cam_00001.png"]
    score = report["localisation"]
    # "left" = 2·red − green: the heat is on the square, an object; so the hottest pixels lie on objects.
    assert score["n_images"] == 3 and score["hit_rate"] > score["object_share"]
    assert "heat on objects" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["unknown-class", "not-a-classifier", "image-and-data", "layer-without-map"])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(PlantedProbe(1)[0].image).save(image)
    spec = write_model(tmp_path) if case == "not-a-classifier" else write_gap_model(tmp_path)
    args = ["cam", "--model", spec, "--image", str(image), "--out", str(tmp_path / "o")]
    args += {"unknown-class": ["--class", "nowhere"], "image-and-data": ["--data", "sceneworld"],
             "layer-without-map": ["--method", "cam", "--layer", "pool"]}.get(case, [])
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unitscope: error:") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_relevant_objects_on_sceneworld() -> None:
    from unitscope.analysis.cam.foreground import foreground_rule
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = SceneWorldProbe(n=1)
    rule, concepts = foreground_rule(probe), probe.concepts
    scene_view = rule.relevant("kitchen")
    assert concepts.number_of("stove", "object") in scene_view
    assert concepts.number_of("sky", "object") not in scene_view  # background regions are not "objects"
    assert rule.relevant("bed") == {concepts.number_of("bed", "object")}


def test_cli_gradcam_on_sceneworld(tmp_path: Path) -> None:
    source = tmp_path / "small.py"
    source.write_text("import torch\nfrom unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig\n"
                      "def build():\n    torch.manual_seed(0)\n"
                      "    return SceneWorldNet(SceneWorldNetConfig(10, widths=(8, 8, 8, 8, 8), fc_width=8))\n")
    main(["cam", "--model", f"{source}:build", "--data", "sceneworld", "--n", "2", "--out", str(tmp_path / "o")])
    report = json.loads((tmp_path / "o" / "cam.json").read_text())
    assert report["method"] == "gradcam" and report["layer"] == "conv5"
    assert report["localisation"]["n_images"] == 2 and 0 < report["localisation"]["object_share"] < 1


def test_cli_on_an_image_folder_of_mixed_sizes(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    for k, side in enumerate((16, 24, 16)):
        Image.fromarray(np.full((side, side, 3), 60 * k, np.uint8)).save(folder / f"{k}.png")
    main(["cam", "--model", write_gap_model(tmp_path), "--data", str(folder), "--out", str(tmp_path / "o")])
    report = json.loads((tmp_path / "o" / "cam.json").read_text())
    assert sorted(row["image"] for row in report["images"]) == ["00000", "00001", "00002"]
    assert report["localisation"] is None  # no labels, no score
