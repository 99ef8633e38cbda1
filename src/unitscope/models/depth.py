"""How deep a layer sits in its network, comparably across architectures (``compare`` pairs layers by it).

A layer's depth is the number of convolutions its output has passed through; its *relative* depth is that
number over the network's convolutions, so the last convolutional stage of any CNN is at 100 % (ResNet-18
``layer4``, AlexNet ``conv5`` and ``pool5``) and its first convolution at 1/N. Module registration order
stands for execution order (it is that order in torchvision's models and almost every other): a module's
output has passed through every convolution registered before its last submodule. A network with fewer
than two convolutions (a vision transformer's patch embedding) counts its weight layers (convolutions and
linear layers) instead. ``position`` (the module's place in that order) breaks ties: ``pool5`` after ``conv5``.
"""

from __future__ import annotations

from torch import nn

DEPTH_KEYS: tuple[str, ...] = ("layers", "of", "position", "modules")


def counted_kinds(module: nn.Module) -> tuple[type[nn.Module], ...]:
    """The module types that make depth: convolutions, or weight layers in a network with fewer than two."""
    convolutions = sum(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())
    return (nn.modules.conv._ConvNd,) if convolutions >= 2 else (nn.modules.conv._ConvNd, nn.Linear)


def layer_depth(module: nn.Module, path: str) -> dict[str, int]:
    """``{"layers": k, "of": n, "position": p, "modules": m}`` for the submodule at ``path``: its output has
    passed through k of the network's n counted layers; it ends at place p of the m modules in registration
    order. Empty for a path the network does not hold."""
    kinds = counted_kinds(module)
    named = [(name, isinstance(m, kinds)) for name, m in module.named_modules() if name]
    ends = [i for i, (name, _) in enumerate(named) if name == path or name.startswith(path + ".")]
    if not ends:
        return {}
    last = ends[-1]
    return {"layers": sum(counted for _, counted in named[: last + 1]), "of": sum(c for _, c in named),
            "position": last + 1, "modules": len(named)}


def relative_depth(depth: dict[str, int]) -> tuple[float, float]:
    """(counted layers passed / all counted layers, place in module order / modules): the sort key of a layer;
    the first number is its relative depth (module order alone when the network counts none)."""
    position = depth["position"] / depth["modules"] if depth.get("modules") else 0.0
    share = depth["layers"] / depth["of"] if depth.get("of") else position
    return share, position
