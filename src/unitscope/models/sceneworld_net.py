"""An AlexNet-shaped CNN small enough to train on two CPU cores, with the paper's layer names.

Each named convolutional layer (conv1 … conv5) is a block whose output is the rectified activation,
as in Zhou et al. 2015 and Network Dissection, so hooking ``conv5`` reads what those papers call conv5.
The raw convolution is ``conv5.0``. Theoretical receptive fields at 112 px input:
conv1 5, pool1 9, conv2 25, pool2 33, conv3 49, conv4 65, conv5 81, pool5 97.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from unitscope.models.whitening import ConceptWhitening

PAPER_LAYERS: tuple[str, ...] = (
    "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8",
)


@dataclass(frozen=True)
class SceneWorldNetConfig:
    """Widths of the network; the defaults are the shipped networks'."""

    num_classes: int
    widths: tuple[int, int, int, int, int] = (24, 48, 96, 96, 128)
    fc_width: int = 256
    input_size: int = 112
    whitening: tuple[str, ...] = ()  # layers whose BatchNorm is a ConceptWhitening (train --constraint whitening)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneWorldNetConfig:
        return cls(
            num_classes=int(data["num_classes"]),
            widths=tuple(data["widths"]),
            fc_width=int(data["fc_width"]),
            input_size=int(data["input_size"]),
            whitening=tuple(str(name) for name in data.get("whitening", ())),
        )


def conv_block(c_in: int, c_out: int, kernel: int, stride: int, padding: int, whitened: bool = False
               ) -> nn.Sequential:
    """Convolution, batch norm (or concept whitening in its place) and a ReLU: one paper-named layer."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        ConceptWhitening(c_out) if whitened else nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SceneWorldNet(nn.Module):
    """conv1 → pool1 → conv2 → pool2 → conv3 → conv4 → conv5 → pool5 → fc6 → fc7 → fc8."""

    def __init__(self, config: SceneWorldNetConfig) -> None:
        super().__init__()
        self.config = config
        w1, w2, w3, w4, w5 = config.widths
        cw = set(config.whitening)
        self.conv1 = conv_block(3, w1, 5, 2, 2, "conv1" in cw)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.conv2 = conv_block(w1, w2, 5, 1, 2, "conv2" in cw)
        self.pool2 = nn.MaxPool2d(3, 2, 1)
        self.conv3 = conv_block(w2, w3, 3, 1, 1, "conv3" in cw)
        self.conv4 = conv_block(w3, w4, 3, 1, 1, "conv4" in cw)
        self.conv5 = conv_block(w4, w5, 3, 1, 1, "conv5" in cw)
        self.pool5 = nn.MaxPool2d(3, 2, 1)
        spatial = self._pool5_side(config.input_size)
        self.fc6 = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(w5 * spatial * spatial, config.fc_width), nn.ReLU(True)
        )
        self.fc7 = nn.Sequential(nn.Dropout(0.3), nn.Linear(config.fc_width, config.fc_width), nn.ReLU(True))
        self.fc8 = nn.Linear(config.fc_width, config.num_classes)

    @staticmethod
    def _pool5_side(input_size: int) -> int:
        side = (input_size + 2 * 2 - 5) // 2 + 1  # conv1
        for _ in range(3):  # pool1, pool2, pool5 (3x3, stride 2, pad 1)
            side = (side + 2 - 3) // 2 + 1
        return side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in PAPER_LAYERS:
            x = getattr(self, name)(x)
        return x
