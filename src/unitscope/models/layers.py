"""Layer names: module paths, and the paper's names (conv1 … pool5, fc6 … fc8) for AlexNet-shaped nets."""

from __future__ import annotations

from difflib import get_close_matches

from torch import nn

from unitscope.errors import UsageError


def paper_names(module: nn.Module) -> dict[str, str]:
    """Map the paper's layer names to module paths in torchvision-style AlexNet/VGG-like networks.

    ``convN`` is the rectified output (the ReLU after the N-th convolution of ``features``, or the
    convolution itself when no ReLU follows), as in Zhou et al. and Network Dissection; ``poolN`` is the
    max-pool after it; ``fc6``-``fc8`` the classifier's rectified linear outputs and final layer.
    Networks whose children already carry these names (SceneWorldNet) map them to themselves.
    """
    children = dict(module.named_children())
    own = {n: n for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
                          "fc6", "fc7", "fc8") if n in children}
    if own:
        return own
    names: dict[str, str] = {}
    features = children.get("features")
    if isinstance(features, nn.Sequential):
        conv_count = 0
        items = list(features.named_children())
        for i, (key, layer) in enumerate(items):
            if isinstance(layer, nn.Conv2d):
                conv_count += 1
                follows_relu = i + 1 < len(items) and isinstance(items[i + 1][1], nn.ReLU)
                names[f"conv{conv_count}"] = f"features.{items[i + 1][0] if follows_relu else key}"
            elif isinstance(layer, nn.MaxPool2d) and conv_count:
                names.setdefault(f"pool{conv_count}", f"features.{key}")
    classifier = children.get("classifier")
    if isinstance(classifier, nn.Sequential) and names:
        linear_count = 5
        items = list(classifier.named_children())
        for i, (key, layer) in enumerate(items):
            if isinstance(layer, nn.Linear):
                linear_count += 1
                follows_relu = i + 1 < len(items) and isinstance(items[i + 1][1], nn.ReLU)
                names[f"fc{linear_count}"] = f"classifier.{items[i + 1][0] if follows_relu else key}"
    return names


def resolve_layer(module: nn.Module, name: str) -> str:
    """The module path for ``name`` (a path or a paper name); unknown names list the closest ones."""
    paths = [p for p, _ in module.named_modules() if p]
    if name in paths:
        return name
    aliases = paper_names(module)
    if name in aliases:
        return aliases[name]
    close = get_close_matches(name, [*paths, *aliases], n=5, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"layers include: {', '.join(paths[:8])}"
    raise UsageError(f"unknown layer {name!r}; {hint}")


def display_name(module: nn.Module, path: str) -> str:
    """The paper name of a module path when it has one, else the path itself."""
    for paper, p in paper_names(module).items():
        if p == path:
            return paper
    return path
