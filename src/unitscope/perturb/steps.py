"""The layers between the input and an occluded layer, as a graph of steps the incremental engine can run.

Activation 0 is the image; step i reads the earlier activations ``inputs`` and writes activation i + 1,
in the order of the model's fx graph. A step is a window layer (convolution, pooling: kernel, stride,
padding), a point-wise module (activation functions, batch norm with running statistics: a per-channel
affine map in eval mode), or the sum of two activations of one shape (the merge of a residual block).
All three change an output position only through a known window of input positions, which is what lets
the engine recompute a window per layer. Anything else (attention, concatenation, an unknown custom
module, functional code) has no known footprint: the plan then falls back to full recomputation and the
reason names the node.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from unitscope.receptive.graph import TracedModel
from unitscope.receptive.theory import window_parameters

POINTWISE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.BatchNorm2d, nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d, nn.Identity,
)
ADD_FUNCTIONS: tuple[object, ...] = (operator.add, operator.iadd, torch.add)
POINTWISE_FUNCTIONS: dict[object, type[nn.Module]] = {  # functional forms of point-wise modules
    F.relu: nn.ReLU, torch.relu: nn.ReLU, torch.sigmoid: nn.Sigmoid, torch.tanh: nn.Tanh,
}


class Add(nn.Module):
    """The sum of two activations of the same shape (a residual connection's merge)."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return first + second


@dataclass(frozen=True)
class Step:
    """One node: a window layer (kernel/stride/padding), a point-wise module, or a merge (``Add``)."""

    module: nn.Module
    inputs: tuple[int, ...]  # activations read (0: the image; j: step j - 1's output)
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    name: str
    kernel: tuple[int, int] | None = None  # dilated extent
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)  # leading padding

    @property
    def is_window(self) -> bool:
        return self.kernel is not None

    @property
    def is_merge(self) -> bool:
        return isinstance(self.module, Add)

    @property
    def is_pointwise(self) -> bool:
        """One input, each output position from the same input position (no window to gather)."""
        return not self.is_window and not self.is_merge

    @property
    def mixes_channels(self) -> bool:
        return isinstance(self.module, nn.Conv2d | nn.LocalResponseNorm)

    @property
    def selects_channels(self) -> bool:
        """A dense convolution: computing only some output channels costs only their share."""
        return isinstance(self.module, nn.Conv2d) and self.module.groups == 1

    @property
    def cost_per_position(self) -> int:
        """Multiply-adds per output position (a convolution's), 1 for other layers."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return m.in_channels // m.groups * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        return 1

    @property
    def gather_kernel(self) -> tuple[int, int]:
        """The input window per output position: the kernel, or one position for a merge."""
        return self.kernel if self.kernel is not None else (1, 1)

    def padded(self, clean: torch.Tensor) -> torch.Tensor:
        """The clean input [C, H, W] padded so that every output window reads inside it, as [Hp, Wp, C]."""
        if self.kernel is None:
            return clean.permute(1, 2, 0).contiguous()
        pad_value = float("-inf") if isinstance(self.module, nn.MaxPool2d) else 0.0
        pads = []
        for d in (1, 0):
            trailing = (self.out_size[d] - 1) * self.stride[d] + self.kernel[d] - self.pad[d] - self.in_size[d]
            pads += [self.pad[d], max(0, trailing)]
        return F.pad(clean, pads, value=pad_value).permute(1, 2, 0).contiguous()

    def apply(self, xs: list[torch.Tensor], channels: torch.Tensor | None, sliced_input: bool) -> torch.Tensor:
        """This step on explicitly padded windows; ``channels`` selects a convolution's output channels,
        or says which channels a sliced input carries (per-channel layers)."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            weight = m.weight if channels is None else m.weight[channels]
            bias = m.bias if channels is None or m.bias is None else m.bias[channels]
            return F.conv2d(xs[0], weight, bias, m.stride, 0, m.dilation, m.groups)
        if isinstance(m, nn.MaxPool2d):
            return F.max_pool2d(xs[0], m.kernel_size, m.stride, 0, m.dilation)
        if isinstance(m, nn.AvgPool2d):
            return F.avg_pool2d(xs[0], m.kernel_size, m.stride, 0)
        if isinstance(m, nn.BatchNorm2d) and sliced_input and channels is not None:
            weight = None if m.weight is None else m.weight[channels]
            bias = None if m.bias is None else m.bias[channels]
            mean, var = cast(torch.Tensor, m.running_mean), cast(torch.Tensor, m.running_var)
            return F.batch_norm(xs[0], mean[channels], var[channels], weight, bias, False, 0.0, m.eps)
        return run_module(m, xs)


def run_module(module: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    """``module(*xs)``; an in-place module gets a copy, so that no other reader's tensor is rewritten."""
    if getattr(module, "inplace", False):
        xs = [x.clone() for x in xs]
    out: torch.Tensor = module(*xs)
    return out


def _module_problem(module: nn.Module) -> str | None:
    """Why a module cannot be run incrementally, or None when it can."""
    if isinstance(module, nn.Conv2d):
        return None if module.padding_mode == "zeros" else f"padding_mode={module.padding_mode!r}"
    if isinstance(module, nn.MaxPool2d):
        return "return_indices=True" if module.return_indices else None
    if isinstance(module, nn.AvgPool2d):
        if module.ceil_mode or not module.count_include_pad or module.divisor_override:
            return "AvgPool2d with ceil_mode, count_include_pad=False or divisor_override"
        return None
    if isinstance(module, nn.BatchNorm2d):
        return None if module.running_mean is not None else "BatchNorm2d without running statistics"
    if isinstance(module, POINTWISE_TYPES):
        return None
    return f"{type(module).__name__} is not a layer the incremental engine knows (no known local footprint)"


def ancestors(traced: TracedModel, node: fx.Node) -> list[fx.Node]:
    """The nodes ``node`` depends on (itself included, the input excluded), in graph order."""
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current in seen or current is traced.input_node:
            continue
        seen.add(current)
        stack.extend(current.all_input_nodes)
    return [n for n in traced.graph_module.graph.nodes if n in seen]


def _spatial(traced: TracedModel, node: fx.Node) -> tuple[int, int] | None:
    shape = traced.shape(node)
    return None if shape is None or len(shape) != 4 else (int(shape[2]), int(shape[3]))


def _step_for(traced: TracedModel, node: fx.Node, index: dict[fx.Node, int]) -> Step | str:
    """The step computing ``node``, or why there is none."""
    out_size = _spatial(traced, node)
    parents = list(node.all_input_nodes)
    if node.op == "call_module":
        if len(parents) != 1 or len(node.args) != 1 or node.kwargs:
            return f"is called with {len(node.args)} arguments and {len(node.kwargs)} keyword arguments, not one tensor"
        module = traced.graph_module.get_submodule(str(node.target))
        problem = _module_problem(module)
        if problem is not None:
            return problem
        in_size = _spatial(traced, parents[0])
        if in_size is None or out_size is None:
            return "has no spatial input and output"
        window = window_parameters(module)
        if window is None:
            return Step(module, (index[parents[0]],), in_size, out_size, str(node.target))
        kernel, stride, pad, dilation = window
        extent = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation, strict=True))
        return Step(module, (index[parents[0]],), in_size, out_size, str(node.target),
                    kernel=extent, stride=stride, pad=pad)  # type: ignore[arg-type]
    if node.op == "call_function" and node.target in ADD_FUNCTIONS:
        if len(node.args) != 2 or node.kwargs or not all(isinstance(a, fx.Node) for a in node.args):
            return "adds something other than two tensors (a constant, or alpha=)"
        shapes = {traced.shape(cast(fx.Node, a)) for a in node.args} | {traced.shape(node)}
        if len(shapes) != 1 or out_size is None:
            return f"adds tensors of shapes {sorted(map(str, shapes))} (broadcasting or not spatial)"
        return Step(Add(), tuple(index[cast(fx.Node, a)] for a in node.args), out_size, out_size, node.name)
    if node.op == "call_function" and node.target in POINTWISE_FUNCTIONS:
        if len(parents) != 1 or node.args != (parents[0],) or set(node.kwargs) - {"inplace"} or out_size is None:
            return "is called with arguments other than one spatial tensor"
        module = POINTWISE_FUNCTIONS[node.target]()
        return Step(module, (index[parents[0]],), out_size, out_size, node.name)
    name = getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {name!r} is not a module or a residual sum (functional code the engine does not know)"


def extract_steps(traced: TracedModel, node: fx.Node) -> tuple[tuple[Step, ...] | None, str]:
    """The steps from the input to ``node`` when every node on the way is one the engine can run.

    Returns (steps, reason); steps is None with the reason (naming the first node in the way) when the
    model must be recomputed in full.
    """
    nodes = ancestors(traced, node)
    for current in nodes:  # an unknown layer says more than the functional code around it
        if current.op == "call_module":
            problem = _module_problem(traced.graph_module.get_submodule(str(current.target)))
            if problem is not None:
                return None, f"{current.target}: {problem}"
    index: dict[fx.Node, int] = {traced.input_node: 0}
    steps: list[Step] = []
    for current in nodes:
        if current.op == "placeholder":
            return None, f"the layer depends on the model's extra input {current.name!r}"
        step = _step_for(traced, current, index)
        if isinstance(step, str):
            label = current.target if current.op == "call_module" else current.name
            return None, f"{label}: {step}"
        index[current] = len(steps) + 1
        steps.append(step)
    if not steps:
        return None, "the layer is the input itself"
    merges = sum(step.is_merge for step in steps)
    if merges == 0:
        names = " → ".join(step.name for step in steps)
        return tuple(steps), f"incremental: a chain of {len(steps)} layers ({names})"
    convs = sum(isinstance(step.module, nn.Conv2d) for step in steps)
    return tuple(steps), (f"incremental: {len(steps)} layers, {convs} convolutions and {merges} residual sums "
                          f"({steps[0].name} → … → {steps[-1].name})")
