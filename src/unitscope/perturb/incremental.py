"""Incremental occlusion inference through a chain of window and point-wise layers (after Krypton).

An occluder changes only a small window of each layer. Per occluded copy and layer we keep a fixed-size
window of activations and fill everything around it from the clean image's cached activations, so each
layer costs a convolution over a window instead of the whole map. Two intervals per axis bound the work:

* ``changed`` (forward): positions whose input window overlaps the previous layer's changed positions;
* ``needed`` (backward): positions that some unit's peak depends on, i.e. the input span of the next
  layer's needed positions, intersected with ``changed``. The last layer needs only the bounding box of
  the peaks of the units that the occluder can reach.

A position in ``needed`` is computed exactly: its inputs are either needed themselves (taken from the
window) or unchanged (taken from the clean cache). The occluders of a batch share one window size per
layer (the largest ``needed`` extent among them), each window placed to contain its occluder's
``needed`` box, so a batch is a handful of dense tensor operations; occluders are grouped into batches
by the shapes of their ``needed`` boxes to keep the padding small (``Regions.batches``). A value does
not depend on which batch computed it, beyond float rounding. After the last layer that mixes channels
(a convolution or local response normalisation), only the requested units' channels are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from unitscope.batching import batch_ranges
from unitscope.receptive.graph import TracedModel
from unitscope.receptive.theory import window_parameters

POINTWISE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.BatchNorm2d, nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d, nn.Identity,
)

Interval = tuple[torch.Tensor, torch.Tensor]  # [a, b) per occluder, int64 [N] each
BATCH_OVERHEAD: float = 2.0  # a batch's fixed cost, in typical occluders ...
STEP_OVERHEAD_MACS: float = 8e6  # ... and at least this many multiply-adds per layer (Python, kernel launches)


@dataclass(frozen=True)
class Step:
    """One layer of the chain: a window layer (kernel/stride/padding) or a point-wise one (kernel None)."""

    module: nn.Module
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    kernel: tuple[int, int] | None = None  # dilated extent
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)  # leading padding

    @property
    def is_window(self) -> bool:
        return self.kernel is not None

    @property
    def mixes_channels(self) -> bool:
        return isinstance(self.module, nn.Conv2d | nn.LocalResponseNorm)

    @property
    def cost_per_position(self) -> int:
        """Multiply-adds per output position (a convolution's), 1 for other layers."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return m.in_channels // m.groups * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        return 1

    @property
    def pad_value(self) -> float:
        return float("-inf") if isinstance(self.module, nn.MaxPool2d) else 0.0

    def padded(self, clean: torch.Tensor) -> torch.Tensor:
        """The clean input [C, H, W] padded so that every output window reads inside it, as [Hp, Wp, C]."""
        if self.kernel is None:
            return clean.permute(1, 2, 0).contiguous()
        pads = []
        for d in (1, 0):
            trailing = (self.out_size[d] - 1) * self.stride[d] + self.kernel[d] - self.pad[d] - self.in_size[d]
            pads += [self.pad[d], max(0, trailing)]
        return F.pad(clean, pads, value=self.pad_value).permute(1, 2, 0).contiguous()

    def apply(self, x: torch.Tensor, channels: torch.Tensor | None, sliced_input: bool) -> torch.Tensor:
        """This layer on explicitly padded windows; ``channels`` selects output channels (convolution)
        or says which channels a sliced input carries (per-channel layers)."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            weight = m.weight if channels is None else m.weight[channels]
            bias = m.bias if channels is None or m.bias is None else m.bias[channels]
            return F.conv2d(x, weight, bias, m.stride, 0, m.dilation, m.groups)
        if isinstance(m, nn.MaxPool2d):
            return F.max_pool2d(x, m.kernel_size, m.stride, 0, m.dilation)
        if isinstance(m, nn.AvgPool2d):
            return F.avg_pool2d(x, m.kernel_size, m.stride, 0)
        if isinstance(m, nn.BatchNorm2d) and sliced_input and channels is not None:
            weight = None if m.weight is None else m.weight[channels]
            bias = None if m.bias is None else m.bias[channels]
            mean, var = cast(torch.Tensor, m.running_mean), cast(torch.Tensor, m.running_var)
            return F.batch_norm(x, mean[channels], var[channels], weight, bias, False, 0.0, m.eps)
        out: torch.Tensor = m(x)
        return out


def _step_problem(module: nn.Module) -> str | None:
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
    return f"{type(module).__name__} is not a supported layer"


def extract_chain(traced: TracedModel, node: fx.Node) -> tuple[tuple[Step, ...] | None, str]:
    """The layers from the input to ``node`` when they form a plain chain of supported modules.

    Returns (steps, reason); steps is None with the reason when the model must be recomputed in full.
    """
    nodes: list[fx.Node] = []
    current = node
    while current is not traced.input_node:
        parents = list(current.all_input_nodes)
        if current.op != "call_module":
            name = getattr(current.target, "__name__", str(current.target))
            return None, f"{current.op} {name!r} before the layer is not a module (branches merge, or functional code)"
        if len(parents) != 1:
            return None, f"{current.target} takes {len(parents)} tensor inputs (a merge of branches)"
        module = traced.graph_module.get_submodule(str(current.target))
        problem = _step_problem(module)
        if problem is not None:
            return None, f"{current.target}: {problem}"
        nodes.append(current)
        current = parents[0]
    if not nodes:
        return None, "the layer is the input itself"
    steps = []
    for current in reversed(nodes):
        module = traced.graph_module.get_submodule(str(current.target))
        in_shape, out_shape = traced.shape(current.all_input_nodes[0]), traced.shape(current)
        if in_shape is None or out_shape is None or len(in_shape) != 4 or len(out_shape) != 4:
            return None, f"{current.target} has no spatial input and output"
        sizes = {"in_size": tuple(in_shape[-2:]), "out_size": tuple(out_shape[-2:])}
        window = window_parameters(module)
        if window is None:
            steps.append(Step(module, **sizes))  # type: ignore[arg-type]
        else:
            kernel, stride, pad, dilation = window
            extent = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation, strict=True))
            steps.append(Step(module, kernel=extent, stride=stride, pad=pad, **sizes))  # type: ignore[arg-type]
    names = " → ".join(str(n.target) for n in reversed(nodes))
    return tuple(steps), f"incremental: a chain of {len(steps)} layers ({names})"


def _forward(step: Step, a: torch.Tensor, b: torch.Tensor, d: int) -> Interval:
    """Output positions whose input window meets input rows [a, b); empty stays empty."""
    if step.kernel is None:
        return a, b
    k, s, p = step.kernel[d], step.stride[d], step.pad[d]
    lo = (-torch.div(-(a + p - k + 1), s, rounding_mode="floor")).clamp(min=0)
    hi = (torch.div(b - 1 + p, s, rounding_mode="floor") + 1).clamp(max=step.out_size[d])
    empty = (a >= b) | (lo >= hi)
    return torch.where(empty, 0, lo), torch.where(empty, 0, hi)


def _span(step: Step, a: torch.Tensor, b: torch.Tensor, d: int) -> Interval:
    """Input rows (unpadded coordinates) that output rows [a, b) read."""
    if step.kernel is None:
        return a, b
    k, s, p = step.kernel[d], step.stride[d], step.pad[d]
    return a * s - p, (b - 1) * s - p + k


def _intersect(x: Interval, y: Interval) -> Interval:
    a, b = torch.maximum(x[0], y[0]), torch.minimum(x[1], y[1])
    empty = a >= b
    return torch.where(empty, 0, a), torch.where(empty, 0, b)


@dataclass(frozen=True)
class Regions:
    """Per activation (input first) and axis, each occluder's needed interval; and which peaks it reaches."""

    needed: list[list[Interval]]
    reach: torch.Tensor  # [N, U] bool: occluder n can change unit u at its peak

    def extents(self, i: int) -> torch.Tensor:
        """[N, 2] needed rows and columns of activation i."""
        return torch.stack([self.needed[i][d][1] - self.needed[i][d][0] for d in range(2)], dim=1)

    def batches(self, steps: tuple[Step, ...], selected: int, batch_size: int,
                overhead: float = BATCH_OVERHEAD) -> list[torch.Tensor]:
        """Occluders that reach some unit, grouped into batches of alike window shapes.

        A batch's windows take the largest needed extent of its members, so members of different shapes
        waste work on padding. Occluders are sorted by their needed shapes (costliest layer first), then
        cut greedily: the next occluder joins the current batch unless the extra padding it brings costs
        more than running it alone plus a fixed per-batch cost: ``overhead`` typical occluders, and no
        less than ``STEP_OVERHEAD_MACS`` per layer (what a batch's Python and kernel launches cost on a
        CPU core, about 0.2 ms). Multiply-adds of convolutions are the cost model.
        """
        costs = _layer_costs(steps, selected)
        reachable = self.reach.any(dim=1).cpu().numpy()
        if not costs:  # no convolution: every window is cheap, keep the given order
            order = np.flatnonzero(reachable)
            return [torch.from_numpy(order[part.start:part.stop]).to(self.reach.device)
                    for part in batch_ranges(len(order), batch_size)]
        layers = sorted(costs, key=lambda i: costs[i])  # cheapest first: least significant sort key
        shapes = np.stack([self.extents(i + 1).cpu().numpy() for i in layers], axis=1).astype(np.float64)
        weights = np.array([costs[i] for i in layers], dtype=np.float64)
        own = (shapes.prod(axis=2) * weights).sum(axis=1)
        keys = [shapes[:, k, d] for k in range(len(layers)) for d in (1, 0)]
        ordered: list[int] = [j for j in np.lexsort(keys).tolist() if reachable[j]]
        typical = float(np.median(own[reachable])) if reachable.any() else 0.0
        extra = max(overhead * typical, STEP_OVERHEAD_MACS * len(steps))
        groups: list[list[int]] = []
        largest = np.zeros((len(layers), 2))
        cost = 0.0
        for j in ordered:
            grown = np.maximum(largest, shapes[j])
            grown_cost = (len(groups[-1]) + 1) * float((grown.prod(axis=1) * weights).sum()) if groups else 0.0
            if groups and len(groups[-1]) < batch_size and grown_cost - cost <= own[j] + extra:
                groups[-1].append(j)
                largest, cost = grown, grown_cost
            else:
                groups.append([j])
                largest, cost = shapes[j].copy(), float(own[j])
        return [torch.tensor(g, dtype=torch.long, device=self.reach.device) for g in groups]


def _layer_costs(steps: tuple[Step, ...], selected: int) -> dict[int, float]:
    """Multiply-adds per output position of each convolution (the channel-sliced one scaled down)."""
    split, by_conv = channel_split(steps)
    costs = {i: float(step.cost_per_position) for i, step in enumerate(steps) if step.cost_per_position > 1}
    if by_conv and split in costs:
        costs[split] *= selected / cast(nn.Conv2d, steps[split].module).out_channels
    return costs


def plan_regions(steps: tuple[Step, ...], corners: torch.Tensor, patch: int, peaks: torch.Tensor,
                 relevant: torch.Tensor) -> Regions:
    """Changed and needed intervals of every occluder of one call (see the module docstring)."""
    changed: list[list[Interval]] = [[(corners[:, d], corners[:, d] + patch) for d in range(2)]]
    for step in steps:
        changed.append([_forward(step, *changed[-1][d], d) for d in range(2)])
    last = changed[-1]
    inside = [(peaks[None, :, d] >= last[d][0][:, None]) & (peaks[None, :, d] < last[d][1][:, None])
              for d in range(2)]
    reach = relevant & inside[0] & inside[1]
    big = torch.iinfo(torch.int64).max
    needed_last = []
    for d in range(2):
        lo = torch.where(reach, peaks[None, :, d], big).amin(dim=1)
        hi = torch.where(reach, peaks[None, :, d] + 1, 0).amax(dim=1)
        needed_last.append(_intersect((torch.where(reach.any(1), lo, 0), hi), last[d]))
    needed: list[list[Interval]] = [needed_last]
    for i in range(len(steps), 0, -1):
        step = steps[i - 1]
        needed.insert(0, [_intersect(_span(step, *needed[0][d], d), changed[i - 1][d]) for d in range(2)])
    return Regions(needed, reach)


@dataclass(frozen=True)
class Windows:
    """One batch's windows: per activation, the origin of each occluder's window and the common size."""

    origin: list[list[torch.Tensor]]
    size: list[tuple[int, int]]

    @classmethod
    def fit(cls, steps: tuple[Step, ...], regions: Regions, index: torch.Tensor, corners: torch.Tensor,
            patch: int) -> Windows:
        """The smallest common window per activation holding every member's needed box."""
        origins = [[corners[:, 0], corners[:, 1]]]
        sizes = [(patch, patch)]
        for i, step in enumerate(steps, start=1):
            extent = regions.extents(i)[index].amax(dim=0).tolist()
            sizes.append((int(extent[0]), int(extent[1])))
            origins.append([regions.needed[i][d][0][index].clamp(max=step.out_size[d] - extent[d]).clamp(min=0)
                            for d in range(2)])
        return cls(origins, sizes)


def channel_split(steps: tuple[Step, ...]) -> tuple[int, bool]:
    """(t, by_conv): steps from t on carry only the selected channels; by_conv: step t selects them
    itself (a convolution computing only those output channels) rather than slicing its input."""
    mixing = [i for i, s in enumerate(steps) if s.mixes_channels]
    if not mixing:
        return 0, False
    last = mixing[-1]
    module = steps[last].module
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return last, True
    return last + 1, False


def clean_activations(steps: tuple[Step, ...], image: torch.Tensor) -> list[torch.Tensor]:
    """Activations [C, H, W] of the clean image: the input, then each step's output."""
    acts = [image]
    x = image.unsqueeze(0)
    for step in steps:
        x = step.module(x.clone())  # clone: an in-place ReLU must not rewrite the cached activation
        acts.append(x[0])
    return acts


def _clean_windows(source: torch.Tensor, step: Step, origins: list[torch.Tensor], lengths: tuple[int, int]
                   ) -> torch.Tensor:
    """Clean input windows [n, Lr, Lc, C] starting at padded position ``origin * stride`` per occluder.

    ``source`` is the padded clean input as [Hp, Wp, C]; the windows are a strided view of it, so the
    gather copies whole runs of channels.
    """
    view = source.unfold(0, lengths[0], step.stride[0]).unfold(1, lengths[1], step.stride[1])
    return view.permute(0, 1, 3, 4, 2)[origins[0], origins[1]]


def _shifted(window: torch.Tensor, offsets: list[torch.Tensor], lengths: tuple[int, int]) -> torch.Tensor:
    """Per occluder, [n, h, w, C] ``window`` values at rows/columns ``offset + 0..L-1`` (clamped; the caller
    masks what lies outside)."""
    n, h, w, _ = window.shape
    rows = (offsets[0][:, None] + torch.arange(lengths[0], device=window.device)).clamp(0, h - 1)
    cols = (offsets[1][:, None] + torch.arange(lengths[1], device=window.device)).clamp(0, w - 1)
    batch = torch.arange(n, device=window.device)[:, None, None]
    return window[batch, rows[:, :, None], cols[:, None, :]]


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[n, C, h, w] (any memory format) as a contiguous [n, h, w, C] tensor (free when channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


def run_windows(steps: tuple[Step, ...], padded: list[torch.Tensor], regions: Regions, index: torch.Tensor,
                corners: torch.Tensor, patches: torch.Tensor, channels: torch.Tensor
                ) -> tuple[torch.Tensor, Windows]:
    """Last-layer windows [n, h, w, len(channels)] for the occluders ``index`` of a call, and their layout.

    ``padded[i]`` is step i's clean input, padded, as [Hp, Wp, C] (already restricted to ``channels`` for
    steps that carry only the selected channels); ``corners``/``patches`` are the occluders' [n, 2]
    corners and [n, 3, p, p] contents. Windows are kept channels-last ([n, h, w, C]): the gathers copy
    runs of channels, and convolutions and max-pooling run fastest on that layout on CPUs.
    """
    layout = Windows.fit(steps, regions, index, corners, patches.shape[-1])
    split, by_conv = channel_split(steps)
    window = _nhwc(patches)
    for i, step in enumerate(steps):
        sliced_input = i > split or (i == split and not by_conv)
        if i == split and not by_conv:
            window = window[..., channels]
        if step.kernel is not None:
            lengths = tuple((layout.size[i + 1][d] - 1) * step.stride[d] + step.kernel[d] for d in range(2))
            clean = _clean_windows(padded[i], step, layout.origin[i + 1], lengths)  # type: ignore[arg-type]
            starts = [layout.origin[i + 1][d] * step.stride[d] - step.pad[d] for d in range(2)]
            masks = []
            for d in range(2):
                positions = starts[d][:, None] + torch.arange(lengths[d], device=index.device)
                lo, hi = (t[index, None] for t in regions.needed[i][d])
                masks.append((positions >= lo) & (positions < hi))
            offsets = [starts[d] - layout.origin[i][d] for d in range(2)]
            changed = _shifted(window, offsets, lengths)  # type: ignore[arg-type]
            window = torch.where((masks[0][:, :, None] & masks[1][:, None, :]).unsqueeze(3), changed, clean)
        selecting = channels if (i == split and by_conv) or sliced_input else None
        window = _nhwc(step.apply(window.permute(0, 3, 1, 2), selecting, sliced_input))
    if split >= len(steps):
        window = window[..., channels]
    return window, layout
