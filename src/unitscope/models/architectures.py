"""The network families ``unitscope train --arch`` builds, sized for SceneWorld (about 1–3 M parameters).

Each is torchvision's own class (or a subclass that only narrows its widths), so module names, layer
listings, receptive fields, CAM and the layout rules (``unitscope.layout``) apply as they do to the full-size
networks users bring: ``alexnet`` is :class:`SceneWorldNet` (the shipped pair's shape, the paper's layer
names), ``resnet`` keeps ``conv1/bn1/layer1…layer4/fc``, ``vgg`` and ``convnext`` keep
``features/avgpool/classifier``, ``vit`` keeps ``conv_proj/encoder.layers.encoder_layer_N/heads``, ``swin``
keeps ``features/norm/head``. A checkpoint records the architecture's settings, so a later change of the
defaults below never breaks a saved file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from torch import nn

from unitscope.errors import UsageError
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.models.torchvision_import import import_torchvision
from unitscope.training_config import ARCHITECTURES

import_torchvision()  # first, so that the imports below find torchvision imported without torch._dynamo (1.5 s)
from torchvision.models.convnext import CNBlockConfig, ConvNeXt  # noqa: E402
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402
from torchvision.models.swin_transformer import SwinTransformer  # noqa: E402
from torchvision.models.vgg import VGG, make_layers  # noqa: E402
from torchvision.models.vision_transformer import VisionTransformer  # noqa: E402

# The settings each family is built with (JSON-able; stored in every checkpoint).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "resnet": {"widths": [32, 64, 128, 256], "blocks": [1, 1, 1, 1]},
    "vgg": {"cfg": [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 192, 192, "M"], "fc_width": 256,
            "dropout": 0.3},
    "convnext": {"widths": [32, 64, 128, 256], "depths": [2, 2, 2, 2]},
    "vit": {"patch_size": 14, "num_layers": 6, "num_heads": 4, "hidden_dim": 128, "mlp_dim": 512},
    "swin": {"patch_size": 8, "embed_dim": 48, "depths": [2, 2, 2], "num_heads": [2, 4, 8], "window_size": 7},
}


@dataclass(frozen=True)
class ArchConfig:
    """A non-AlexNet family: its name, class count, input side and the settings it is built with."""

    arch: str
    num_classes: int
    input_size: int = 112
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"arch": self.arch, "num_classes": self.num_classes, "input_size": self.input_size,
                "settings": self.settings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchConfig:
        return cls(arch=str(data["arch"]), num_classes=int(data["num_classes"]),
                   input_size=int(data["input_size"]), settings=dict(data["settings"]))


NetConfig = SceneWorldNetConfig | ArchConfig


def check_arch(arch: str) -> None:
    """Refuse an unknown family with one line listing the known ones."""
    if arch not in ARCHITECTURES:
        raise UsageError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHITECTURES)}")


def default_config(arch: str, num_classes: int, input_size: int = 112) -> NetConfig:
    """The configuration ``unitscope train --arch`` builds (alexnet: the shipped SceneWorldNet's)."""
    check_arch(arch)
    if arch == "alexnet":
        return SceneWorldNetConfig(num_classes=num_classes, input_size=input_size)
    settings = DEFAULT_SETTINGS[arch]
    if arch == "vit" and input_size % settings["patch_size"]:
        raise UsageError(f"--arch vit cuts {settings['patch_size']} px patches; give a --size that is a multiple "
                         f"of {settings['patch_size']} (112 is)")
    return ArchConfig(arch, num_classes, input_size, {k: list(v) if isinstance(v, list) else v
                                                      for k, v in settings.items()})


def config_from_dict(arch: str, data: dict[str, Any]) -> NetConfig:
    """Read back what :meth:`to_dict` of the checkpoint's configuration wrote."""
    check_arch(arch)
    return SceneWorldNetConfig.from_dict(data) if arch == "alexnet" else ArchConfig.from_dict(data)


def build_network(config: NetConfig) -> nn.Module:
    """A freshly initialised network (initialisation draws from torch's global generator: seed it first)."""
    if isinstance(config, SceneWorldNetConfig):
        return SceneWorldNet(config)
    s, k = config.settings, config.num_classes
    if config.arch == "resnet":
        return SmallResNet(s["widths"], s["blocks"], k)
    if config.arch == "vgg":
        return SmallVGG(s["cfg"], s["fc_width"], float(s["dropout"]), k)
    if config.arch == "convnext":
        widths, depths = s["widths"], s["depths"]
        stages = [CNBlockConfig(w, widths[i + 1] if i + 1 < len(widths) else None, d)
                  for i, (w, d) in enumerate(zip(widths, depths, strict=True))]
        return cast(nn.Module, ConvNeXt(stages, stochastic_depth_prob=0.0, num_classes=k))
    if config.arch == "vit":
        return cast(nn.Module, VisionTransformer(config.input_size, s["patch_size"], s["num_layers"],
                                                 s["num_heads"], s["hidden_dim"], s["mlp_dim"], num_classes=k))
    if config.arch == "swin":
        patch, window = s["patch_size"], s["window_size"]
        return cast(nn.Module, SwinTransformer([patch, patch], s["embed_dim"], s["depths"], s["num_heads"],
                                               [window, window], stochastic_depth_prob=0.0, num_classes=k))
    raise UsageError(f"unknown architecture {config.arch!r} in the checkpoint; use one of "
                     f"{', '.join(ARCHITECTURES)}")


class SmallResNet(ResNet):  # type: ignore[misc]  # torchvision ships no type hints
    """torchvision's ResNet with BasicBlocks of the given widths (torchvision fixes them at 64…512).

    Everything but the widths is torchvision's: the 7×7 stride-2 stem, max-pool, ``layer1…layer4``,
    global average pool, ``fc``, Kaiming initialisation and the inherited ``forward``.
    """

    def __init__(self, widths: list[int], blocks: list[int], num_classes: int) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], blocks[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class SmallVGG(VGG):  # type: ignore[misc]  # torchvision ships no type hints
    """torchvision's VGG (``make_layers`` with batch norm) with a head sized for 112 px and few classes.

    torchvision's head expects 512×7×7 features and 4096-wide layers (120 M parameters); this one pools
    to 3×3 (what 112 px gives after five max-pools) and keeps VGG's Linear-ReLU-Dropout ×2 shape.
    """

    def __init__(self, cfg: list[str | int], fc_width: int, dropout: float, num_classes: int) -> None:
        nn.Module.__init__(self)
        self.features = make_layers(cfg, batch_norm=True)
        channels = [c for c in cfg if isinstance(c, int)][-1]
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 9, fc_width), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(fc_width, fc_width), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(fc_width, num_classes),
        )
        for m in self.modules():  # torchvision VGG's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
