"""Incremental forward passes for images that differ from one base image only inside a box.

Every candidate of a greedy step is the current image with one region filled. The network's leading
convolution and pooling layers are local, so a candidate's activations differ from the current image's
only within the region's box grown by each layer's kernel and stride. We trace the model with torch.fx,
take its longest chain of local layers from the input (Conv2d / MaxPool2d, each followed by point-wise
layers such as BatchNorm2d, ReLU, Dropout), compute that chain once for the base image, and for each
candidate recompute only its box, layer after layer; the rest of the network then runs on the assembled
activations. For SceneWorldNet with ~30 superpixels that is about a third of the convolution work.

Shapes are bucketed: a candidate's crop sizes depend only on its own box rounded up to ``granularity``
input pixels, so what is computed for it does not depend on which other candidates share its batch.
Models that do not trace, or do not start with a local layer, are simply run whole.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

POINTWISE: tuple[type[nn.Module], ...] = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Hardtanh, nn.Dropout, nn.Dropout2d, nn.Identity,
)
GRANULARITY = 16
TRACE_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, RuntimeError, NotImplementedError, AttributeError)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclass
class Stage:
    """One windowed layer (run without padding on pre-padded crops) and the point-wise layers after it."""

    window: nn.Module
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    pad_value: float
    pointwise: list[nn.Module]

    def run(self, padded: torch.Tensor) -> torch.Tensor:
        """The stage's output for an already padded input."""
        if isinstance(self.window, nn.Conv2d):
            out = F.conv2d(padded, self.window.weight, self.window.bias, self.window.stride, 0, 1, self.window.groups)
        else:
            out = F.max_pool2d(padded, self.kernel, self.stride, 0)
        for module in self.pointwise:
            out = module(out)
        return out

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        return F.pad(x, (pw, pw, ph, ph), value=self.pad_value) if ph or pw else x

    def out_size(self, size: int, axis: int) -> int:
        return (size + 2 * self.padding[axis] - self.kernel[axis]) // self.stride[axis] + 1

    def affected(self, lo: int, hi: int, axis: int, n_out: int) -> tuple[int, int]:
        """Outputs [o0, o1) whose window touches inputs [lo, hi)."""
        k, s, p = self.kernel[axis], self.stride[axis], self.padding[axis]
        return max(0, -((k - 1 - lo - p) // s)), min(n_out, (hi - 1 + p) // s + 1)

    def span(self, length: int, axis: int, n_out: int) -> int:
        """Most outputs that an input interval of ``length`` can touch."""
        return min(n_out, math.ceil((length + self.kernel[axis] - 1) / self.stride[axis]))


def _as_stage(module: nn.Module) -> Stage | None:
    if isinstance(module, nn.Conv2d):
        ok = module.padding_mode == "zeros" and _pair(module.dilation) == (1, 1) and not isinstance(module.padding, str)
        if ok:
            return Stage(module, _pair(module.kernel_size), _pair(module.stride), _pair(module.padding), 0.0, [])
    if isinstance(module, nn.MaxPool2d) and not module.ceil_mode and _pair(module.dilation) == (1, 1):
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        return Stage(module, _pair(module.kernel_size), stride, _pair(module.padding), -math.inf, [])
    return None


def split_local_prefix(model: nn.Module) -> tuple[list[Stage], fx.GraphModule] | None:
    """The model's leading chain of local stages and a module for everything after it (None if none)."""
    try:
        traced = fx.symbolic_trace(model)
    except TRACE_ERRORS:  # data-dependent control flow and the like: such a model is simply run whole
        return None
    nodes = list(traced.graph.nodes)
    if not nodes or nodes[0].op != "placeholder" or len(nodes[0].users) != 1:
        return None
    stages: list[Stage] = []
    current = nodes[0]
    for node in nodes[1:]:
        if node.op != "call_module" or node.args != (current,) or node.kwargs or len(current.users) != 1:
            break
        module = traced.get_submodule(str(node.target))
        stage = _as_stage(module)
        if stage is not None:
            stages.append(stage)
        elif isinstance(module, POINTWISE) and stages:
            stages[-1].pointwise.append(module)
        else:
            break
        current = node
    if not stages:
        return None
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {current: graph.placeholder("features")}
    started = False
    for node in nodes:
        if started:
            env[node] = graph.node_copy(node, lambda n: env[n])
        started = started or node is current
    return stages, fx.GraphModule(traced, graph)


class IncrementalForward:
    """Logits of candidates that differ from a base input only within a box (see the module notes)."""

    def __init__(self, stages: list[Stage], suffix: nn.Module, granularity: int = GRANULARITY) -> None:
        self.stages = stages
        self.suffix = suffix
        self.granularity = granularity
        self._base: torch.Tensor | None = None
        self._padded: list[torch.Tensor] = []
        self._base_out: torch.Tensor | None = None
        self._base_logits: torch.Tensor | None = None

    @classmethod
    def for_model(cls, model: nn.Module) -> IncrementalForward | None:
        split = split_local_prefix(model)
        return None if split is None else cls(*split)

    def set_base(self, base: torch.Tensor) -> None:
        """Compute and keep the local chain's activations for the base input [1, C, H, W]."""
        if self._base is not None and self._base.shape == base.shape and torch.equal(self._base, base):
            return
        self._base = base
        self._padded = []
        x = base
        for stage in self.stages:
            padded = stage.pad(x)
            self._padded.append(padded)
            x = stage.run(padded)
        self._base_out = x
        self._base_logits = self.suffix(x)

    def _sizes(self, length_h: int, length_w: int) -> list[tuple[int, int]]:
        sizes, (h, w) = [], self._base.shape[-2:]  # type: ignore[union-attr]
        for stage in self.stages:
            oh, ow = stage.out_size(h, 0), stage.out_size(w, 1)
            length_h, length_w = stage.span(length_h, 0, oh), stage.span(length_w, 1, ow)
            sizes.append((length_h, length_w))
            h, w = oh, ow
        return sizes

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        """Logits [N, classes] for inputs [N, C, H, W] (call ``set_base`` first)."""
        base = self._base
        if base is None or self._base_logits is None:
            raise RuntimeError("set_base must be called before scoring candidates")
        changed = (candidates != base).any(dim=1)
        rows, cols = changed.any(dim=2), changed.any(dim=1)
        logits = self._base_logits.expand(len(candidates), -1).clone()
        groups: dict[tuple[int, int], list[tuple[int, tuple[int, int], tuple[int, int]]]] = defaultdict(list)
        g = self.granularity
        height, width = base.shape[-2:]
        for i in range(len(candidates)):
            ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
            if len(ys) == 0:
                continue  # identical to the base
            y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
            key = (min(height, -(-(y1 - y0) // g) * g), min(width, -(-(x1 - x0) // g) * g))
            groups[key].append((i, (y0, y1), (x0, x1)))
        for (length_h, length_w), members in groups.items():
            index = [m[0] for m in members]
            out = self._run_group(candidates[index], members, self._sizes(length_h, length_w))
            logits[index] = self.suffix(out)
        return logits

    def _run_group(
        self, inputs: torch.Tensor, members: list[tuple[int, tuple[int, int], tuple[int, int]]],
        sizes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Assembled last-stage activations for one group of same-sized boxes."""
        ranges = [(ry, rx) for _, ry, rx in members]
        crop = inputs  # stage 0 crops the candidates themselves
        starts = [(0, 0)] * len(members)
        h, w = inputs.shape[-2:]
        for stage_index, stage in enumerate(self.stages):
            oh, ow = stage.out_size(h, 0), stage.out_size(w, 1)
            size_h, size_w = sizes[stage_index]
            (sh, sw), (kh, kw) = stage.stride, stage.kernel
            ph, pw = stage.padding
            pieces, new_starts, new_ranges = [], [], []
            source = stage.pad(inputs) if stage_index == 0 else self._padded[stage_index]
            for j, (ry, rx) in enumerate(ranges):
                ay, ax = stage.affected(*ry, 0, oh), stage.affected(*rx, 1, ow)
                top, left = min(ay[0], oh - size_h), min(ax[0], ow - size_w)
                wy, wx = top * sh, left * sw  # window origin in padded input coordinates
                win_h, win_w = (size_h - 1) * sh + kh, (size_w - 1) * sw + kw
                if stage_index == 0:
                    piece = source[j : j + 1, :, wy : wy + win_h, wx : wx + win_w]
                else:
                    piece = source[:, :, wy : wy + win_h, wx : wx + win_w].clone()
                    py, px = starts[j][0] + ph - wy, starts[j][1] + pw - wx  # previous crop, window coords
                    ch, cw = crop.shape[-2:]
                    y_lo, y_hi, x_lo, x_hi = max(py, 0), min(py + ch, win_h), max(px, 0), min(px + cw, win_w)
                    if y_lo < y_hi and x_lo < x_hi:
                        piece[0, :, y_lo:y_hi, x_lo:x_hi] = crop[j, :, y_lo - py : y_hi - py, x_lo - px : x_hi - px]
                pieces.append(piece)
                new_starts.append((top, left))
                new_ranges.append((ay, ax))
            crop = stage.run(torch.cat(pieces))
            starts, ranges, h, w = new_starts, new_ranges, oh, ow
        full = self._base_out.expand(len(members), -1, -1, -1).clone()  # type: ignore[union-attr]
        size_h, size_w = crop.shape[-2:]
        for j, (top, left) in enumerate(starts):
            full[j, :, top : top + size_h, left : left + size_w] = crop[j]
        return full
