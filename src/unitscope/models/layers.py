"""Layer names: module paths, and the paper's names (conv1 … pool5, fc6 … fc8) for AlexNet-shaped nets."""

from __future__ import annotations

from torch import nn

from unitscope.models.catalog import LayerNames, unknown_layer


def paper_names(module: nn.Module) -> dict[str, str]:
    """Map the paper's layer names to module paths in torchvision-style AlexNet/VGG-like networks.

    ``convN`` is the rectified output (the ReLU after the N-th convolution of ``features``, or the
    convolution itself when no ReLU follows), as in Zhou et al. and Network Dissection; ``poolN`` is the
    max-pool after it; ``fc6``-``fc8`` the classifier's rectified linear outputs and final layer.
    Networks whose children already carry these names (SceneWorldNet) map them to themselves.
    """
    children = dict(module.named_children())
    own: dict[str, str] = {n: n for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
                          "fc6", "fc7", "fc8") if n in children}
    if own:
        return own
    names: dict[str, str] = {}
    features = children.get("features")
    if isinstance(features, nn.Sequential):
        for count, (key, layer) in enumerate(_rectified(features, nn.Conv2d), start=1):
            names[f"conv{count}"] = f"features.{key}"
            pool = _next_pool(features, layer)
            if pool is not None:
                names.setdefault(f"pool{count}", f"features.{pool}")
    classifier = children.get("classifier")
    if isinstance(classifier, nn.Sequential) and names:
        for count, (key, _) in enumerate(_rectified(classifier, nn.Linear), start=6):
            names[f"fc{count}"] = f"classifier.{key}"
    return names


def _rectified(sequence: nn.Sequential, kind: type[nn.Module]) -> list[tuple[str, nn.Module]]:
    """Each ``kind`` layer of ``sequence`` as (key of its output, the layer): the ReLU right after it, if any."""
    items = list(sequence.named_children())
    found = []
    for i, (key, layer) in enumerate(items):
        if isinstance(layer, kind):
            follows_relu = i + 1 < len(items) and isinstance(items[i + 1][1], nn.ReLU)
            found.append((items[i + 1][0] if follows_relu else key, layer))
    return found


def _next_pool(sequence: nn.Sequential, layer: nn.Module) -> str | None:
    """The key of the first max-pool after ``layer`` and before the next convolution, if any."""
    items = list(sequence.named_children())
    start = next(i for i, (_, item) in enumerate(items) if item is layer)
    for key, item in items[start + 1:]:
        if isinstance(item, nn.Conv2d):
            return None
        if isinstance(item, nn.MaxPool2d):
            return key
    return None


def resolve_layer(module: nn.Module, name: str) -> str:
    """The module path for ``name`` (a path or a paper name); unknown names list the closest ones."""
    paths = [p for p, _ in module.named_modules() if p]
    if name in paths:
        return name
    aliases = paper_names(module)
    if name in aliases:
        return aliases[name]
    raise unknown_layer(name, LayerNames(tuple(paths), aliases))


def display_name(module: nn.Module, path: str) -> str:
    """The paper name of a module path when it has one, else the path itself."""
    for paper, p in paper_names(module).items():
        if p == path:
            return paper
    return path
