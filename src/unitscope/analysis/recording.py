"""Recording one layer's output, and optionally its gradient, during an ordinary forward pass.

Unlike :class:`unitscope.capture.LayerCapture`, the forward pass runs to the end (the caller keeps the
model's output: scene scores for ``segment``, the class score to differentiate for Grad-CAM), so one pass
gives both the layer and the prediction. Hooks are always removed on exit.
"""

from __future__ import annotations

from types import TracebackType

import torch
from torch import nn


class LayerRecorder:
    """Context manager: ``with LayerRecorder(model, "conv5", gradients=True) as rec: out = model(x)``.

    ``rec.activation`` is a detached copy of the layer's output (safe from later in-place operations);
    ``rec.gradient`` is filled by ``backward`` when ``gradients`` is set. A module called several times
    in one pass (a ReLU shared inside a ResNet block) keeps only its last call, for both.
    """

    def __init__(self, module: nn.Module, path: str, gradients: bool = False) -> None:
        modules = dict(module.named_modules())
        if path not in modules:
            raise ValueError(f"no module {path!r} in the model")
        self.target = modules[path]
        self.path = path
        self.gradients = gradients
        self.activation: torch.Tensor | None = None
        self.gradient: torch.Tensor | None = None
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._tensor_handle: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> LayerRecorder:
        self._handle = self.target.register_forward_hook(self._on_forward)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in (self._handle, self._tensor_handle):
            if handle is not None:
                handle.remove()
        self._handle = self._tensor_handle = None

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer {self.path} returns {type(output).__name__}, not a tensor; choose another layer")
        self.activation = output.detach().clone()
        self.gradient = None
        if self._tensor_handle is not None:
            self._tensor_handle.remove()
            self._tensor_handle = None
        if self.gradients and output.requires_grad:
            self._tensor_handle = output.register_hook(self._on_gradient)

    def _on_gradient(self, grad: torch.Tensor) -> None:
        self.gradient = grad.detach().clone()
