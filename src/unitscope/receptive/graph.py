"""A model's dataflow graph with every tensor's shape, found without running the real network.

``torch.fx`` symbolic tracing gives the graph (branches and merges included); a pass over it with
tensors on the ``meta`` device (parameters swapped for meta tensors of the same shape) gives every
node's shape for the cost of a few Python calls, whatever the network's size. Receptive fields
(``theory``) and the occlusion engine (``unitscope.perturb``) both read this graph.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from unitscope.errors import UsageError

LOG = logging.getLogger(__name__)
_BROADCASTING: frozenset[Any] = frozenset({operator.add, operator.iadd, operator.mul, operator.imul, torch.add,
                                           torch.mul})


@dataclass(frozen=True)
class TracedModel:
    """The fx graph of a module, each node's meta value, and the node holding each module's output."""

    graph_module: fx.GraphModule
    values: dict[fx.Node, Any]
    outputs: dict[str, fx.Node]
    input_node: fx.Node

    def node_for(self, path: str) -> fx.Node:
        """The node whose value is what a forward hook on module ``path`` would see (its last call)."""
        if path not in self.outputs:
            raise UsageError(f"module {path!r} does not run in the model's forward pass; pick another layer")
        return self.outputs[path]

    def shape(self, node: fx.Node) -> tuple[int, ...] | None:
        """The tensor shape of a node's value, or None when it is not a tensor."""
        value = self.values.get(node)
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None


class _MetaInterpreter(fx.Interpreter):
    """Runs a traced graph on meta tensors; modules see meta copies of their parameters and buffers."""

    def call_module(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # type: ignore[override]
        submodule = self.fetch_attr(target)
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
            shaped = _output_shape(submodule, args[0])
            if shaped is not None:
                return torch.empty(shaped, device="meta", dtype=args[0].dtype)
        state = {
            name: torch.empty_like(t, device="meta")
            for name, t in itertools.chain(submodule.named_parameters(), submodule.named_buffers())
        }
        return torch.func.functional_call(submodule, state, args, kwargs)

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target in _BROADCASTING and len(args) == 2 and not kwargs and all(isinstance(a, torch.Tensor) for a in args):
            # a residual sum: on meta tensors torch's Python reference would import torch._dynamo (see _output_shape)
            shape = _broadcast(tuple(args[0].shape), tuple(args[1].shape))
            return torch.empty(shape, device="meta", dtype=torch.result_type(args[0], args[1]))
        return super().call_function(target, args, kwargs)

    def get_attr(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # type: ignore[override]
        value = self.fetch_attr(target)
        return torch.empty_like(value, device="meta") if isinstance(value, torch.Tensor) else value


def _output_shape(module: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    """The output shape of a linear, convolution, normalisation or adaptive pooling layer on ``x``, said directly
    (None: run the layer).

    On meta tensors these layers go through torch's Python decompositions (addmm, native_batch_norm, mean), whose
    first call imports torch._dynamo: 1.5 s of every dissection's start-up. A misfit raises as the layer would.
    """
    shape = tuple(x.shape)
    if type(module) is nn.Linear:
        if shape[-1:] != (module.in_features,):
            raise RuntimeError(f"linear layer takes {module.in_features} features, got input {shape}")
        return (*shape[:-1], module.out_features)
    if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm):
        channels = module.num_features if isinstance(module, nn.modules.batchnorm._BatchNorm) else module.num_channels
        if len(shape) < 2 or shape[1] != channels:
            raise RuntimeError(f"{type(module).__name__} expects {channels} channels, got input {shape}")
        return shape
    if type(module) is nn.Conv2d and len(shape) == 4 and not isinstance(module.padding, str):
        # meta convolution checks its sizes with torch._check, which imports sympy (0.4 s)
        if shape[1] != module.in_channels:
            raise RuntimeError(f"Conv2d expects {module.in_channels} channels, got input {shape}")
        sides = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(
            shape[2:], module.kernel_size, module.stride, module.padding, module.dilation, strict=True)]
        if min(sides) < 1:
            raise RuntimeError(f"Conv2d's kernel does not fit input {shape}")
        return (shape[0], module.out_channels, *sides)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d) and len(shape) in (3, 4) and not getattr(
            module, "return_indices", False):
        pair = nn.modules.utils._pair
        kernel, pad = pair(module.kernel_size), pair(module.padding)
        stride = pair(module.stride if module.stride is not None else module.kernel_size)
        dilation = pair(getattr(module, "dilation", 1))
        sides = [_pooled_side(n, k, s, p, d, module.ceil_mode)
                 for n, k, s, p, d in zip(shape[-2:], kernel, stride, pad, dilation, strict=True)]
        if min(sides) < 1 or any(p > k // 2 for p, k in zip(pad, kernel, strict=True)):
            raise RuntimeError(f"{type(module).__name__} does not fit input {shape}")
        return (*shape[:-2], *sides)
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and len(shape) in (3, 4) and not getattr(
            module, "return_indices", False):
        size = module.output_size if isinstance(module.output_size, tuple) else (module.output_size,) * 2
        return (*shape[:-2], *(s if o is None else int(o) for o, s in zip(size, shape[-2:], strict=True)))
    if type(module) is nn.LayerNorm:
        if shape[len(shape) - len(module.normalized_shape):] != tuple(module.normalized_shape):
            raise RuntimeError(f"LayerNorm over {tuple(module.normalized_shape)} got input {shape}")
        return shape
    return None


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast of two shapes (torch.broadcast_shapes imports sympy)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        raise RuntimeError(f"shapes {a} and {b} do not broadcast")
    return tuple(x if y == 1 else y for x, y in zip(a, b, strict=True))


def _pooled_side(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape for one side."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:  # the last window must start inside the input
        out -= 1
    return out


def _module_paths(node: fx.Node) -> Iterator[str]:
    """The module paths a node belongs to (its whole module stack, outermost first)."""
    stack = node.meta.get("nn_module_stack") or {}
    for value in stack.values():
        yield value[0] if isinstance(value, tuple) else str(value)
    if node.op == "call_module":
        yield str(node.target)


def trace_model(module: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> TracedModel:
    """Trace ``module`` with torch.fx and propagate a [1, C, H, W] meta input through it."""
    try:
        graph_module = fx.symbolic_trace(module)
    except Exception as err:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise UsageError(
            f"cannot trace {type(module).__name__} with torch.fx ({type(err).__name__}: {err}); "
            "receptive fields need a forward pass without data-dependent control flow"
        ) from err
    placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise UsageError(f"{type(module).__name__}.forward takes no input; it cannot be analysed")
    interpreter = _MetaInterpreter(graph_module, garbage_collect_values=False)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    meta_input = torch.empty(1, in_channels, *input_size, device="meta", dtype=dtype)
    try:
        interpreter.run(meta_input, *([None] * (len(placeholders) - 1)))
    except Exception as err:  # shape errors surface as RuntimeError, ValueError, IndexError, ...
        # Layers before the failing node keep their shapes (e.g. a fixed-size classifier head after the
        # convolutions); with none at all the input itself is wrong.
        computed = [n for n in interpreter.env if n.op != "placeholder"]
        if not computed:
            raise UsageError(
                f"{type(module).__name__} does not accept a {in_channels}x{input_size[0]}x{input_size[1]} "
                f"input ({type(err).__name__}: {str(err).splitlines()[0]}); pass an input size it supports"
            ) from err
        LOG.info("shapes known only up to %s at %s: %s", computed[-1], input_size, str(err).splitlines()[0])
    outputs: dict[str, fx.Node] = {}
    for node in graph_module.graph.nodes:
        for path in _module_paths(node):
            if path:
                outputs[path] = node
    return TracedModel(graph_module, dict(interpreter.env), outputs, placeholders[0])


def truncated_module(traced: TracedModel, node: fx.Node) -> fx.GraphModule:
    """A GraphModule computing the model only up to ``node`` and returning its value.

    The forward pass stops at the layer, like a capture hook that aborts the pass, without hooks.
    """
    graph = fx.Graph()
    remap: dict[fx.Node, fx.Node] = {}
    for original in traced.graph_module.graph.nodes:
        if original.op == "output":
            break
        remap[original] = graph.node_copy(original, lambda n: remap[n])
        if original is node:
            break
    graph.output(remap[node])
    truncated = fx.GraphModule(traced.graph_module, graph)
    truncated.graph.eliminate_dead_code()
    truncated.recompile()
    return truncated
