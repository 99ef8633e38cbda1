"""A network cut in two for the window engine: a trunk of local layers, and the head that reads its output.

The trunk runs from the input to the last activation that the occlusion engine's steps can compute
(convolutions, pooling, point-wise layers, residual sums: :mod:`unitscope.perturb.steps`); the head is the
rest of the model's fx graph (the classifier), and must read nothing of the trunk but that activation.
Then a change confined to one box of the image changes the trunk's output only inside a box too, and
``head(trunk(x))`` is the model's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from unitscope.errors import UsageError
from unitscope.perturb.steps import Step, ancestors, extract_steps, run_module
from unitscope.receptive.graph import TracedModel, trace_model


@dataclass(frozen=True)
class Split:
    """A network cut after its last spatial layer the window engine can run: ``head(trunk(x)) == model(x)``."""

    steps: tuple[Step, ...]  # the trunk, input to the last spatial activation
    head: nn.Module  # that activation [B, C, h, w] → the model's output
    reason: str


def split_model(model: nn.Module, input_size: tuple[int, int]) -> tuple[Split | None, str]:
    """The latest cut whose trunk the window engine runs and after which nothing reads the trunk again.

    Returns (None, why) for models that must be scored whole (untraceable, or no such cut).
    """
    try:
        with torch.no_grad():
            traced = trace_model(model, input_size)
    except UsageError as err:
        return None, str(err)
    why = "no spatial layer the window engine can run before the classifier"
    for node in reversed(list(traced.graph_module.graph.nodes)):
        shape = traced.shape(node)
        if shape is None or len(shape) != 4 or node.op == "placeholder":
            continue
        head = _head(traced, node)
        if head is None:
            continue
        steps, reason = extract_steps(traced, node)
        if steps is not None:
            return Split(steps, head, reason), reason
        why = reason
    return None, why


def _head(traced: TracedModel, split: fx.Node) -> fx.GraphModule | None:
    """The graph after ``split`` as a module of its value, or None when it reads anything else of the trunk."""
    trunk = set(ancestors(traced, split)) | {traced.input_node}
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {split: graph.placeholder("activation")}
    for node in traced.graph_module.graph.nodes:
        if node in trunk and node.op != "get_attr":
            continue
        if node.op == "placeholder" or any(n not in env for n in node.all_input_nodes):
            return None
        if node.op == "output":
            graph.output(fx.map_arg(node.args[0], lambda n: env[n]))
            break
        env[node] = graph.node_copy(node, lambda n: env[n])
    head = fx.GraphModule(traced.graph_module, graph)
    head.graph.eliminate_dead_code()
    head.recompile()
    return head


def whole_pass(split: Split, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every trunk activation [1, C, h, w] of one input ``x`` [1, 3, H, W], and the head's output.

    The model's own modules in the model's order on the same tensor: the model's forward pass, keeping
    what the window engine caches (bit for bit the model's output where its forward is just these calls).
    """
    acts = [x]
    for step in split.steps:
        acts.append(run_module(step.module, [acts[j] for j in step.inputs]))
    out: torch.Tensor = split.head(acts[-1])
    return acts, out
