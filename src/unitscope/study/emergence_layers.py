"""Which layers the emergence study dissects: in each network, the layer nearest each target relative depth.

Relative depth is :mod:`unitscope.models.depth`'s (what ``compare`` pairs layers by): the share of the
network's convolutions a layer's output has passed through (a transformer, with fewer than two, counts its
weight layers). Here it is taken *of the feature extractor*: over the depth where the extractor ends, so its
last stage is 100 % in every family (for a CNN that is the depth module already gives it).

- The feature extractor ends with the top-level module that holds the network's last counted layer whose
  output is a spatial map (global pooling, the classifier and anything else after it are left out: AlexNet
  ends at ``conv5``, a ResNet at ``layer4``, a ViT at ``encoder``, VGG, ConvNeXt and Swin at ``features``).
- Candidates are the layers of the network's sequence of layers inside it: children of the model itself or
  of a plain ``nn.Sequential``/``nn.ModuleList`` (a ResNet's ``layer4``, VGG's ``features.28``, a ViT's
  ``encoder_layer_3``; not a sublayer in the middle of a residual or attention block, nor of an MLP block
  that subclasses ``nn.Sequential``), whose output is a
  spatial map of more than one cell with a known unit axis (:func:`unitscope.layout.probe_layers`), called
  once per forward pass (a shared module's place in module order misstates its depth), and that do not hold
  the network's first counted layer together with another one (such a module is the whole extractor, as
  VGG's ``features``, not one of its layers).
- For each target the nearest candidate wins; on a tie the deeper (``compare``'s rule), then the outermost
  module (a block rather than its last sublayer: the same tensor under the block's name, e.g. AlexNet
  ``conv1`` rather than its ``conv1.2`` ReLU), then the later in module order (``pool1`` after ``conv1``).
  Depths are exact fractions, so a tie is a tie (AlexNet: 50 % lies between ``pool2`` at 2/5 and ``conv3``
  at 3/5; ``conv3`` is taken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

TARGETS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
MAP_LAYOUTS: tuple[str, ...] = ("channels_first", "channels_last", "tokens")


@dataclass(frozen=True)
class PickedLayer:
    """The layer chosen for one target depth: its module path, convolutions passed and its relative depth."""

    target: float
    path: str
    passed: int  # counted layers its output has passed through
    end: int  # counted layers at the feature extractor's end
    of: int  # counted layers of the whole network

    @property
    def depth(self) -> float:
        """Relative depth in the feature extractor (passed / end)."""
        return self.passed / self.end

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "layer": self.path, "depth": round(self.depth, 4), "passed": self.passed,
                "end": self.end, "of": self.of}


@dataclass(frozen=True)
class _Candidate:
    path: str
    passed: int
    position: int
    dots: int


def _top(path: str) -> str:
    return path.split(".", 1)[0]


def pick_layers(module: nn.Module, input_size: tuple[int, int], targets: Sequence[float] = TARGETS
                ) -> list[PickedLayer]:
    """The layer nearest each of ``targets`` (shares of the feature extractor's depth; see the module doc)."""
    from torch import nn

    from unitscope.errors import UsageError
    from unitscope.layout import probe_layers
    from unitscope.models.depth import counted_kinds

    kinds = counted_kinds(module)
    named = [(name, sub) for name, sub in module.named_modules() if name]
    counted = [name for name, sub in named if isinstance(sub, kinds)]
    layouts = probe_layers(module, input_size)
    if not counted:
        raise UsageError(f"{type(module).__name__} has no convolution or linear layer to measure depth by")
    maps = {path: layout for path, layout in layouts.items()
            if layout.layout in MAP_LAYOUTS and layout.calls == 1 and _cells(layout.read_shape) > 1}
    last_map = [name for name in counted if name in maps or any(p.startswith(name + ".") for p in maps)]
    if not last_map:
        raise UsageError(f"{type(module).__name__} has no convolution whose output is a spatial map")
    extractor_top = _top(last_map[-1])
    tops = list(dict.fromkeys(_top(name) for name, _ in named))
    allowed = set(tops[: tops.index(extractor_top) + 1])
    first = counted[0]
    order = {name: i for i, (name, _) in enumerate(named)}
    running, passed_at = 0, {}
    for name, sub in named:
        running += isinstance(sub, kinds)
        passed_at[name] = running
    sequences = {name for name, sub in named if type(sub) in (nn.Sequential, nn.ModuleList)}  # not subclasses
    candidates = []
    for path in maps:
        inside = [name for name in counted if name == path or name.startswith(path + ".")]
        if path not in order or _top(path) not in allowed or (first in inside and len(inside) > 1):
            continue
        parent = path.rpartition(".")[0]
        if parent and parent not in sequences:
            continue
        last = max(i for name, i in order.items() if name == path or name.startswith(path + "."))
        candidates.append(_Candidate(path, passed_at[named[last][0]], last, path.count(".")))
    if not candidates:
        raise UsageError(f"{type(module).__name__} has no spatial layer to dissect inside its feature extractor")
    end = max(c.passed for c in candidates)
    picked = []
    for target in targets:
        goal = Fraction(target).limit_denominator(1000)
        best = min(candidates, key=lambda c: (abs(Fraction(c.passed, end) - goal), -c.passed, c.dots, -c.position))
        picked.append(PickedLayer(float(target), best.path, best.passed, end, len(counted)))
    return picked


def _cells(shape: tuple[int, ...]) -> int:
    return shape[1] * shape[2] if len(shape) == 3 else 0
