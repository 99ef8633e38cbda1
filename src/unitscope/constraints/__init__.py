"""Constraints ``unitscope train --constraint`` adds to the task (issue 27; docs/constraints.md).

One module per constraint: ``whitening`` (concept whitening), ``filters`` (interpretable filters),
``sparsity`` (Hoyer-square). ``build_constraints`` turns parsed specs into attached constraints; the training
loop adds ``penalty()`` of each to its loss and calls ``after_step`` after each optimiser step.
"""

from __future__ import annotations

from torch import nn

from unitscope.constraint_spec import ConstraintSpec, active
from unitscope.constraints.base import Constraint
from unitscope.constraints.filters import Filters
from unitscope.constraints.sparsity import Sparsity
from unitscope.constraints.whitening import Whitening
from unitscope.errors import UsageError

__all__ = ["Constraint", "build_constraints", "whitened_layers"]


def whitened_layers(specs: tuple[ConstraintSpec, ...]) -> tuple[str, ...]:
    """The layers whose BatchNorm the network must build as a ConceptWhitening module."""
    return tuple(spec.layer for spec in specs if spec.name == "whitening")


def build_constraints(specs: tuple[ConstraintSpec, ...], net: nn.Module, seed: int, size: int,
                      progress: bool = True) -> list[Constraint]:
    """Each active spec as a constraint attached to ``net`` (built with ``whitened_layers(specs)``)."""
    built: list[Constraint] = []
    names = {name for name, _ in net.named_modules()}
    for spec in active(specs):
        if spec.layer not in names:
            raise UsageError(f"--constraint {spec.text()}: this network has no layer {spec.layer!r}; constraints "
                             "name the AlexNet-shaped net's layers, so train it with --arch alexnet")
        constraint: Constraint
        if spec.name == "whitening":
            constraint = Whitening(spec, seed, size, progress)
        elif spec.name == "filters":
            constraint = Filters(spec)
        else:
            constraint = Sparsity(spec)
        constraint.attach(net)
        built.append(constraint)
    return built
