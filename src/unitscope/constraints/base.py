"""What every training constraint is: a penalty on the last training forward pass and a step after each update."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unitscope.constraint_spec import ConstraintSpec


class Constraint:
    """A constraint sitting at one layer of a SceneWorldNet (``spec.layer``).

    ``attach`` hooks the layer; during training forward passes (gradients on, the net in train mode) the
    layer's output is kept so ``penalty`` can add the constraint's loss to the task loss; ``after_step``
    runs after each optimiser step (concept whitening's alignment). ``describe`` is what the weights file records.
    """

    citation: str = ""

    def __init__(self, spec: ConstraintSpec) -> None:
        self.spec = spec
        self._output: torch.Tensor | None = None
        self._handle: Any = None

    def attach(self, net: nn.Module) -> None:
        module = net.get_submodule(self.spec.layer)
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            self._output = output

    def penalty(self) -> torch.Tensor | None:
        """The weighted loss on the last training forward pass (None: nothing to add)."""
        output, self._output = self._output, None
        if output is None or self.spec.weight == 0:
            return None
        return self.spec.weight * self.loss(output)

    def loss(self, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, net: nn.Module, step: int) -> None:
        """Called after optimiser step ``step`` (counted from 1)."""

    def describe(self) -> dict[str, object]:
        return {"constraint": self.spec.text(), "name": self.spec.name, "weight": self.spec.weight,
                "layer": self.spec.layer, "citation": self.citation}

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
