"""The one hooking helper: forward hooks that capture layer outputs, always unhook, and stop the pass early.

:class:`LayerCapture` stops the pass after the deepest layer requested; :class:`LayerRecorder` lets the pass
run to the end (the caller keeps the model's output) and can record the layer's gradient too.

In the style of baukit's ``Trace``/``StopForward``: the forward pass is abandoned (by a private
exception) as soon as every requested layer has produced its output, so layers after the deepest one
requested cost nothing.

Every capture is handed over as ``[batch, units, h, w]`` where it has a spatial meaning
(:func:`spatial_output`): a transformer's tokens ``[batch, tokens, dim]`` become a ``dim × g × g`` grid
(the class token, when ``tokens = 1 + g²``, is dropped: it belongs to no image position), and Swin's
channels-last ``[batch, h, w, dim]`` feature maps are permuted to channels-first. Outputs of a forward
pass under autocast (``--amp``) are widened to float32 as they are captured, so statistics never run in
reduced precision.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import torch
from torch import nn


def channels_last_layers(module: nn.Module) -> set[str]:
    """Module paths whose 4-D outputs are [B, h, w, C]: torchvision Swin's ``features`` and ``norm``."""
    if type(module).__name__ != "SwinTransformer":
        return set()
    return {name for name, _ in module.named_modules() if name.split(".")[0] in ("features", "norm")}


def spatial_output(output: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``output`` as [B, C, h, w] where it is a token sequence or a channels-last map; else unchanged."""
    if output.dim() == 4 and channels_last:
        return output.permute(0, 3, 1, 2)
    if output.dim() == 3:
        tokens = output.shape[1]
        for drop in (1, 0):  # a class token first, or none
            side = math.isqrt(max(tokens - drop, 0))
            if side > 1 and side * side == tokens - drop:
                grid = output[:, drop:, :]
                return grid.transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
    return output


class _StopForward(Exception):
    """Raised inside a hook once all requested layers have fired."""


class LayerCapture:
    """Context manager capturing the outputs of ``layers`` (module paths) during ``run``."""

    def __init__(self, module: nn.Module, layers: Sequence[str], stop_after_last: bool = True,
                 clone: bool = True) -> None:
        modules = dict(module.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing:
            raise ValueError(f"no such module paths: {missing}")
        self.module = module
        self.layers = list(dict.fromkeys(layers))
        self.stop_after_last = stop_after_last
        self.clone = clone
        self._targets = {name: modules[name] for name in self.layers}
        self._channels_last = channels_last_layers(module)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._outputs: dict[str, torch.Tensor] = {}

    def __enter__(self) -> LayerCapture:
        for name, target in self._targets.items():
            self._handles.append(target.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor):
                raise RuntimeError(f"layer {name} returns {type(output).__name__}, not a tensor; capture a "
                                   "sub-module that returns one (unitscope layers --model M lists them)")
            # Clone: an in-place ReLU after this module would otherwise rewrite what we captured.
            grid = spatial_output(output.detach(), name in self._channels_last)
            if grid.dtype in (torch.bfloat16, torch.float16):
                self._outputs[name] = grid.float()  # autocast's output, widened exactly (a copy)
            else:
                self._outputs[name] = grid.clone() if self.clone else grid
            if self.stop_after_last and len(self._outputs) == len(self.layers):
                raise _StopForward

        return hook

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass; returns {layer path: output}."""
        self._outputs = {}
        with torch.no_grad(), contextlib.suppress(_StopForward):
            self.module(x)
        missing = [name for name in self.layers if name not in self._outputs]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in the forward pass")
        outputs, self._outputs = self._outputs, {}
        return outputs


class ForwardHook:
    """A forward hook on one module (by path) that is always removed: subclasses define ``_on_forward``."""

    def __init__(self, module: nn.Module, path: str) -> None:
        modules = dict(module.named_modules())
        if path not in modules:
            raise ValueError(f"no module {path!r} in the model")
        self.target = modules[path]
        self.path = path
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> Self:
        self._handle = self.target.register_forward_hook(self._on_forward)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> object:
        raise NotImplementedError


class LayerRecorder(ForwardHook):
    """Context manager: ``with LayerRecorder(model, "conv5", gradients=True) as rec: out = model(x)``.

    ``rec.activation`` is a detached copy of the layer's output (safe from later in-place operations);
    ``rec.gradient`` is filled by ``backward`` when ``gradients`` is set. A module called several times
    in one pass (a ReLU shared inside a ResNet block) keeps only its last call, for both.
    """

    def __init__(self, module: nn.Module, path: str, gradients: bool = False) -> None:
        super().__init__(module, path)
        self.gradients = gradients
        self.activation: torch.Tensor | None = None
        self.gradient: torch.Tensor | None = None
        self._tensor_handle: torch.utils.hooks.RemovableHandle | None = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if self._tensor_handle is not None:
            self._tensor_handle.remove()
        self._tensor_handle = None

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer {self.path} returns {type(output).__name__}, not a tensor; choose another layer")
        self.activation = output.detach().clone()
        self.gradient = None
        if self._tensor_handle is not None:
            self._tensor_handle.remove()
            self._tensor_handle = None
        if self.gradients and output.requires_grad:
            self._tensor_handle = output.register_hook(self._on_gradient)  # type: ignore[no-untyped-call]

    def _on_gradient(self, grad: torch.Tensor) -> None:
        self.gradient = grad.detach().clone()


def modules_entered(module: nn.Module, layers: Sequence[str], x: torch.Tensor) -> list[str]:
    """Paths of every sub-module whose forward starts before the last of ``layers`` has produced its output.

    Only these (their own parameters, buffers and settings) can shape the layers' outputs: what runs
    after the deepest layer cannot. Found with one stopped forward pass on ``x``; hooks always removed.
    """
    entered: list[str] = []
    handles = [sub.register_forward_pre_hook(lambda _m, _i, path=path: entered.append(path))
               for path, sub in module.named_modules()]
    try:
        with LayerCapture(module, layers, stop_after_last=True) as capture:
            capture.run(x)
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(entered))
