"""Theoretical receptive fields of every layer: size, stride (jump) and the centre of position (0, 0).

Coordinates are input pixel indices, pixel k centred at k. Per axis, a layer with kernel ``k``, stride
``s``, dilation ``d`` and leading padding ``p`` maps the field of its input (size ``r``, jump ``j``,
start ``c``) to ``r + d(k-1)j``, ``js`` and ``c + (d(k-1)/2 - p)j``. ``ceil_mode`` and trailing padding
change only how many positions there are, not where they sit. Element-wise layers pass the field through;
where branches merge (residual add, concatenation, gating) the largest field counts. Adaptive pooling is
exact when the input side is a multiple of the output side (or the output is 1, a global pool) and
approximated by its widest window otherwise. Sizes are not clipped to the image: a ResNet-18's
``layer4`` reports 435 at 224 px, as in the literature.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from unitscope.errors import UsageError
from unitscope.receptive.graph import TracedModel, trace_model

LOG = logging.getLogger(__name__)

_POOL_FUNCTIONS: frozenset[str] = frozenset({"max_pool2d", "_max_pool2d", "max_pool2d_with_indices", "avg_pool2d"})
_ADAPTIVE_FUNCTIONS: frozenset[str] = frozenset(
    {"adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"}
)


@dataclass(frozen=True)
class AxisField:
    """The field along one axis: size and jump in input pixels, centre of position 0."""

    size: int
    stride: int
    start: float

    def through(self, kernel: int, stride: int, pad: int, dilation: int = 1) -> AxisField:
        """The field after a window layer (convolution or pooling) along this axis."""
        extent = dilation * (kernel - 1)
        return AxisField(self.size + extent * self.stride, self.stride * stride,
                         self.start + (extent / 2 - pad) * self.stride)


@dataclass(frozen=True)
class FieldGeometry:
    """A layer's theoretical receptive field; ``*_x`` differ from the row values only for non-square ones.

    ``map_size`` is the layer's (height, width) at the input size it was computed for.
    """

    size: int
    stride: int
    start: float
    size_x: int | None = None
    stride_x: int | None = None
    start_x: float | None = None
    map_size: tuple[int, int] | None = None

    @classmethod
    def from_axes(cls, rows: AxisField, cols: AxisField, map_size: tuple[int, int] | None) -> FieldGeometry:
        square = rows == cols
        return cls(rows.size, rows.stride, rows.start,
                   None if square else cols.size, None if square else cols.stride,
                   None if square else cols.start, map_size)

    def axis(self, dim: int) -> AxisField:
        """The field along rows (0) or columns (1)."""
        if dim == 0:
            return AxisField(self.size, self.stride, self.start)
        return AxisField(
            self.size if self.size_x is None else self.size_x,
            self.stride if self.stride_x is None else self.stride_x,
            self.start if self.start_x is None else self.start_x,
        )

    def centre(self, y: Any, x: Any) -> tuple[Any, Any]:
        """Input pixel (row, column) at the centre of the field of position (y, x); numbers or tensors."""
        rows, cols = self.axis(0), self.axis(1)
        return rows.start + rows.stride * y, cols.start + cols.stride * x

    def to_dict(self) -> dict[str, Any]:
        """``{"size", "stride", "start"}`` plus the column values when the field is not square."""
        out: dict[str, Any] = {"size": self.size, "stride": self.stride, "start": self.start}
        if self.size_x is not None:
            out.update(size_x=self.size_x, stride_x=self.stride_x, start_x=self.start_x)
        return out


Geometry = tuple[AxisField, AxisField]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, Sequence):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _conv_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """Leading padding per axis, resolving ``'same'`` (torch pads the extra pixel at the end) and ``'valid'``."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))  # type: ignore[return-value]
    return _pair(padding)


def window_parameters(module: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) pairs of a convolution or pooling module, else None."""
    if isinstance(module, nn.Conv2d):
        kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
        return kernel, _pair(module.stride), _conv_padding(module.padding, kernel, dilation), dilation
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride) if module.stride else kernel
        dilation = _pair(getattr(module, "dilation", 1))
        return kernel, stride, _pair(module.padding), dilation
    return None


def _function_window(node: fx.Node, values: dict[fx.Node, Any]) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) of a functional conv2d / max_pool2d / avg_pool2d call."""
    name = getattr(node.target, "__name__", "")
    if name == "conv2d":
        names: tuple[str, ...] = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        defaults: dict[str, Any] = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    elif name in _POOL_FUNCTIONS:
        names = ("input", "kernel_size", "stride", "padding", "dilation" if "max" in name else "ceil_mode")
        defaults = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}
    else:
        return None
    bound = {**defaults, **dict(zip(names, node.args, strict=False)), **node.kwargs}
    bound = {k: values.get(v, v) if isinstance(v, fx.Node) else v for k, v in bound.items()}
    kernel = tuple(bound["weight"].shape[-2:]) if name == "conv2d" else _pair(bound["kernel_size"])
    dilation = _pair(bound.get("dilation", 1))
    stride = _pair(bound["stride"]) if bound["stride"] else kernel
    return kernel, stride, _conv_padding(bound["padding"], kernel, dilation), dilation


def _adaptive(field: Geometry, in_size: Sequence[int], out_size: Sequence[int]) -> Geometry:
    """An adaptive pool as a window layer: exact for divisible sides, widest window otherwise."""
    axes = []
    for axis, n_in, n_out in zip(field, in_size, out_size, strict=True):
        if n_in % n_out == 0:
            k = n_in // n_out
            axes.append(axis.through(k, k, 0))
        else:
            widest = max(math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out))
            axes.append(axis.through(widest, max(1, n_in // n_out), 0))
    return axes[0], axes[1]


def _node_inputs(node: fx.Node) -> Iterator[fx.Node]:
    """Every node among a node's arguments (nested in lists, tuples and dicts too)."""
    seen: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), seen.append)
    yield from seen


Layout = tuple[int, int]  # the dimensions of a 4-D value that are its rows and columns
CHANNELS_FIRST: Layout = (2, 3)
MIXED_POSITIONS = ("positions are mixed here (attention over tokens or windows, or a shift of the map): a "
                   "theoretical receptive field is not defined from this layer on")
MOVES_POSITIONS: frozenset[str] = frozenset(
    {"roll", "scaled_dot_product_attention", "multi_head_attention_forward", "shifted_window_attention"}
)


def name_of(node: fx.Node) -> str:
    """A short name for what a node does (its function, method or module path)."""
    return str(getattr(node.target, "__name__", node.target))


def _spatial(shape: Sequence[int], layout: Layout) -> tuple[int, int]:
    return int(shape[layout[0]]), int(shape[layout[1]])


def _merge(node: fx.Node, out_shape: Sequence[int], layout: Layout, fields: dict[fx.Node, Geometry | None],
           layouts: dict[fx.Node, Layout], traced: TracedModel) -> Geometry | None:
    """Element-wise and merging nodes: the largest field among same-size inputs (broadcast ones widen it)."""
    out_hw = _spatial(out_shape, layout)
    same: list[Geometry] = []
    widest = [0, 0]
    for parent in _node_inputs(node):
        field = fields.get(parent)
        shape = traced.shape(parent)
        if field is None or shape is None or len(shape) != 4:
            continue
        if layouts.get(parent, CHANNELS_FIRST) != layout:
            raise _Unsupported(f"{node.format_node()} combines channels-first and channels-last maps")
        hw = _spatial(shape, layout)
        if hw == out_hw and _spatial(out_shape, layout) == hw and len(out_shape) == 4:
            same.append(field)
        elif hw != (1, 1):
            raise _Unsupported(f"{node.format_node()} changes the spatial size from {hw} to {out_hw}")
        widest = [max(widest[d], field[d].size) for d in range(2)]
    if not same:
        return None
    merged = []
    for d in range(2):
        best = max((f[d] for f in same), key=lambda a: a.size)
        merged.append(AxisField(max(best.size, widest[d]), best.stride, best.start))
    return merged[0], merged[1]


class _Unsupported(Exception):
    """A node whose effect on the receptive field is unknown."""


def _permutation(node: fx.Node) -> tuple[int, ...] | None:
    """The dims of a ``permute`` call (function, method or torchvision's Permute module), else None."""
    if (node.op == "call_function" and getattr(node.target, "__name__", "") == "permute") or \
            (node.op == "call_method" and node.target == "permute"):
        dims = node.args[1:] if len(node.args) > 2 else node.args[1] if len(node.args) > 1 else node.kwargs["dims"]
        return tuple(int(d) for d in dims)  # type: ignore[union-attr, arg-type]
    return None


def _node_field(node: fx.Node, fields: dict[fx.Node, Geometry | None], layouts: dict[fx.Node, Layout],
                traced: TracedModel) -> tuple[Geometry | None, Layout]:
    """The field of one node's output, from its parents', and which of its dimensions are rows and columns.

    Channels-last maps (ConvNeXt's and Swin's blocks) are followed through ``permute``: point-wise layers
    on them (LayerNorm, Linear over channels) keep the field; windows need channels-first maps.
    """
    shape = traced.shape(node)
    if node is traced.input_node:
        unit = AxisField(1, 1, 0.0)
        return (unit, unit), CHANNELS_FIRST
    parents = [p for p in _node_inputs(node) if fields.get(p) is not None]
    name = name_of(node)
    if parents and name in MOVES_POSITIONS:
        raise _Unsupported(f"{name} at node {node.name}: {MIXED_POSITIONS}")
    if shape is None or len(shape) != 4:
        return None, CHANNELS_FIRST
    layout = layouts.get(parents[0], CHANNELS_FIRST) if parents else CHANNELS_FIRST
    source = fields.get(parents[0]) if parents else None
    dims = _permutation(node)
    if dims is not None and source is not None:
        return source, (dims.index(layout[0]), dims.index(layout[1]))
    window = None
    if node.op == "call_module":
        module = traced.graph_module.get_submodule(str(node.target))
        window = window_parameters(module)
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and source is not None:
            window = window or ()
    elif node.op == "call_function":
        window = _function_window(node, traced.values)
        if name in _ADAPTIVE_FUNCTIONS and source is not None:
            window = window or ()
    if window is not None and source is not None:
        if layout != CHANNELS_FIRST:
            raise _Unsupported(f"{node.format_node()} slides a window over a channels-last map")
        if window == ():
            return _adaptive(source, traced.shape(parents[0])[-2:], shape[-2:]), layout  # type: ignore[index]
        kernel, stride, pad, dilation = window
        return tuple(source[d].through(kernel[d], stride[d], pad[d], dilation[d]) for d in range(2)), layout  # type: ignore[return-value]
    return _merge(node, shape, layout, fields, layouts, traced), layout


def node_fields(traced: TracedModel) -> tuple[dict[fx.Node, Geometry | None], dict[fx.Node, str]]:
    """Field of every node (None: no spatial extent), and the nodes whose field is unknown, with why."""
    fields, _, problems = _fields_layouts(traced)
    return fields, problems


def _fields_layouts(
    traced: TracedModel,
) -> tuple[dict[fx.Node, Geometry | None], dict[fx.Node, Layout], dict[fx.Node, str]]:
    """Field and layout of every node, and the nodes whose field is unknown, with why.

    Known position-mixing calls (Swin's window attention, ``roll``, scaled-dot-product attention) make
    the field unknown from there on. A map flattened to tokens, attended by an ``nn.MultiheadAttention``
    and reshaped back is not detected: that branch carries no field, and a merge takes the others'.
    """
    fields: dict[fx.Node, Geometry | None] = {}
    layouts: dict[fx.Node, Layout] = {}
    problems: dict[fx.Node, str] = {}
    for node in traced.graph_module.graph.nodes:
        parents = list(_node_inputs(node))
        if any(parent in problems for parent in parents):
            problems[node] = next(problems[p] for p in parents if p in problems)
            fields[node] = None
            continue
        try:
            fields[node], layouts[node] = _node_field(node, fields, layouts, traced)
        except _Unsupported as err:
            problems[node] = str(err)
            fields[node] = None
            continue
    return fields, layouts, problems


def fields_of_traced(traced: TracedModel) -> tuple[dict[str, FieldGeometry], dict[str, str]]:
    """Per module path: its field (spatial layers only), and the layers skipped because a field is unknown."""
    fields, layouts, problems = _fields_layouts(traced)
    out: dict[str, FieldGeometry] = {}
    skipped: dict[str, str] = {}
    for path, node in traced.outputs.items():
        if node in problems:
            skipped[path] = problems[node]
            continue
        field = fields.get(node)
        if field is not None:
            shape = traced.shape(node)
            out[path] = FieldGeometry.from_axes(field[0], field[1], _spatial(shape, layouts.get(node, CHANNELS_FIRST)))  # type: ignore[arg-type]
    if skipped:
        LOG.info("receptive fields unknown for %d layers (first: %s)", len(skipped), next(iter(skipped.values())))
    return out, skipped


def theoretical_fields(module: nn.Module, input_size: tuple[int, int]) -> dict[str, FieldGeometry]:
    """The theoretical receptive field of every module with a spatial output, keyed by module path.

    Non-spatial modules (classifier layers) are absent. Costs one fx trace and one pass on meta tensors.
    """
    return fields_and_gaps(module, input_size)[0]


def fields_and_gaps(module: nn.Module, input_size: tuple[int, int]) -> tuple[dict[str, FieldGeometry], dict[str, str]]:
    """:func:`theoretical_fields`, and the spatial layers whose field is not defined, with why."""
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise UsageError(f"input size must be two positive integers (height, width), got {input_size!r}")
    with torch.no_grad():
        traced = trace_model(module, size)
    return fields_of_traced(traced)


def missing_field_reason(module: nn.Module, path: str, gaps: dict[str, str]) -> str:
    """Why layer ``path`` has no theoretical field, in words a user can act on."""
    if path in gaps:
        return f"layer {path} has no theoretical receptive field ({gaps[path].split(': ', 1)[-1]})"
    attention = any(isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__
                    for m in module.modules())
    if attention:
        return (f"layer {path} is a sequence of tokens after attention, which lets every patch see every other: "
                "a theoretical receptive field is not defined (it can span the whole image); pick a layer "
                "before the first attention block for a theoretical field")
    return f"layer {path} has no spatial extent (no receptive field); pick a conv or pool layer"


def alignment_geometry(module: nn.Module, input_size: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """(stride, start) of each module's theoretical receptive field, for RF-aligned upsampling."""
    fields = theoretical_fields(module, input_size)
    return {path: (float(f.stride), float(f.start)) for path, f in fields.items()}
