"""``--constraint NAME[:WEIGHT][@LAYER]``: what ``unitscope train`` adds to the task loss, read without torch.

Parsing lives here (floor 0) so a typo is one line before torch is imported; the constraints themselves
(``unitscope.constraints``) are built from the parsed specs. Docs: docs/constraints.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from unitscope.errors import UsageError

# The SceneWorldNet layers a constraint may sit at (models/sceneworld_net.PAPER_LAYERS' convolutional blocks
# and, for sparsity, the fully connected ones; tests/test_constraints.py checks they exist).
CONV_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
ACTIVATION_LAYERS: tuple[str, ...] = (*CONV_LAYERS, "pool5", "fc6", "fc7")


@dataclass(frozen=True)
class ConstraintKind:
    """One constraint's defaults and where it may go."""

    default_weight: float
    default_layer: str
    layers: tuple[str, ...]
    what: str


CONSTRAINT_KINDS: dict[str, ConstraintKind] = {
    "none": ConstraintKind(0.0, "", (), "the control: the task loss alone"),
    "whitening": ConstraintKind(1.0, "conv5", CONV_LAYERS,
                                "concept whitening (Chen, Bei & Rudin 2020) in place of the layer's BatchNorm; "
                                "WEIGHT scales the rotation's Cayley step"),
    "filters": ConstraintKind(10.0, "conv5", CONV_LAYERS,
                              "interpretable filters (Zhang, Wu & Zhu 2018): minus the mutual information between "
                              "each filter's map and its part templates"),
    "sparsity": ConstraintKind(3.0, "conv5", ACTIVATION_LAYERS,
                               "Hoyer-square sparsity of the layer's activations (Kurtz et al. 2020; "
                               "Yang, Wen & Li 2020)"),
}


@dataclass(frozen=True)
class ConstraintSpec:
    """One parsed ``--constraint``: name, loss weight and layer (defaults filled in)."""

    name: str
    weight: float
    layer: str

    def text(self) -> str:
        """The canonical spelling, as recorded in the weights file (``filters:1@conv5``)."""
        return "none" if self.name == "none" else f"{self.name}:{self.weight:g}@{self.layer}"


def parse_constraint(text: str) -> ConstraintSpec:
    """``NAME[:WEIGHT][@LAYER]`` → a spec, or one ``UsageError`` saying what is wrong and how to mend it."""
    body, _, layer = text.strip().partition("@")
    name, colon, weight_text = body.partition(":")
    name = name.strip().lower()
    kind = CONSTRAINT_KINDS.get(name)
    if kind is None:
        raise UsageError(f"unknown --constraint {name!r}; use one of {', '.join(CONSTRAINT_KINDS)} "
                         "(NAME[:WEIGHT][@LAYER], e.g. sparsity:0.5@conv5)")
    if name == "none":
        if colon or layer:
            raise UsageError("--constraint none takes no weight or layer; write just `none`")
        return ConstraintSpec("none", 0.0, "")
    weight = kind.default_weight
    if colon:
        try:
            weight = float(weight_text)
        except ValueError:
            raise UsageError(f"--constraint {text!r}: weight {weight_text!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise UsageError(f"--constraint {text!r}: the weight must be a finite number ≥ 0, got {weight_text}")
    layer = layer.strip() or kind.default_layer
    if layer not in kind.layers:
        raise UsageError(f"--constraint {text!r}: unknown layer {layer!r} for {name}; "
                         f"use one of {', '.join(kind.layers)}")
    return ConstraintSpec(name, weight, layer)


def parse_constraints(texts: tuple[str, ...] | list[str]) -> tuple[ConstraintSpec, ...]:
    """Every ``--constraint``; ``none`` stands alone and a name appears at most once per layer."""
    specs = tuple(parse_constraint(text) for text in texts)
    if any(spec.name == "none" for spec in specs) and len(specs) > 1:
        raise UsageError("--constraint none is the control and stands alone; drop it or the other constraints")
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        if (spec.name, spec.layer) in seen:
            raise UsageError(f"--constraint {spec.name} is given twice at {spec.layer}; give it once")
        seen.add((spec.name, spec.layer))
    if sum(spec.name == "whitening" for spec in specs) > 1:
        raise UsageError("--constraint whitening goes at one layer only; give it once")
    return specs


def active(specs: tuple[ConstraintSpec, ...]) -> tuple[ConstraintSpec, ...]:
    """The specs that change training (``none`` does not)."""
    return tuple(spec for spec in specs if spec.name != "none")
