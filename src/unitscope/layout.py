"""Which axis of each layer's output holds its units, decided from one forward pass, never from names.

A Conv2d's output is ``[B, C, h, w]``; a Linear or LayerNorm applied to a 4-D map (ConvNeXt's block
internals, every Swin stage) returns ``[B, h, w, C]``; a transformer's tokens are ``[B, N, D]``. Read along
the wrong axis, a layer "has" image rows for units. :func:`probe_layers` runs the model once on one image
and follows the unit axis of every tensor:

- through every torch operation (a ``TorchFunctionMode``): convolutions and batch/group/instance norms put
  it at axis 1, ``linear`` and ``layer_norm`` at the last axis, permutes and transposes move it, reshapes
  keep it where the sizes before it are unchanged, anything else (activations, sums, pooling,
  concatenation, slicing, padding) keeps the axis of its first tracked input of the same rank;
- and at every module: a module with its own channel count (``out_channels``, ``out_features``,
  ``num_features``, ``num_channels``, a LayerNorm's one-dimensional ``normalized_shape``) is read where its
  output's dim 1 or its last dim equals that count; when both do, what the operations said decides, else
  the layout of the tensor it was given. A module without a count (ReLU, Dropout, Permute, a block)
  keeps what its operations said, else passes on its input's layout when it returns that shape.

A 4-D or 3-D output whose unit axis stays undecided is ``unknown``: capturing it is refused (one
:class:`~unitscope.errors.UsageError` naming the layer), never guessed. The probe also counts each
module's calls in one forward pass: a module called twice (a ResNet block's shared ``relu``) is captured,
explained and ablated at its last call, the one that hands the block's output on. Results are cached per
model (its module tree), input shape and dtype, so every capture of a model pays for one probe.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from unitscope.errors import UsageError

Layout = Literal["channels_first", "channels_last", "tokens", "vector", "other", "unknown"]
UNIT_AXIS: dict[str, int] = {"channels_first": 1, "channels_last": 3, "tokens": 2, "vector": 1}

_FIRST_AXIS_OPS = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                             "conv_transpose3d", "batch_norm", "instance_norm", "group_norm"})
_LAST_AXIS_OPS = frozenset({"linear", "layer_norm", "rms_norm"})
_MOVE_OPS = frozenset({"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t"})
_RESHAPE_OPS = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as",
                          "reshape_as"})


@dataclass(frozen=True)
class LayerLayout:
    """One module as the probe saw it: type, layout and raw output shape (no batch) at its last call."""

    path: str
    kind: str
    layout: Layout
    shape: tuple[int, ...]
    calls: int  # calls in one forward pass; the last one is captured

    @property
    def unit_axis(self) -> int | None:
        """Axis of the raw output ``[B, …]`` that holds the units (None: not a map or a vector)."""
        return UNIT_AXIS.get(self.layout)

    @property
    def units(self) -> int | None:
        axis = self.unit_axis
        return None if axis is None else self.shape[axis - 1]

    @property
    def read_shape(self) -> tuple[int, ...]:
        """The output shape (no batch) as unitscope reads it: ``(units, h, w)`` for every map."""
        return tuple(read_units(torch.empty((1, *self.shape), device="meta"), self.layout).shape[1:])


def token_side(tokens: int) -> tuple[int, int] | None:
    """``(class tokens dropped, grid side)`` when ``tokens`` is a square grid with or without a class token."""
    for drop in (1, 0):  # a class token first, or none
        side = math.isqrt(max(tokens - drop, 0))
        if side > 1 and side * side == tokens - drop:
            return drop, side
    return None


def read_units(output: torch.Tensor, layout: str) -> torch.Tensor:
    """``output`` with its units on axis 1: maps and token grids as ``[B, units, h, w]``; others unchanged."""
    if layout == "channels_last" and output.dim() == 4:
        return output.permute(0, 3, 1, 2)
    if layout == "tokens" and output.dim() == 3:
        grid = token_side(output.shape[1])
        if grid is not None:
            drop, side = grid
            return output[:, drop:, :].transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
    return output


def unknown_layout_error(path: str, shape: tuple[int, ...]) -> UsageError:
    return UsageError(f"cannot tell which axis of layer {path}'s output {list(shape)} holds its units (nothing "
                      "in the model fixes its layout); pick a neighbouring layer, e.g. the convolution, linear "
                      "or norm next to it (unitscope layers --model M shows each layer's units)")


def require_layout(layers: dict[str, LayerLayout], path: str) -> LayerLayout:
    """The probe's record of ``path``; a layer whose unit axis is undecided is one UsageError."""
    layer = layers.get(path)
    if layer is None:
        reason = ("the model's forward pass failed before it (run the model on its own input size)"
                  if FAILED_RECORD in layers else "it does not return a tensor in the model's forward pass")
        raise UsageError(f"layer {path} cannot be read: {reason}; pick another layer "
                         "(unitscope layers --model M lists them)")
    if layer.layout == "unknown":
        raise unknown_layout_error(path, layer.shape)
    return layer


def layer_layout(module: nn.Module, path: str, example: torch.Tensor | tuple[int, int]) -> LayerLayout:
    """:func:`probe_layers` for one layer, refused when its layout is undecided."""
    return require_layout(probe_layers(module, example), path)


FAILED_RECORD = "\0failed"  # a record, never a module path: the probe's forward pass raised after the layers it holds
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], dict[str, LayerLayout]]] = \
    weakref.WeakKeyDictionary()  # the one cache: a probe per model, module tree, input shape and dtype


def probe_layers(module: nn.Module, example: torch.Tensor | tuple[int, int]) -> dict[str, LayerLayout]:
    """Every module (root included as ``""``) that returns a tensor, in the order they first finish.

    ``example``: a batch whose first image is run (what the caller is about to run), or an input size
    (a zero image on the model's device). Eval mode for the pass; each module's mode is restored.
    """
    x = _example(module, example)
    tree = tuple((name, id(sub)) for name, sub in module.named_modules())
    key = (tuple(x.shape), x.dtype, x.device, tree)
    known = _CACHE.setdefault(module, {})
    if key not in known:
        known.clear()  # one entry per model: a changed tree or input replaces the old probe
        known[key] = _probe(module, x)
    return known[key]


def _example(module: nn.Module, example: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    if isinstance(example, torch.Tensor):
        return example[:1].detach()
    first = next((t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()), None)
    if first is None:
        return torch.zeros(1, 3, int(example[0]), int(example[1]))
    return torch.zeros(1, 3, int(example[0]), int(example[1]), device=first.device, dtype=first.dtype)


def _probe(module: nn.Module, x: torch.Tensor) -> dict[str, LayerLayout]:
    tracker = _AxisTracker()
    if x.dim() >= 3:
        tracker.set_axis(x, 1)  # images are [B, C, H, W]
    records: dict[str, LayerLayout] = {}
    calls: dict[str, int] = {}
    handles = [sub.register_forward_hook(_module_hook(tracker, path, sub, records, calls))
               for path, sub in module.named_modules()]
    modes = {sub: sub.training for sub in module.modules()}
    try:
        module.eval()
        with torch.no_grad(), tracker:
            module(x)
    except Exception:  # not swallowed: the probe records the layers reached, and the caller's own pass
        # re-raises any error standing before a layer it asks for. A capture stops after its deepest layer, so
        # a net may fail past it at a size its head was not made for (a 48 px image into fc6): that is no error.
        records.setdefault(FAILED_RECORD, LayerLayout(FAILED_RECORD, "", "other", (), 0))
    finally:
        for handle in handles:
            handle.remove()
        for sub, mode in modes.items():
            sub.training = mode
    return records


def _module_hook(tracker: _AxisTracker, path: str, sub: nn.Module, records: dict[str, LayerLayout],
                 calls: dict[str, int]) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
    def hook(_m: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        calls[path] = calls.get(path, 0) + 1
        if not isinstance(output, torch.Tensor):
            return
        axis = _module_axis(tracker, sub, inputs, output)
        if output.dim() >= 3 and axis is not None:
            tracker.set_axis(output, axis)
        records[path] = LayerLayout(path, type(sub).__name__, _layout(output, axis), tuple(output.shape[1:]),
                                    calls[path])

    return hook


def _layout(output: torch.Tensor, axis: int | None) -> Layout:
    rank = output.dim()
    if rank == 2:
        return "vector"
    if rank not in (3, 4):
        return "other"
    if axis is None:
        return "unknown"
    if rank == 4:
        return "channels_first" if axis == 1 else "channels_last" if axis == 3 else "unknown"
    return "tokens" if axis == 2 and token_side(output.shape[1]) is not None else "other"


def own_channels(sub: nn.Module) -> int | None:
    """The channel count a module fixes itself: its outputs have exactly this many units."""
    for name in ("out_channels", "out_features", "num_features", "num_channels"):
        value = getattr(sub, name, None)
        if isinstance(value, int):
            return value
    shape = getattr(sub, "normalized_shape", None)
    if isinstance(shape, tuple | list) and len(shape) == 1 and isinstance(shape[0], int):
        return int(shape[0])
    return None


def _module_axis(tracker: _AxisTracker, sub: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int | None:
    """The unit axis of a module's output: its own channel count, then its operations, then its input."""
    rank = output.dim()
    if rank < 3:
        return None
    tracked = tracker.axis_of(output)
    given = next((t for t in _tensors(inputs) if t.dim() == rank and tracker.axis_of(t) is not None), None)
    inherited = None if given is None else tracker.axis_of(given)
    count = own_channels(sub)
    if count is not None:
        matching = [axis for axis in (1, rank - 1) if output.shape[axis] == count]
        if len(matching) == 1:
            return matching[0]
        if matching:  # both dims hold the count: the operations, else the input, decide
            return tracked if tracked in matching else inherited if inherited in matching else None
    if tracked is not None:
        return tracked
    if given is not None and given.shape == output.shape:
        return inherited
    return None


def _tensors(values: Iterable[Any]) -> Iterator[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, list | tuple):
            yield from (v for v in value if isinstance(v, torch.Tensor))


Span = tuple[int, ...]  # the consecutive axes that hold the units (two while a channel shuffle splits them)


class _AxisTracker(TorchFunctionMode):
    """Follows the unit axis of every tensor through the torch operations of one forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self._spans = WeakIdKeyDictionary()  # tensor (by identity, held weakly) -> its unit axes

    def span_of(self, tensor: torch.Tensor) -> Span | None:
        span = self._spans.get(tensor)  # type: ignore[no-untyped-call]
        return span if isinstance(span, tuple) else None

    def axis_of(self, tensor: torch.Tensor) -> int | None:
        span = self.span_of(tensor)
        return span[0] if span is not None and len(span) == 1 else None

    def set_axis(self, tensor: torch.Tensor, axis: int) -> None:
        self._spans[tensor] = (axis,)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        outputs = [result] if isinstance(result, torch.Tensor) else list(_tensors(result)) \
            if isinstance(result, list | tuple) else []
        for output in outputs:
            if output.dim() >= 3:
                span = self._span(getattr(func, "__name__", ""), func, args, kwargs, output)
                if span is not None:
                    self._spans[output] = span
        return result

    def _span(self, name: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              output: torch.Tensor) -> Span | None:
        rank = output.dim()
        if name in _FIRST_AXIS_OPS:
            return (1,)
        if name in _LAST_AXIS_OPS:
            shape = args[1] if len(args) > 1 else kwargs.get("normalized_shape")
            if name == "linear" or (isinstance(shape, tuple | list | torch.Size) and len(shape) == 1):
                return (rank - 1,)
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        span = None if source is None else self.span_of(source)
        if name in _MOVE_OPS and source is not None:
            return None if span is None else _moved(func, args, kwargs, source.dim(), span)
        if name in _RESHAPE_OPS and source is not None:
            return None if span is None else _reshaped(tuple(source.shape), span, tuple(output.shape))
        given = next((t for t in _tensors((*args, *kwargs.values()))
                      if t.dim() == rank and self.span_of(t) is not None), None)
        return None if given is None else self.span_of(given)


def _moved(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], rank: int, span: Span) -> Span | None:
    """Where a permute-like operation puts ``span``: run it on a meta tensor whose sizes name the axes."""
    sizes = tuple(range(2, rank + 2))
    moved = func(torch.empty(sizes, device="meta"), *args[1:], **kwargs)  # the mode is off inside its handler
    if not isinstance(moved, torch.Tensor):
        return None
    axes = sorted(list(moved.shape).index(sizes[axis]) for axis in span)
    return tuple(axes) if axes == list(range(axes[0], axes[0] + len(axes))) else None


def _reshaped(before: tuple[int, ...], span: Span, after: tuple[int, ...]) -> Span | None:
    """The axes of ``after`` that hold ``span`` of ``before``: the same product of sizes before them and
    of their own sizes (a split ``C → (g, C/g)`` or its merge keeps the units; anything else loses them)."""
    prefix, size = math.prod(before[:span[0]]), math.prod(before[span[0]:span[-1] + 1])
    for first in reversed(range(len(after))):  # the last fit: a batch of 1 is not part of the units
        if math.prod(after[:first]) != prefix:
            continue
        for stop in range(first + 1, len(after) + 1):
            if math.prod(after[first:stop]) == size:
                return tuple(range(first, stop))
            if math.prod(after[first:stop]) > size:
                break
    return None
