"""Model loading: checkpoint formats people actually have, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.checkpoint import read_checkpoint, strip_dataparallel
from unitscope.models.layers import display_name, paper_names, resolve_layer
from unitscope.models.loading import load_model


def _alexnet_places_style_keys(net: nn.Module) -> dict[str, torch.Tensor]:
    """Places365 AlexNet: only ``features`` was wrapped in DataParallel."""
    return {k.replace("features.", "features.module.", 1): v for k, v in net.state_dict().items()}


def test_strip_dataparallel_anywhere_in_key() -> None:
    keys = {"module.conv1.weight": 1, "features.module.0.bias": 2, "fc.weight": 3}
    assert sorted(strip_dataparallel(keys)) == ["conv1.weight", "fc.weight", "features.0.bias"]


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "places_features", "module_prefix"])
def test_checkpoint_formats_load_into_alexnet(tmp_path: Path, wrap: str) -> None:
    source = torchvision.models.alexnet(num_classes=7)
    state = source.state_dict()
    if wrap == "state_dict":
        payload: object = {"epoch": 3, "arch": "alexnet", "state_dict": state}
    elif wrap == "places_features":
        payload = {"state_dict": _alexnet_places_style_keys(source)}
    elif wrap == "module_prefix":
        payload = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    else:
        payload = state
    path = tmp_path / "ckpt.pth.tar"
    torch.save(payload, path)
    loaded = load_model("alexnet", weights=str(path), num_classes=7)
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, state[key])


def test_whole_model_pickle_is_read_only_when_trusted(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 3))
    path = tmp_path / "whole.pth"
    torch.save(net, path)
    with pytest.raises(UsageError, match="--trust-checkpoint"):
        read_checkpoint(path)
    state = read_checkpoint(path, trust=True)
    assert torch.equal(state["0.weight"], net[0].weight)


def test_mismatched_checkpoint_names_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(UsageError, match=r"missing keys \[classifier\.1\.bias.*unexpected keys \[bn1\.bias.*more\]"):
        load_model("alexnet", weights=str(path), num_classes=10)


def test_wrong_num_classes_is_a_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "a.pth"
    torch.save(torchvision.models.alexnet(num_classes=365).state_dict(), path)
    with pytest.raises(UsageError, match="shape mismatches .*classifier.6.weight"):
        load_model("alexnet", weights=str(path), num_classes=1000)


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UsageError, match="did you mean.*alexnet"):
        load_model("alexnett")


def test_named_torchvision_weights_fail_cleanly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: object, **_kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(UsageError, match="could not download torchvision weights .*--weights PATH"):
        load_model("alexnet", weights="IMAGENET1K_V1")


def test_callable_model_file(tmp_path: Path) -> None:
    source = tmp_path / "mynet.py"
    source.write_text(
        "import torch.nn as nn\n"
        "def build(num_classes=3):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
        " nn.Linear(4, num_classes))\n"
    )
    loaded = load_model(f"{source}:build", num_classes=5)
    assert loaded.module[-1].out_features == 5
    with pytest.raises(UsageError, match="no callable 'missing'"):
        load_model(f"{source}:missing")


def test_alexnet_paper_names_map_to_rectified_outputs() -> None:
    net = torchvision.models.alexnet()
    names = paper_names(net)
    assert names["conv1"] == "features.1" and names["pool1"] == "features.2"
    assert names["conv5"] == "features.11" and names["pool5"] == "features.12"
    assert names["fc6"] == "classifier.2" and names["fc8"] == "classifier.6"
    assert resolve_layer(net, "conv5") == "features.11"
    assert resolve_layer(net, "features.10") == "features.10"
    assert display_name(net, "features.11") == "conv5"


def test_unknown_layer_lists_closest_names() -> None:
    net = torchvision.models.resnet18()
    with pytest.raises(UsageError, match="unknown layer 'layer5'.*closest: .*layer"):
        resolve_layer(net, "layer5")


def test_preprocessing_resizes_mixed_sizes_and_normalises() -> None:
    import numpy as np

    from unitscope.models.preprocessing import Preprocessing

    images = [np.full((20, 30, 3), 255, np.uint8), np.zeros((16, 16, 3), np.uint8)]
    batch = Preprocessing((8, 8), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).batch(images)
    assert batch.shape == (2, 3, 8, 8)
    assert torch.allclose(batch[0], torch.ones(3, 8, 8)) and torch.allclose(batch[1], -torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="different sizes"):
        Preprocessing().batch(images)
