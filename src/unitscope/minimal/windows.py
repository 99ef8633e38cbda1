"""A greedy step's candidates scored from the current image's cached activations, recomputing windows.

Every candidate of a step differs from the current image inside one region's box, so up to the trunk's
end (:mod:`unitscope.minimal.split`) its activations differ from the current image's only inside a box
that grows layer by layer (:func:`unitscope.perturb.incremental.changed_regions`). Each candidate keeps
one window per activation, holding that box; candidates are grouped by the windows' sizes (a group
shares the largest, each member at its own place), and a layer's input for a group is one gather from the
current image's padded activation and the group's windows so far. Where boxes and groups stay the same
from one step to the next (all but the removed region's group), the gather indices are reused: only the
values change. The last activation's windows are gathered into whole maps, and the head (the classifier)
runs on all candidates of the step in batches. Windows run channels-last, which CPU convolutions and
pooling run fastest on.

Values equal a whole forward pass's up to float rounding (a window's convolution adds the same products,
perhaps in another order); :mod:`unitscope.minimal.choice` decides near ties with whole passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.minimal.gathers import Gather, gather_index, padded, padded_shape, region_boxes
from unitscope.minimal.split import Split
from unitscope.perturb.incremental import changed_regions
from unitscope.perturb.steps import Step, run_module

GROUP_OVERHEAD_MACS = 6e7  # what one more group costs on a CPU core (Python, kernel launches), in multiply-adds
MAX_GROUP = 64  # copies per group; fixed, so that no value depends on the caller's batch size


@dataclass(frozen=True)
class Layout:
    """One group's windows: per activation the common size and each member's origin, and the gathers."""

    sizes: list[tuple[int, int]]
    origins: list[np.ndarray]  # int64 [n, 2] per activation
    gathers: dict[tuple[int, int], Gather]  # (step, input) -> that step's input windows
    final: Gather  # the whole last activation of each member
    pixels: Gather  # the input windows, from cat(current pixels, background)

    def without(self, row: int) -> Layout:
        """This layout with member ``row`` left out (window sizes kept)."""
        keep = torch.arange(len(self.pixels.index), device=self.pixels.index.device) != row
        return Layout(self.sizes, [o[keep.cpu().numpy()] for o in self.origins],
                      {key: g.without(row) for key, g in self.gathers.items()}, self.final.without(row),
                      Gather(self.pixels.index[keep], self.pixels.clean, self.pixels.block))


class WindowScorer:
    """Logits of copies of a current image that each remove one region, the region's box known."""

    def __init__(self, split: Split, labels: np.ndarray, background: torch.Tensor) -> None:
        """``labels`` [H, W] name each pixel's region, ``background`` [3, H, W] is what a removed region shows
        (network input); a copy is named by the region it removes."""
        self.split = split
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).long().to(background.device)
        self._background = background.permute(1, 2, 0).reshape(-1, background.shape[0])  # rows [H * W, 3]
        boxes = region_boxes(labels).to(background.device)
        steps = split.steps
        self._steps = fused_steps(steps)
        readers = [0] * (len(steps) + 1)
        for step in steps:
            for j in step.inputs:
                readers[j] += 1
        self._readers = readers
        changed = changed_regions(steps, [(boxes[:, 0], boxes[:, 1]), (boxes[:, 2], boxes[:, 3])])
        self._lo = [torch.stack([a[0], b[0]], 1) for a, b in changed]  # [K, 2] per activation
        self._extent = [torch.stack([a[1] - a[0], b[1] - b[0]], 1).clamp(min=1) for a, b in changed]
        self._boxes = [np.concatenate([lo.cpu().numpy(), (lo + extent).cpu().numpy()], axis=1)
                       for lo, extent in zip(self._lo, self._extent, strict=True)]  # [K, 4] per activation
        self._groups = self._plan_groups(list(range(len(boxes))))
        self._layouts: dict[tuple[int, ...], Layout] = {}
        self._tables: dict[tuple[int, int], torch.Tensor] = {}
        self._acts: list[torch.Tensor] = []
        self._pixels: torch.Tensor | None = None
        self._runs: dict[tuple[int, ...], list[torch.Tensor | None]] = {}  # the last logits' windows, read ones
        self._removed: int | None = None  # the region removed since those windows were computed
        self._sources = sorted({0, len(steps)} | {j for step in steps if not step.is_pointwise for j in step.inputs})
        self.reuse = True  # update the last step's windows where they can be (False: recompute every window)
        self.recomputed = 0  # output positions times multiply-adds per position of window layers run, for tests

    def _map_size(self, a: int) -> tuple[int, int]:
        steps = self.split.steps
        return steps[0].in_size if a == 0 else steps[a - 1].out_size

    def _plan_groups(self, regions: list[int]) -> list[list[int]]:
        """``regions`` in groups of alike window sizes, cut where it costs least.

        Regions are sorted by their window's rows, then columns, in the layer where windows cost most, then
        by their windows' total cost. A group costs its size times the multiply-adds of its common windows
        plus ``GROUP_OVERHEAD_MACS``; the cut minimising the total over the order is found by dynamic
        programming.
        """
        weights = {s + 1: float(step.cost_per_position) for s, step in enumerate(self.split.steps)
                   if step.cost_per_position > 1}
        count = len(regions)
        if not weights:
            return [regions[start:start + MAX_GROUP] for start in range(0, count, MAX_GROUP)]
        costs = {a: w * self._extent[a].prod(dim=1).double() for a, w in weights.items()}
        own = torch.stack(list(costs.values())).sum(dim=0)
        costliest = self._extent[max(costs, key=lambda a: float(costs[a].sum()))].tolist()
        order = sorted(regions, key=lambda n: (costliest[n][0], costliest[n][1], float(own[n])))
        extents = {a: self._extent[a].tolist() for a in weights}
        best = [0.0] + [float("inf")] * count
        cut = [0] * (count + 1)
        for start in range(count):
            largest = {a: [1, 1] for a in weights}
            for stop in range(start + 1, min(count, start + MAX_GROUP) + 1):
                each = 0.0
                for a, w in weights.items():
                    h, v = extents[a][order[stop - 1]]
                    largest[a] = [max(largest[a][0], h), max(largest[a][1], v)]
                    each += w * largest[a][0] * largest[a][1]
                total = best[start] + (stop - start) * each + GROUP_OVERHEAD_MACS
                if total < best[stop]:
                    best[stop], cut[stop] = total, start
        result: list[list[int]] = []
        stop = count
        while stop > 0:
            result.append(sorted(order[cut[stop]:stop]))
            stop = cut[stop]
        return result[::-1]

    def set_current(self, acts: list[torch.Tensor], removed: int | None = None) -> None:
        """Cache the current image's activations (input first, each [1, C, h, w]).

        ``removed``: the current image is the last :meth:`logits` call's copy removing this region. Then
        the windows that call computed stay right outside that region's boxes (the copies differ from the
        new ones only there), and the next call updates them instead of recomputing them.
        """
        self._acts = acts
        self._tables = {}
        self._pixels = None
        if removed is None or self._removed is not None:  # not one removal after the windows: drop them
            self._runs, removed = {}, None
        self._removed = removed

    def _table(self, s: int, k: int) -> torch.Tensor:
        """Step ``s``'s ``k``-th clean input, padded as the layer pads, as rows [Hp * Wp, C]."""
        if (s, k) not in self._tables:
            step = self.split.steps[s]
            clean = padded(step, self._acts[step.inputs[k]])[0]
            self._tables[s, k] = clean.permute(1, 2, 0).reshape(-1, clean.shape[0])
        return self._tables[s, k]

    def logits(self, regions: torch.Tensor) -> torch.Tensor:
        """Logits [N, classes] of the copies of the current image removing ``regions`` (int64 [N])."""
        if len(regions) == 0:
            raise UsageError("no candidates to score; a greedy step needs at least one region kept")
        wanted = set(regions.tolist())
        row_of = {r: i for i, r in enumerate(regions.tolist())}
        maps, order = [], []
        runs: dict[tuple[int, ...], list[torch.Tensor | None]] = {}
        for group in self._groups:
            members = tuple(r for r in group if r in wanted)
            if not members:
                continue
            stale = self._stale(members) if self.reuse else None
            runs[members] = self._run(members) if stale is None else self._update(members, stale)
            maps.append(self._final(members, runs[members]))
            order += [row_of[r] for r in members]
        self._runs, self._removed = runs, None
        full = torch.cat(maps)  # the head runs once per MAX_GROUP copies, whatever the caller's batch size
        out = torch.cat([self.split.head(full[start:start + MAX_GROUP]) for start in range(0, len(full), MAX_GROUP)])
        result = torch.empty_like(out)
        result[torch.tensor(order, device=out.device)] = out
        return result

    def adopt(self, region: int) -> None:
        """Make the copy removing ``region`` (scored by the last :meth:`logits`) the current image: its
        windows pasted into the cached activations that windows read (equal to a whole pass's up to
        float rounding)."""
        members = next(m for m in self._runs if region in m)
        windows, layout, row = self._runs[members], self._layouts[members], members.index(region)
        acts = list(self._acts)
        for a in self._sources:
            window = windows[a]
            if window is None:
                continue
            (top, left), (rows, cols) = layout.origins[a][row].tolist(), layout.sizes[a]
            acts[a] = acts[a].clone()
            acts[a][0, :, top:top + rows, left:left + cols] = window[row].permute(2, 0, 1)
        self.set_current(acts, removed=region)

    def _layout(self, members: tuple[int, ...]) -> Layout:
        """The group's layout, from the same group's last one with a member less where there is one."""
        if members not in self._layouts:
            grown = next((m for m in self._layouts if len(m) == len(members) + 1 and set(members) < set(m)), None)
            if grown is None:
                self._layouts[members] = self._plan_layout(members)
            else:
                gone = next(r for r in grown if r not in members)
                self._layouts[members] = self._layouts[grown].without(grown.index(gone))
        return self._layouts[members]

    def _plan_layout(self, members: tuple[int, ...]) -> Layout:
        """Window sizes and origins per activation, and the gather indices, for these regions."""
        steps = self.split.steps
        chosen = torch.tensor(members, device=self._lo[0].device)
        sizes: list[tuple[int, int]] = []
        origins: list[torch.Tensor] = []
        for a in range(len(steps) + 1):
            if a > 0 and steps[a - 1].is_pointwise:
                sizes.append(sizes[steps[a - 1].inputs[0]])
                origins.append(origins[steps[a - 1].inputs[0]])
                continue
            size = self._extent[a][chosen].amax(dim=0)
            bound = torch.tensor(self._map_size(a), device=size.device) - size
            sizes.append((int(size[0]), int(size[1])))
            origins.append(torch.minimum(self._lo[a][chosen], bound).clamp(min=0))
        at = [o.cpu().numpy() for o in origins]
        gathers = {}
        for s, step in enumerate(steps):
            if step.is_pointwise:
                continue
            for k, j in enumerate(step.inputs):
                shape = padded_shape(step, self._map_size(j))
                index = gather_index(at[s + 1], sizes[s + 1], at[j], sizes[j], step.gather_kernel,
                                     step.stride, step.pad, shape)
                gathers[s, k] = Gather(self._index(index), shape[0] * shape[1], sizes[j][0] * sizes[j][1])
        whole = self._map_size(len(steps))
        index = gather_index(at[-1], whole, at[-1], sizes[-1], (1, 1), (1, 1), (0, 0), whole, whole=True)
        final = Gather(self._index(index), whole[0] * whole[1], sizes[-1][0] * sizes[-1][1])
        height, width = self._map_size(0)
        rows = origins[0][:, 0, None] + torch.arange(sizes[0][0], device=chosen.device)
        cols = origins[0][:, 1, None] + torch.arange(sizes[0][1], device=chosen.device)
        flat = rows[:, :, None] * width + cols[:, None, :]
        removed = self.labels[rows[:, :, None], cols[:, None, :]] == chosen[:, None, None]
        pixels = Gather(torch.where(removed, flat + height * width, flat), 2 * height * width, 0)
        return Layout(sizes, at, gathers, final, pixels)

    def _index(self, index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(index).to(self.labels.device)

    def _current_pixels(self) -> torch.Tensor:
        """Rows [2 * H * W, 3]: the current image's pixels, then the background's."""
        if self._pixels is None:
            current = self._acts[0][0]
            self._pixels = torch.cat([current.permute(1, 2, 0).reshape(-1, current.shape[0]), self._background])
        return self._pixels

    def _pointwise(self, step: Step, source: torch.Tensor, j: int) -> torch.Tensor:
        """A point-wise step on windows [n, h, w, C] of activation ``j`` (in place where nothing else reads it)."""
        if isinstance(step.module, nn.Identity):
            return source
        if self._readers[j] == 1 and j not in self._sources:
            return _nhwc(step.module(source.permute(0, 3, 1, 2)))
        return _nhwc(run_module(step.module, [source.permute(0, 3, 1, 2)]))

    def _run(self, members: tuple[int, ...]) -> list[torch.Tensor | None]:
        """Every window [n, h, w, C] of the copies removing ``members``; None for activations no layer reads."""
        layout = self._layout(members)
        windows = [layout.pixels(self._current_pixels())]
        for s, step in enumerate(self._steps):
            if step.is_pointwise:
                windows.append(self._pointwise(step, windows[step.inputs[0]], step.inputs[0]))
                continue
            inputs = []
            for k, j in enumerate(step.inputs):
                window = windows[j]
                table = torch.cat([self._table(s, k), window.reshape(-1, window.shape[-1])])
                inputs.append(layout.gathers[s, k](table).permute(0, 3, 1, 2))
            windows.append(_nhwc(step.apply(inputs, None, False)))
            self.recomputed += windows[-1].shape[:3].numel() * step.cost_per_position
        return [w if a in self._sources else None for a, w in enumerate(windows)]

    def _stale(self, members: tuple[int, ...]) -> list[torch.Tensor | None] | None:
        """The last call's windows of these copies when they are one removal old, else None."""
        removed = self._removed
        if removed is None or removed in members:
            return None
        if members in self._runs:
            return self._runs[members]
        grown = tuple(sorted((*members, removed)))
        if grown not in self._runs:
            return None
        keep = torch.tensor([row for row, r in enumerate(grown) if r != removed])
        return [None if w is None else w.index_select(0, keep) for w in self._runs[grown]]

    def _update(self, members: tuple[int, ...], windows: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """The windows of the copies removing ``members`` from the current image, from their windows one
        removal ago (``windows``, updated in place).

        The copy removing region s now differs from the one a step ago (which kept the region r just
        removed) only by r's pixels, so in every activation only inside r's box (its changed region). Each
        layer recomputes the part of each window that meets that box (one size per group, each member's
        part inside its window), reading the layer below's windows, already updated, and the current
        image's activations elsewhere; the rest of each window is kept. Layers where no window meets r's
        box are skipped.
        """
        layout = self._layout(members)
        removed = self._removed
        if removed is None:
            raise ValueError("no removal to update the windows for")
        windows = list(windows)
        windows[0] = layout.pixels(self._current_pixels())
        fresh: list[torch.Tensor | None] = [windows[0]] + [None] * len(self._steps)
        parts: list[tuple[np.ndarray, tuple[int, int]] | None] = [(layout.origins[0], layout.sizes[0])]
        for s, step in enumerate(self._steps):
            a = s + 1
            source = fresh[step.inputs[0]]
            if step.is_pointwise:
                part = parts[step.inputs[0]]
                out = None if source is None else self._pointwise(step, source, step.inputs[0])
            else:
                part = self._part(a, layout, removed)
                out = None if part is None else self._recompute(s, step, part, layout, windows)
            parts.append(part)
            fresh[a] = out
            window = windows[a]
            if out is not None and part is not None and window is not None:
                _paste(window, out, part[0] - layout.origins[a])
        return windows

    def _part(self, a: int, layout: Layout, removed: int) -> tuple[np.ndarray, tuple[int, int]] | None:
        """Where each member's window of activation ``a`` meets ``removed``'s box: origins [n, 2] and one
        size covering every member's meeting, inside each window; None where no window meets it."""
        origin = layout.origins[a]
        end = origin + np.asarray(layout.sizes[a])
        box = self._boxes[a][removed]
        low = np.maximum(origin, box[:2])
        extent = np.maximum(np.minimum(end, box[2:]) - low, 0).max(axis=0)
        rows, cols = int(extent[0]), int(extent[1])
        if rows == 0 or cols == 0:
            return None
        return np.minimum(low, end - extent), (rows, cols)

    def _recompute(self, s: int, step: Step, part: tuple[np.ndarray, tuple[int, int]], layout: Layout,
                   windows: list[torch.Tensor | None]) -> torch.Tensor:
        """Step ``s``'s output [n, rows, cols, C] at ``part``, from the (updated) windows it reads."""
        inputs = []
        for k, j in enumerate(step.inputs):
            window = windows[j]
            if window is None:
                raise ValueError(f"activation {j} is read but has no window")
            shape = padded_shape(self.split.steps[s], self._map_size(j))
            index = gather_index(part[0], part[1], layout.origins[j], layout.sizes[j], step.gather_kernel,
                                 step.stride, step.pad, shape)
            table = torch.cat([self._table(s, k), window.reshape(-1, window.shape[-1])])
            inputs.append(Gather(self._index(index), shape[0] * shape[1], 0)(table).permute(0, 3, 1, 2))
        out = _nhwc(step.apply(inputs, None, False))
        self.recomputed += out.shape[:3].numel() * step.cost_per_position
        return out

    def _final(self, members: tuple[int, ...], windows: list[torch.Tensor | None]) -> torch.Tensor:
        """The last activation [n, C, H, W] of the copies removing ``members``: the current image's, their
        windows pasted in."""
        last = windows[-1]
        if last is None:
            raise ValueError("the last activation has no window")
        clean = self._acts[-1][0]
        table = torch.cat([clean.permute(1, 2, 0).reshape(-1, clean.shape[0]), last.reshape(-1, last.shape[-1])])
        return self._layout(members).final(table).permute(0, 3, 1, 2).contiguous()


def _paste(window: torch.Tensor, part: torch.Tensor, offset: np.ndarray) -> None:
    """Write ``part`` [n, h, w, C] into ``window`` [n, rows, cols, C], member i's at ``offset[i]`` (rows, cols)."""
    n, rows, cols, channels = window.shape
    height, width = part.shape[1], part.shape[2]
    r = offset[:, 0, None] + np.arange(height)
    c = offset[:, 1, None] + np.arange(width)
    flat = (np.arange(n)[:, None, None] * rows + r[:, :, None]) * cols + c[:, None, :]
    index = torch.from_numpy(flat.reshape(-1)).to(window.device)
    window.view(-1, channels).index_copy_(0, index, part.reshape(-1, channels))


def fused_steps(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The steps with each batch norm that alone reads a convolution folded into it (an identity left in
    its place): one pass less over every window, the same values up to float rounding."""
    readers: list[list[int]] = [[] for _ in range(len(steps) + 1)]
    for s, step in enumerate(steps):
        for j in step.inputs:
            readers[j].append(s)
    out = list(steps)
    for s, step in enumerate(steps):
        conv = step.module
        if not isinstance(conv, nn.Conv2d) or len(readers[s + 1]) != 1:
            continue
        bn = steps[readers[s + 1][0]].module
        if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or bn.running_var is None:
            continue
        scale = (bn.weight if bn.weight is not None else 1.0) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.bias is not None else 0.0) - bn.running_mean * scale
        fused = copy.deepcopy(conv)
        with torch.no_grad():
            fused.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
            fused.bias = nn.Parameter(shift + (conv.bias * scale if conv.bias is not None else 0.0))
        out[s] = replace(step, module=fused.eval().requires_grad_(False))
        out[readers[s + 1][0]] = replace(steps[readers[s + 1][0]], module=nn.Identity())
    return tuple(out)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[n, C, h, w] (any memory format) as a contiguous [n, h, w, C] tensor (free when channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


