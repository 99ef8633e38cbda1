"""Incremental occlusion inference through a graph of window, point-wise and residual-sum steps (after Krypton).

An occluder changes only a small window of each layer. Per occluded copy and activation we keep a
fixed-size window and fill everything around it from the clean image's cached activations, so each
layer costs a convolution over a window instead of the whole map. Two intervals per axis bound the work:

* ``changed`` (forward): positions whose input window overlaps the input's changed positions; at a
  residual sum, the hull of both branches' changed positions (the sum changes where either does);
* ``needed`` (backward): positions that some unit's peak depends on: the input span of each consumer's
  needed positions, intersected with ``changed`` (clean elsewhere), hulled over the consumers (a block's
  input feeds its first convolution, its shortcut and, through a downsampling convolution, the sum).
  The last activation needs only the bounding box of the peaks of the units the occluder can reach.

A position in ``needed`` is computed exactly: its inputs are either needed themselves (taken from the
window) or unchanged (taken from the clean cache; padding at borders comes from the padded clean map).
The occluders of a batch share one window size per activation (the largest ``needed`` extent among
them), each window placed to contain its occluder's ``needed`` box, so a batch is a handful of dense
tensor operations; point-wise steps keep their input's window. Occluders are grouped into batches by the
shapes of their ``needed`` boxes to keep the padding small (``Regions.batches``). A value does not depend
on which batch computed it, beyond float rounding. Activations from which only per-channel steps lead to
the layer carry only the requested units' channels, and the convolutions feeding them compute only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from unitscope.batching import batch_ranges
from unitscope.perturb.steps import Step, run_module

Interval = tuple[torch.Tensor, torch.Tensor]  # [a, b) per occluder, int64 [N] each
BATCH_OVERHEAD: float = 2.0  # a batch's fixed cost, in typical occluders ...
STEP_OVERHEAD_MACS: float = 8e6  # ... and at least this many multiply-adds per layer (Python, kernel launches)


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


def _hull(intervals: list[Interval]) -> Interval:
    """The smallest interval holding every non-empty one (empty when all are)."""
    big = torch.iinfo(torch.int64).max
    lo = torch.stack([torch.where(a < b, a, big) for a, b in intervals]).amin(dim=0)
    hi = torch.stack([torch.where(a < b, b, 0) for a, b in intervals]).amax(dim=0)
    empty = lo >= hi
    return torch.where(empty, 0, lo), torch.where(empty, 0, hi)


def consumers(steps: tuple[Step, ...]) -> list[list[int]]:
    """Per activation, the steps reading it."""
    readers: list[list[int]] = [[] for _ in range(len(steps) + 1)]
    for s, step in enumerate(steps):
        for j in step.inputs:
            readers[j].append(s)
    return readers


def channel_slicing(steps: tuple[Step, ...]) -> tuple[bool, ...]:
    """Per activation: True when it need carry only the requested units' channels.

    The layer's own output does; an earlier activation does when every step reading it is per-channel
    (no convolution or LRN) and writes a sliced activation. A dense convolution writing a sliced
    activation computes only those output channels; other steps writing one read sliced inputs.
    """
    sliced = [False] * len(steps) + [True]
    readers = consumers(steps)
    for j in range(len(steps) - 1, -1, -1):
        sliced[j] = all(not steps[s].mixes_channels and sliced[s + 1] for s in readers[j])
    return tuple(sliced)


def reads_sliced(steps: tuple[Step, ...], sliced: tuple[bool, ...], s: int) -> bool:
    """Whether step ``s`` reads only the requested channels of its inputs."""
    return sliced[s + 1] and not steps[s].mixes_channels


@dataclass(frozen=True)
class Regions:
    """Per activation (input first) and axis, each occluder's needed interval; and which peaks it reaches."""

    needed: list[list[Interval]]
    reach: torch.Tensor  # [N, U] bool: occluder n can change unit u at its peak

    def extents(self, i: int) -> torch.Tensor:
        """[N, 2] needed rows and columns of activation i."""
        return torch.stack([self.needed[i][d][1] - self.needed[i][d][0] for d in range(2)], dim=1)

    def batches(self, steps: tuple[Step, ...], selected: int, batch_size: int,
                overhead: float = BATCH_OVERHEAD, step_overhead: float = STEP_OVERHEAD_MACS) -> list[torch.Tensor]:
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
        extra = max(overhead * typical, step_overhead * len(steps))
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
    """Multiply-adds per output position of each convolution (those computing selected channels scaled down)."""
    sliced = channel_slicing(steps)
    costs = {}
    for i, step in enumerate(steps):
        if step.cost_per_position > 1:
            share = selected / cast(nn.Conv2d, step.module).out_channels if sliced[i + 1] and step.selects_channels \
                else 1.0
            costs[i] = float(step.cost_per_position) * share
    return costs


def changed_regions(steps: tuple[Step, ...], boxes: list[Interval]) -> list[list[Interval]]:
    """Per activation (input first) and axis, the positions that changed input rows/columns ``boxes`` can
    change: a window layer's outputs whose window meets them; at a residual sum, the hull of both inputs'."""
    changed: list[list[Interval]] = [boxes]
    for step in steps:
        if step.is_merge:
            changed.append([_hull([changed[j][d] for j in step.inputs]) for d in range(2)])
        else:
            changed.append([_forward(step, *changed[step.inputs[0]][d], d) for d in range(2)])
    return changed


def plan_regions(steps: tuple[Step, ...], corners: torch.Tensor, patch: int, peaks: torch.Tensor,
                 relevant: torch.Tensor) -> Regions:
    """Changed and needed intervals of every occluder of one call (see the module docstring)."""
    changed = changed_regions(steps, [(corners[:, d], corners[:, d] + patch) for d in range(2)])
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
    parts: list[list[list[Interval]]] = [[[], []] for _ in range(len(steps) + 1)]
    needed: list[list[Interval]] = [[] for _ in range(len(steps) + 1)]
    needed[-1] = needed_last
    for s in range(len(steps) - 1, -1, -1):  # every reader of activation s + 1 comes later: it is complete
        if s + 1 < len(steps):
            needed[s + 1] = [_hull(parts[s + 1][d]) for d in range(2)]
        step = steps[s]
        for j in step.inputs:
            for d in range(2):
                parts[j][d].append(_intersect(_span(step, *needed[s + 1][d], d), changed[j][d]))
    needed[0] = [_hull(parts[0][d]) for d in range(2)]
    return Regions(needed, reach)


@dataclass(frozen=True)
class Windows:
    """One batch's windows: per activation, the origin of each occluder's window and the common size."""

    origin: list[list[torch.Tensor]]
    size: list[tuple[int, int]]

    @classmethod
    def fit(cls, steps: tuple[Step, ...], regions: Regions, index: torch.Tensor, corners: torch.Tensor,
            patch: int) -> Windows:
        """The smallest common window per activation holding every member's needed box (at least one
        position, so that a branch no member needs still has a well-formed window); a point-wise step
        keeps its input's window, which holds its needed box."""
        origins = [[corners[:, 0], corners[:, 1]]]
        sizes = [(patch, patch)]
        for i, step in enumerate(steps, start=1):
            if step.is_pointwise:
                origins.append(origins[step.inputs[0]])
                sizes.append(sizes[step.inputs[0]])
                continue
            extent = regions.extents(i)[index].amax(dim=0).clamp(min=1).tolist()
            sizes.append((int(extent[0]), int(extent[1])))
            origins.append([regions.needed[i][d][0][index].clamp(max=step.out_size[d] - extent[d]).clamp(min=0)
                            for d in range(2)])
        return cls(origins, sizes)


def clean_activations(steps: tuple[Step, ...], image: torch.Tensor) -> list[torch.Tensor]:
    """Activations [C, H, W] of the clean image: the input, then each step's output."""
    acts = [image]
    for step in steps:
        acts.append(run_module(step.module, [acts[j].unsqueeze(0) for j in step.inputs])[0])
    return acts


def padded_inputs(steps: tuple[Step, ...], acts: list[torch.Tensor], channels: torch.Tensor
                  ) -> list[list[torch.Tensor]]:
    """Per step and input, the clean input padded for its windows as [Hp, Wp, C] (restricted to ``channels``
    for steps reading sliced inputs); point-wise steps read their input's window and need none."""
    sliced = channel_slicing(steps)
    padded: list[list[torch.Tensor]] = []
    for s, step in enumerate(steps):
        if step.is_pointwise:
            padded.append([])
            continue
        narrow = reads_sliced(steps, sliced, s)
        padded.append([step.padded(acts[j][channels] if narrow else acts[j]) for j in step.inputs])
    return padded


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[n, C, h, w] (any memory format) as a contiguous [n, h, w, C] tensor (free when channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


def _gather(step: Step, clean: torch.Tensor, window: torch.Tensor, layout: Windows, out: int, source: int,
            needed: list[Interval], index: torch.Tensor) -> torch.Tensor:
    """The input windows [n, Lr, Lc, C] of step output ``out`` read from activation ``source``: computed
    values where the source is needed, the padded clean input ``clean`` ([Hp, Wp, C]) elsewhere.

    One row gather from the clean map and the computed windows stacked: each copied row is a run of
    channels, and the choice between the two sources is made on indices, not on values.
    """
    kernel = step.gather_kernel
    height, width, channels = clean.shape
    n, h, w, _ = window.shape
    device = index.device
    picks = []
    for d in range(2):
        length = (layout.size[out][d] - 1) * step.stride[d] + kernel[d]
        padded = layout.origin[out][d][:, None] * step.stride[d] + torch.arange(length, device=device)
        positions = padded - step.pad[d]
        lo, hi = (t[index, None] for t in needed[d])
        inner = (positions - layout.origin[source][d][:, None]).clamp(0, (h, w)[d] - 1)
        picks.append((padded, inner, (positions >= lo) & (positions < hi)))
    (rows, inner_rows, in_rows), (cols, inner_cols, in_cols) = picks
    from_clean = rows[:, :, None] * width + cols[:, None, :]
    batch = torch.arange(n, device=device)[:, None, None]
    from_window = height * width + (batch * h + inner_rows[:, :, None]) * w + inner_cols[:, None, :]
    rows_of = torch.where(in_rows[:, :, None] & in_cols[:, None, :], from_window, from_clean)
    table = torch.cat([clean.reshape(-1, channels), window.reshape(-1, channels)])
    return table[rows_of]


def run_windows(steps: tuple[Step, ...], padded: list[list[torch.Tensor]], regions: Regions, index: torch.Tensor,
                corners: torch.Tensor, patches: torch.Tensor, channels: torch.Tensor
                ) -> tuple[torch.Tensor, Windows]:
    """Last-layer windows [n, h, w, len(channels)] for the occluders ``index`` of a call, and their layout.

    ``padded`` comes from :func:`padded_inputs`; ``corners``/``patches`` are the occluders' [n, 2]
    corners and [n, 3, p, p] contents. Windows are kept channels-last ([n, h, w, C]): the gathers copy
    runs of channels, and convolutions and max-pooling run fastest on that layout on CPUs. A window is
    dropped after its last reader.
    """
    layout = Windows.fit(steps, regions, index, corners, patches.shape[-1])
    sliced = channel_slicing(steps)
    last_read = [max(readers, default=-1) for readers in consumers(steps)]
    windows: list[torch.Tensor | None] = [_nhwc(patches)[..., channels] if sliced[0] else _nhwc(patches)]
    for s, step in enumerate(steps):
        narrow = reads_sliced(steps, sliced, s)
        inputs = []
        for k, j in enumerate(step.inputs):
            window = cast(torch.Tensor, windows[j])
            if narrow and not sliced[j]:
                window = window[..., channels]
            if not step.is_pointwise:
                window = _gather(step, padded[s][k], window, layout, s + 1, j, regions.needed[j], index)
            inputs.append(window.permute(0, 3, 1, 2))
        select = sliced[s + 1] and step.selects_channels
        out = step.apply(inputs, channels if select or narrow else None, narrow)
        if sliced[s + 1] and step.mixes_channels and not select:
            out = out[:, channels]
        windows.append(_nhwc(out))
        for j in step.inputs:
            if last_read[j] == s:
                windows[j] = None
    return cast(torch.Tensor, windows[-1]), layout
