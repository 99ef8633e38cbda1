"""Tiny members of the torchvision architecture families unitscope supports (random weights).

The same classes as resnet50, vgg16, densenet121, convnext_tiny, vit_b_16 and swin_t — the same module
types and code paths (bottlenecks, dense concatenation, channels-last blocks, tokens with a class token,
shifted windows) — with widths and depths cut so that a test dissects each in a second.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models import convnext, densenet, resnet, swin_transformer, vgg, vision_transformer


def tiny_resnet50() -> nn.Module:
    torch.manual_seed(0)
    return resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, width_per_group=16)


def tiny_vgg16() -> nn.Module:
    torch.manual_seed(0)
    cfg = [8, 8, "M", 16, 16, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]  # vgg16's "D" layout, thin
    net = vgg.VGG(vgg.make_layers(cfg), num_classes=10)
    net.classifier = nn.Sequential(nn.Linear(32 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64),
                                   nn.ReLU(True), nn.Dropout(), nn.Linear(64, 10))  # VGG's head, as thin
    return net


def tiny_densenet121() -> nn.Module:
    torch.manual_seed(0)
    return densenet.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=10)


def tiny_convnext() -> nn.Module:
    torch.manual_seed(0)
    config = convnext.CNBlockConfig
    blocks = [config(16, 32, 1), config(32, 48, 1), config(48, 64, 1), config(64, None, 1)]
    return convnext.ConvNeXt(blocks, num_classes=10)


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    net = vision_transformer.VisionTransformer(image_size=64, patch_size=8, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=10)
    nn.init.normal_(net.heads.head.weight, std=0.1)  # torchvision zero-initialises the head: no class evidence
    return net


def tiny_swin() -> nn.Module:
    torch.manual_seed(0)
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1, 1, 1],
                                            num_heads=[1, 2, 2, 4], window_size=[2, 2], num_classes=10,
                                            norm_layer=partial(nn.LayerNorm, eps=1e-5))


def tiny_resnet18() -> nn.Module:
    """torchvision's ResNet-18 module tree (conv1 … layer4, BasicBlocks, downsampling) at widths 8-32, one block
    per stage: ``layer4`` is its last convolutional stage, as in resnet18."""
    torch.manual_seed(0)
    net = resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)
    widths = (8, 16, 24, 32)
    net.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    before = widths[0]
    for index, width in enumerate(widths, start=1):
        stride = 1 if index == 1 else 2
        down = None if stride == 1 and before == width else nn.Sequential(
            nn.Conv2d(before, width, 1, stride, bias=False), nn.BatchNorm2d(width))
        setattr(net, f"layer{index}", nn.Sequential(resnet.BasicBlock(before, width, stride, down)))
        before = width
    net.fc = nn.Linear(before, 10)
    return net
