"""Editing a layer's units in the forward pass, for several ablation conditions at once.

A condition is a boolean mask over the layer's units (True = replaced) and the values that replace them
(zero, or each unit's mean activation). Layers below the hooked one run once per batch; the hooked output
is expanded to ``conditions × batch`` (condition-major) and everything above it sees all the conditions as
one larger batch. That is exact for any network whose later layers treat batch items independently (eval
mode); a network that mixes the hooked tensor with an earlier one (a skip connection around the layer)
cannot be expanded, and :func:`~unitscope.ablation.measure.measure_conditions` then falls back to one pass
per condition.

Units are edited along the layer's unit axis (probed: channels first or last, a transformer's token
dimension) at the module's last call in the forward pass, the call that dissect captures and cam explains.
"""

from __future__ import annotations

import torch
from torch import nn

from unitscope.capture import ForwardHook


class UnitEdit(ForwardHook):
    """``with UnitEdit(model, path, masks, values) as edit: logits = model(x)`` → ``[C·B, K]`` logits.

    ``masks`` is ``[C, U]`` bool, ``values`` ``[U]`` (the replacement of each unit, broadcast over space);
    ``example``: the batch about to run (or the input size), from which the layer's layout is probed.
    """

    def __init__(self, module: nn.Module, path: str, masks: torch.Tensor, values: torch.Tensor,
                 example: torch.Tensor | tuple[int, int]) -> None:
        super().__init__(module, path, example)
        if masks.dim() != 2 or values.dim() != 1 or masks.shape[1] != values.shape[0]:
            raise ValueError(f"masks must be [conditions, units] and values [units]; got {tuple(masks.shape)} "
                             f"and {tuple(values.shape)}")
        self.masks = masks
        self.values = values

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> torch.Tensor:
        axis = None if self.layer is None else self.layer.unit_axis
        if not isinstance(output, torch.Tensor) or axis is None or output.dim() <= axis:
            raise TypeError(f"layer {self.path} does not return a [batch, units, …] tensor; choose another layer")
        if output.shape[axis] != self.masks.shape[1]:
            raise ValueError(f"layer {self.path} has {output.shape[axis]} units, the masks {self.masks.shape[1]}")
        shape = [1] * (output.dim() + 1)  # [conditions, batch, …] with the units on their own axis
        shape[1 + axis] = -1
        masks = self.masks.to(output.device).view(self.masks.shape[0], *shape[1:])
        values = self.values.to(device=output.device, dtype=output.dtype).view(shape)
        edited = torch.where(masks, values, output.unsqueeze(0))  # [C, B, U, …]
        return edited.reshape(-1, *output.shape[1:])
