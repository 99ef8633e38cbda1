"""The one hooking helper: forward hooks that capture layer outputs, always unhook, and stop the pass early.

:class:`LayerCapture` stops the pass after the deepest layer requested; :class:`LayerRecorder` lets the pass
run to the end (the caller keeps the model's output) and can record the layer's gradient too.

In the style of baukit's ``Trace``/``StopForward``: the forward pass is abandoned (by a private
exception) as soon as every requested layer has produced its output, so layers after the deepest one
requested cost nothing.

Every capture is handed over with its units on axis 1 (:func:`unitscope.layout.read_units`): maps as
``[batch, units, h, w]``, whatever their layout in the model (a channels-last ``[batch, h, w, C]`` map
from a Linear or LayerNorm, as inside ConvNeXt blocks and Swin stages, is permuted), a transformer's
tokens ``[batch, tokens, dim]`` as a ``dim × g × g`` grid (the class token, when ``tokens = 1 + g²``, is
dropped: it belongs to no image position). Each layer's layout comes from a one-image probe of the model
(:func:`unitscope.layout.probe_layers`, cached per model), run by the first ``run``; a layer whose layout
it cannot decide is refused. A module called several times in one forward pass is captured at its last
call (ForwardHook subclasses given an ``example`` act on it alone). Outputs of a forward pass under
autocast (``--amp``) are widened to float32 as they are captured, so statistics never run in reduced
precision.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import torch
from torch import nn

from unitscope.layout import LayerLayout, layer_layout, probe_layers, read_units, require_layout


def spatial_output(output: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``output`` as [B, C, h, w] where it is a token grid or (``channels_last``) a [B, h, w, C] map.

    For callers that know the layout themselves; captures read it from :mod:`unitscope.layout`.
    """
    return read_units(output, "channels_last" if channels_last else "tokens")


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
        self._probed: dict[str, LayerLayout] | None = None  # set by the first run: layouts and calls
        self._probing = threading.Lock()
        # Per thread: what the pass running in it has captured, so threads may run passes at once (the engine's lanes).
        self._pass = threading.local()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

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
            seen: dict[str, int] | None = getattr(self._pass, "seen", None)
            outputs: dict[str, torch.Tensor] | None = getattr(self._pass, "outputs", None)
            if self._probed is None or seen is None or outputs is None:  # the layout probe's pass, or not ours
                return
            layer = self._probed.get(name)
            seen[name] = seen.get(name, 0) + 1
            if layer is not None and seen[name] != layer.calls:
                return  # called again later in this pass: the last call is the layer's output
            if not isinstance(output, torch.Tensor):
                raise RuntimeError(f"layer {name} returns {type(output).__name__}, not a tensor; capture a "
                                   "sub-module that returns one (unitscope layers --model M lists them)")
            # Clone: an in-place ReLU after this module would otherwise rewrite what we captured.
            grid = read_units(output.detach(), layer.layout if layer is not None else "other")
            if grid.dtype in (torch.bfloat16, torch.float16):
                outputs[name] = grid.float()  # autocast's output, widened exactly (a copy)
            else:
                outputs[name] = grid.clone() if self.clone else grid
            if self.stop_after_last and len(outputs) == len(self.layers):
                raise _StopForward

        return hook

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass; returns {layer path: output}. The first also probes the layouts (one image)."""
        if self._probed is None:
            with self._probing:  # one thread probes; the others wait for its layouts
                if self._probed is None:
                    probed = probe_layers(self.module, x)
                    self._probed = {name: require_layout(probed, name) for name in self.layers if name in probed}
        outputs: dict[str, torch.Tensor] = {}
        self._pass.outputs, self._pass.seen = outputs, {}
        try:
            with torch.no_grad(), contextlib.suppress(_StopForward):
                self.module(x)
        finally:
            self._pass.outputs = self._pass.seen = None
        missing = [name for name in self.layers if name not in outputs]
        if missing:
            raise RuntimeError(f"layers {missing} did not run in the forward pass")
        return outputs


class ForwardHook:
    """A forward hook on one module (by path) that is always removed: subclasses define ``_on_forward``.

    Given an ``example`` input (a batch or an input size), the layer's layout and calls per forward pass
    are probed (:func:`unitscope.layout.layer_layout`) and ``_on_forward`` sees only the last call, the one
    :class:`LayerCapture` captures; without one it sees every call.
    """

    def __init__(self, module: nn.Module, path: str, example: torch.Tensor | tuple[int, int] | None = None) -> None:
        modules = dict(module.named_modules())
        if path not in modules:
            raise ValueError(f"no module {path!r} in the model")
        self.root = module
        self.target = modules[path]
        self.path = path
        self.layer: LayerLayout | None = None if example is None else layer_layout(module, path, example)
        self._seen = 0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> Self:
        self._handles = [self.root.register_forward_pre_hook(self._on_pass),
                         self.target.register_forward_hook(self._on_call)]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def read(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (the layer's output or its gradient) with the units on axis 1, as captures hand it over."""
        return tensor if self.layer is None else read_units(tensor, self.layer.layout)

    def _on_pass(self, _module: nn.Module, _inputs: tuple[object, ...]) -> None:
        self._seen = 0

    def _on_call(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> object:
        self._seen += 1
        if self.layer is not None and self._seen != self.layer.calls:
            return None  # called again later in this pass: only the last call is the layer's output
        return self._on_forward(module, inputs, output)

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> object:
        raise NotImplementedError


class LayerRecorder(ForwardHook):
    """Context manager: ``with LayerRecorder(model, "conv5", gradients=True) as rec: out = model(x)``.

    ``rec.activation`` is a detached copy of the layer's output (safe from later in-place operations);
    ``rec.gradient`` is filled by ``backward`` when ``gradients`` is set; both raw (``rec.read`` puts the
    units on axis 1 when an ``example`` was given). A module called several times in one pass (a ReLU
    shared inside a ResNet block) keeps only its last call, for both.
    """

    def __init__(self, module: nn.Module, path: str, gradients: bool = False,
                 example: torch.Tensor | tuple[int, int] | None = None) -> None:
        super().__init__(module, path, example)
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
    probe_layers(module, x)  # before hooking: the capture's layout probe runs the whole model (cached)
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
