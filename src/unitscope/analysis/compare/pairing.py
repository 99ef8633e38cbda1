"""Which layer of each run is compared with which: by name, by relative depth, or as the user says.

- Runs that dissected the same layer names are compared layer by layer.
- Otherwise (networks of different architectures) layers are paired by *relative depth*
  (:mod:`unitscope.models.depth`: the share of the network's convolutions a layer's output has passed
  through, 100 % for the last convolutional stage). The run with the fewest layers leads; each of its
  layers is compared with the layer of every other run nearest in relative depth (on a tie, the deeper one).
  Layers of the other runs nearest to none of them are left out, and the sentence says which.
- ``--pair A:B[:C…]`` (one name per run, repeatable) overrides both.

Depths come from the run's record (``LayerRecord.depth``, written by ``dissect``); for a run recorded
before that, from its architecture rebuilt without weights when the record names a built-in or torchvision
model (no code from a run folder is imported; a ``file.py:callable`` run needs ``--pair``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

DEPTH_RULE = ("the share of the network's convolutions a layer's output has passed through, 100% at its last "
              "convolutional stage")


@dataclass(frozen=True)
class LayerGroup:
    """One layer of each run, compared with each other; ``depths``: their relative depths (None: not needed)."""

    layers: tuple[str, ...]
    depths: tuple[float | None, ...] = ()

    @property
    def a(self) -> str:
        return self.layers[0]

    @property
    def b(self) -> str:
        return self.layers[1]

    @property
    def label(self) -> str:
        return self.layers[0] if len(set(self.layers)) == 1 else " ↔ ".join(self.layers)

    def described(self) -> str:
        """``pool5 (100%) ↔ layer4 (100%)``: the layers with their relative depths where known."""
        parts = [layer if depth is None else f"{layer} ({depth:.0%})"
                 for layer, depth in zip(self.layers, self.depths or (None,) * len(self.layers), strict=True)]
        return " ↔ ".join(parts)


@dataclass(frozen=True)
class Pairing:
    """The layer groups and how they were chosen (``name``, ``depth`` or ``given``), said in one sentence."""

    method: str
    groups: list[LayerGroup]
    unpaired: list[str] = field(default_factory=list)  # "layer1 (25%) of resnet18"

    def sentence(self) -> str:
        groups = "; ".join(group.described() for group in self.groups)
        if self.method == "name":
            said = f"Layers paired by name: {', '.join(group.label for group in self.groups)}."
        elif self.method == "given":
            said = f"Layers paired as given by --pair: {groups}."
        else:
            said = f"Layers paired by relative depth ({DEPTH_RULE}): {groups}."
        if self.unpaired:
            said += f" Not paired (nearer to none of the leading run's layers): {', '.join(self.unpaired)}."
        return said


def pair_layers(runs: Sequence[DissectionResult], names: Sequence[str],
                given: Sequence[str] = ()) -> Pairing:
    """The layer groups of ``runs`` (see the module docstring); ``given``: ``--pair`` values ("A:B")."""
    if given:
        return Pairing("given", [_given_group(runs, names, text) for text in given])
    layer_sets = [set(run.layers) for run in runs]
    if all(layers == layer_sets[0] for layers in layer_sets):
        return Pairing("name", [LayerGroup((layer,) * len(runs)) for layer in runs[0].layers])
    return _pair_by_depth(runs, names)


def _given_group(runs: Sequence[DissectionResult], names: Sequence[str], text: str) -> LayerGroup:
    parts = text.split(":")
    if len(parts) != len(runs):
        example = ":".join(f"LAYER{i + 1}" for i in range(len(runs)))
        raise UsageError(f"--pair {text} names {len(parts)} layers for {len(runs)} runs; give one per run, "
                         f"in the order of the runs: --pair {example}")
    for part, run, name in zip(parts, runs, names, strict=True):
        if part not in run.layers:
            raise UsageError(f"--pair {text}: {name} has no layer {part!r}; it dissected {', '.join(run.layers)}")
    return LayerGroup(tuple(parts))


def _pair_by_depth(runs: Sequence[DissectionResult], names: Sequence[str]) -> Pairing:
    depths = [run_depths(run, name) for run, name in zip(runs, names, strict=True)]
    lead = min(range(len(runs)), key=lambda i: (len(runs[i].layers), i))
    groups = []
    for layer in sorted(runs[lead].layers, key=lambda name: depths[lead][name]):
        target = depths[lead][layer][0]
        chosen = [layer if i == lead else min(runs[i].layers, key=lambda name, i=i: (  # type: ignore[misc]
            abs(depths[i][name][0] - target), -depths[i][name][0], -depths[i][name][1])) for i in range(len(runs))]
        groups.append(LayerGroup(tuple(chosen), tuple(depths[i][name][0] for i, name in enumerate(chosen))))
    used = [{group.layers[i] for group in groups} for i in range(len(runs))]
    unpaired = [f"{layer} ({depths[i][layer][0]:.0%}) of {names[i]}" for i, run in enumerate(runs)
                for layer in run.layers if layer not in used[i]]
    return Pairing("depth", groups, unpaired)


def run_depths(run: DissectionResult, name: str) -> dict[str, tuple[float, float]]:
    """Each dissected layer's sort key (relative depth, place in module order), from the record or rebuilt."""
    from unitscope.models.depth import relative_depth

    recorded = {layer.name: dict(layer.depth) for layer in run.record.layers}
    if not all(recorded.get(layer) for layer in run.layers):
        module = _architecture(run, name)
        from unitscope.models.depth import layer_depth

        paths = {layer.name: layer.path for layer in run.record.layers}
        recorded = {layer: layer_depth(module, paths.get(layer, layer)) for layer in run.layers}
        missing = [layer for layer, depth in recorded.items() if not depth]
        if missing:
            raise UsageError(f"{name}'s model {run.record.spec.model.spec} has no layer {missing[0]!r} to measure "
                             "its depth; pair the layers yourself with --pair")
    return {layer: relative_depth(recorded[layer]) for layer in run.layers}


def _architecture(run: DissectionResult, name: str) -> nn.Module:
    """The run's network without weights (a built-in or torchvision name only: nothing from a run folder)."""
    import torch

    from unitscope.models.builtin import BUILTIN_MODELS

    spec = run.record.spec.model
    if spec.spec in BUILTIN_MODELS:
        from unitscope.models.loading import load_model

        return load_model(spec.spec).module
    import torchvision

    if spec.spec not in torchvision.models.list_models(module=torchvision.models):
        raise UsageError(f"{name} was dissected before unitscope recorded layer depths, and its model "
                         f"{spec.spec} is not one it can rebuild; pair the layers yourself with --pair A:B "
                         "(one layer per run), or dissect it again")
    kwargs = {"num_classes": spec.num_classes} if spec.num_classes else {}
    with torch.device("meta"):  # the architecture only: no memory, no initialisation
        net: nn.Module = torchvision.models.get_model(spec.spec, weights=None, **kwargs)
    return net
