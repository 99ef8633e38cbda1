"""A model's dataflow graph with every tensor's shape, found without running the real network.

``torch.fx`` symbolic tracing gives the graph (branches and merges included); a pass over it with
tensors on the ``meta`` device (parameters swapped for meta tensors of the same shape) gives every
node's shape for the cost of a few Python calls, whatever the network's size. Receptive fields
(``theory``) and the occlusion engine (``unitscope.perturb``) both read this graph.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from unitscope.errors import UsageError

LOG = logging.getLogger(__name__)


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
        state = {
            name: torch.empty_like(t, device="meta")
            for name, t in itertools.chain(submodule.named_parameters(), submodule.named_buffers())
        }
        return torch.func.functional_call(submodule, state, args, kwargs)

    def get_attr(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # type: ignore[override]
        value = self.fetch_attr(target)
        return torch.empty_like(value, device="meta") if isinstance(value, torch.Tensor) else value


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
