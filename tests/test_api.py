"""The Python API: one shape for every analysis; an nn.Module gives what its spec string gives."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torchvision
from PIL import Image
from planted import PlantedProbe

import unitscope
from unitscope.dissection.settings import DissectSettings


def test_a_module_object_and_a_probe_set_give_the_spec_strings_units(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    weights = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), weights)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    training = net.training
    settings = DissectSettings(quantile=0.3, topk=3, workers=0)
    probe = PlantedProbe(6)
    by_object = unitscope.dissect(net, ["layer1"], probe, tmp_path / "object", settings=settings, progress=False)
    by_spec = unitscope.dissect("resnet18", ["layer1"], probe, tmp_path / "spec", weights=str(weights),
                                settings=settings, progress=False)
    a = pd.read_csv(tmp_path / "object" / "layer1" / "units.csv")
    b = pd.read_csv(tmp_path / "spec" / "layer1" / "units.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 64 and a["iou"].max() > 0
    # the argument is untouched: same weights, same train/eval mode
    assert net.training == training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    picture = by_object.show("layer1", int(a["unit"][0]), n_images=2)
    assert isinstance(picture, Image.Image) and picture.width > picture.height
    assert by_spec.units["layer1"].equals(by_spec.result.units["layer1"])


def test_receptive_fields_table_matches_the_papers_alexnet() -> None:
    table = unitscope.receptive_fields(torchvision.models.alexnet(), (227, 227)).table.set_index("layer")
    assert table.loc["features.10", "size"] == 163 and table.loc["features.12", "size"] == 195
