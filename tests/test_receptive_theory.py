"""Theoretical receptive fields: published numbers, hand-computed small cases, merges and unknown ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.receptive import FieldGeometry, theoretical_fields


def test_alexnet_matches_the_published_fields() -> None:
    fields = theoretical_fields(torchvision.models.alexnet(), (224, 224))
    expected = {"features.0": 11, "features.2": 19, "features.3": 51, "features.5": 67, "features.6": 99,
                "features.8": 131, "features.10": 163, "features.12": 195}
    assert {p: fields[p].size for p in expected} == expected
    assert [fields[p].stride for p in expected] == [4, 8, 8, 16, 16, 16, 16, 32]
    # conv1: kernel 11, padding 2 → centre of position 0 at pixel 5 - 2 = 3; pool1 adds one jump of 4.
    assert [fields[p].start for p in ("features.0", "features.2", "features.5", "features.12")] == [3, 7, 15, 31]
    assert fields["features.10"].map_size == (13, 13)
    assert "classifier.1" not in fields  # no spatial extent


def test_resnet18_stages_by_hand() -> None:
    # conv1 7/2 → 7; maxpool 3/2 → 7+2*2 = 11 (jump 4); layer1: four 3x3 → 11+4*2*4 = 43;
    # layer2: 3x3/2 (+8) then three 3x3 at jump 8 (+48) → 99; layer3 → 99+16+96 = 211; layer4 → 211+32+192 = 435.
    fields = theoretical_fields(torchvision.models.resnet18(), (224, 224))
    got = {p: (fields[p].size, fields[p].stride, fields[p].start) for p in
           ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")}
    assert got == {"conv1": (7, 2, 0), "maxpool": (11, 4, 0), "layer1": (43, 4, 0), "layer2": (99, 8, 0),
                   "layer3": (211, 16, 0), "layer4": (435, 32, 0)}
    # The 1x1 downsample branch sees less; the residual sum takes the larger field.
    assert fields["layer2.0.downsample"].size == 43 + 0 and fields["layer2.0"].size == 67


def test_sceneworld_net_at_112() -> None:
    fields = theoretical_fields(SceneWorldNet(SceneWorldNetConfig(num_classes=3)), (112, 112))
    sizes = {n: fields[n].size for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")}
    assert sizes == {"conv1": 5, "pool1": 9, "conv2": 25, "pool2": 33, "conv3": 49, "conv4": 65, "conv5": 81,
                     "pool5": 97}
    assert fields["pool5"].map_size == (7, 7)


def test_fixed_size_head_does_not_hide_the_convolutions() -> None:
    # SceneWorldNet's fc6 needs 112 px; at 224 the convolutional layers still have fields.
    fields = theoretical_fields(SceneWorldNet(SceneWorldNetConfig(num_classes=3)), (224, 224))
    assert fields["pool5"].size == 97 and fields["pool5"].map_size == (14, 14)


def test_dilation_ceil_mode_and_functional_pooling_by_hand() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, dilation=2)  # extent 5 → size 5, start 2
            self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)  # size 5+1 = 6, jump 2, start 2.5

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(self.conv(x))
            return F.max_pool2d(x, 3, 1, 1)  # size 6+2*2 = 10, start 2.5 + (1-1)*2

    fields = theoretical_fields(Net(), (20, 20))
    assert fields["conv"] == FieldGeometry(5, 1, 2.0, map_size=(16, 16))
    assert fields["pool"] == FieldGeometry(6, 2, 2.5, map_size=(8, 8))
    assert fields["pool"].centre(1, 3) == (4.5, 8.5)


def test_concatenated_branches_take_the_largest_field() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.small = nn.Conv2d(3, 2, 3, padding=1)
            self.large = nn.Conv2d(3, 2, 5, padding=2)
            self.mix = nn.Conv2d(4, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mix(torch.cat([self.small(x), self.large(x)], dim=1))

    fields = theoretical_fields(Net(), (9, 9))
    assert (fields["small"].size, fields["large"].size, fields["mix"].size) == (3, 5, 5)


def test_non_square_kernels_keep_both_axes() -> None:
    fields = theoretical_fields(nn.Sequential(nn.Conv2d(3, 1, (1, 7), padding=(0, 3))), (8, 8))
    geometry = fields["0"]
    assert (geometry.axis(0).size, geometry.axis(1).size) == (1, 7)
    assert geometry.to_dict() == {"size": 1, "stride": 1, "start": 0.0, "size_x": 7, "stride_x": 1, "start_x": 0.0}


def test_unknown_resizing_ops_are_left_out() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.after = nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.after(F.interpolate(self.conv(x), scale_factor=2.0))

    fields = theoretical_fields(Net(), (10, 10))
    assert fields["conv"].size == 3 and "after" not in fields


def test_bad_input_size_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="input size"):
        theoretical_fields(torchvision.models.alexnet(), (0, 224))
    with pytest.raises(UsageError, match="does not accept"):
        theoretical_fields(nn.Sequential(nn.Conv2d(3, 1, 5)), (3, 3))
