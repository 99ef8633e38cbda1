"""A greedy step's candidates scored from the current image's cached activations, recomputing windows.

Every candidate of a step (a copy of the current image with one region removed) differs from the current
image inside that region's box, so up to the trunk's end (:mod:`unitscope.minimal.split`) its activations
differ from the current image's only inside a box that grows layer by layer
(:func:`unitscope.perturb.incremental.changed_regions`). Each copy keeps one window per activation that
layers read, exactly its box, in one table per reading layer behind the current image's padded activation
(:mod:`unitscope.minimal.gathers`): a layer reads its input inside a copy's box from the copy's window and
elsewhere from the current image's activation.

What a step recomputes: a copy scored for the first time computes its whole box in every layer. A copy
scored in the step before, when the region r just removed was still there, differs from that step's copy
only by r's pixels, so in every activation only inside r's box: it recomputes, layer by layer, only where
its box meets r's box (reading the layer below, already updated) and keeps the rest of its windows. At each
layer the parts to compute are batched by size (:func:`unitscope.minimal.gathers.cut`), run channels-last,
and pasted back; the last activation's windows are read into whole maps and the head (the classifier) runs
on all copies of the step in batches of ``MAX_BATCH``. Batches follow the boxes only, never the caller's
batch size.

Values equal a whole forward pass's up to float rounding (a window's convolution adds the same products,
perhaps in another order); :mod:`unitscope.minimal.choice` decides near ties with whole passes.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.minimal.gathers import cut, padded, read_index, region_boxes, write_index
from unitscope.minimal.split import Split
from unitscope.perturb.incremental import changed_regions
from unitscope.perturb.steps import Step, run_module

MAX_BATCH = 64  # copies per kernel call and head call; fixed, so that no value depends on the caller's batch size
PART_OVERHEAD_MACS = 8e6  # what one more batch of a layer costs on a CPU core (gather, kernel call, paste)
PART_SPLITS = 2  # times a layer's batch is cut in two (by part size), at most
Batch = tuple[np.ndarray, np.ndarray, tuple[int, int]]  # copies (regions) [m], origins [m, 2], common size


class WindowScorer:
    """Logits of copies of a current image that each remove one region, the region's box known."""

    def __init__(self, split: Split, labels: np.ndarray, background: torch.Tensor) -> None:
        """``labels`` [H, W] name each pixel's region, ``background`` [3, H, W] is what a removed region shows
        (network input); a copy is named by the region it removes."""
        self.split = split
        self.labels = np.ascontiguousarray(labels).astype(np.int64)
        self.device = background.device
        self._background = background.permute(1, 2, 0).reshape(-1, background.shape[0])  # rows [H * W, 3]
        steps = split.steps
        self._steps = fused_steps(steps)
        self._readers = [0] * (len(steps) + 1)
        for step in steps:
            for j in step.inputs:
                self._readers[j] += 1
        raw = region_boxes(labels)
        changed = changed_regions(steps, [(raw[:, 0], raw[:, 1]), (raw[:, 2], raw[:, 3])])
        self._boxes: list[np.ndarray] = []  # per activation [K, 4]: top, left, bottom, right
        for a, ((rows_from, rows_to), (cols_from, cols_to)) in enumerate(changed):
            height, width = self._map_size(a)
            top, left = rows_from.clamp(0, height - 1).numpy(), cols_from.clamp(0, width - 1).numpy()
            bottom = np.maximum(rows_to.clamp(max=height).numpy(), top + 1)
            right = np.maximum(cols_to.clamp(max=width).numpy(), left + 1)
            self._boxes.append(np.stack([top, left, bottom, right], axis=1).astype(np.int64))
        self._areas = [(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) for b in self._boxes]
        self._starts = [np.concatenate([[0], np.cumsum(area)[:-1]]) for area in self._areas]
        last = len(steps)
        # The tables holding each activation's windows: one per window layer reading it, and the final map.
        self._tables_of: list[list[tuple[int, int]]] = [[] for _ in range(last + 1)]
        for s, step in enumerate(steps):
            if not step.is_pointwise:
                for k, j in enumerate(step.inputs):
                    self._tables_of[j].append((s, k))
        self._tables_of[last].append((-1, 0))
        self._tables: dict[tuple[int, int], torch.Tensor] = {}
        self._clean_rows: dict[tuple[int, int], int] = {}
        self._shapes: dict[tuple[int, int], tuple[int, int]] = {}  # each table's clean rows as a (padded) map
        self._acts: list[torch.Tensor] = []
        self._pixels: torch.Tensor | None = None
        self._valid = np.zeros(len(raw), dtype=bool)  # copies whose windows the last call computed
        self._removed: int | None = None  # the region removed since then (their windows are stale inside its boxes)
        self._fresh_clean = False  # whether the tables' clean rows hold the current image
        self._pasted: int | None = None  # the region whose boxes alone the tables' clean rows lack
        self.reuse = True  # keep windows from one step to the next (False: recompute every box)
        self.recomputed = 0  # output positions times multiply-adds per position run by window layers, for tests

    def _map_size(self, a: int) -> tuple[int, int]:
        steps = self.split.steps
        return steps[0].in_size if a == 0 else steps[a - 1].out_size

    def set_current(self, acts: list[torch.Tensor], removed: int | None = None) -> None:
        """Cache the current image's activations (input first, each [1, C, h, w]).

        ``removed``: the current image is the last :meth:`logits` call's copy removing this region. The
        windows that call computed then differ from the new copies' only inside that region's boxes, and
        the next call updates them there instead of recomputing them.
        """
        self._acts = acts
        self._fresh_clean, self._pasted = False, None
        if removed is None or self._removed is not None or not self.reuse:  # not one removal after: drop them
            self._valid[:] = False
            removed = None
        self._removed = removed

    def _refresh(self) -> None:
        """Write the current image's (padded) activations into the clean rows of every table (after
        :meth:`adopt`, only inside the boxes it pasted)."""
        if self._fresh_clean:
            return
        steps = self.split.steps
        if self._pasted is not None and self._pixels is not None:
            for a, readers in enumerate(self._tables_of):
                top, left, bottom, right = (int(v) for v in self._boxes[a][self._pasted])
                window = self._acts[a][0, :, top:bottom, left:right].permute(1, 2, 0)
                for s, k in readers:
                    step = None if s < 0 else steps[s]
                    y, x = (0, 0) if step is None or step.kernel is None else step.pad
                    clean = self._tables[s, k][:self._clean_rows[s, k]].view(*self._shapes[s, k], -1)
                    clean[top + y:bottom + y, left + x:right + x] = window
            top, left, bottom, right = (int(v) for v in self._boxes[0][self._pasted])
            height, width = self._map_size(0)
            pixels = self._pixels[:height * width].view(height, width, -1)
            pixels[top:bottom, left:right] = self._acts[0][0, :, top:bottom, left:right].permute(1, 2, 0)
            self._fresh_clean = True
            return
        for a, readers in enumerate(self._tables_of):
            for s, k in readers:
                clean = self._acts[a][0] if s < 0 else padded(steps[s], self._acts[a])[0]
                channels, height, width = clean.shape
                if (s, k) not in self._tables:
                    table = torch.empty(height * width + int(self._areas[a].sum()) + 1, channels, device=self.device)
                    self._tables[s, k], self._clean_rows[s, k] = table, height * width
                    self._shapes[s, k] = (height, width)
                self._tables[s, k][:height * width].view(height, width, channels).copy_(clean.permute(1, 2, 0))
        current = self._acts[0][0]
        self._pixels = torch.cat([current.permute(1, 2, 0).reshape(-1, current.shape[0]), self._background])
        self._fresh_clean = True

    def logits(self, regions: torch.Tensor) -> torch.Tensor:
        """Logits [N, classes] of the copies of the current image removing ``regions`` (int64 [N])."""
        if len(regions) == 0:
            raise UsageError("no candidates to score; a greedy step needs at least one region kept")
        wanted = regions.cpu().numpy().astype(np.int64)
        self._refresh()
        self._update(wanted)
        self._valid[:] = False
        self._valid[wanted] = True
        self._removed = None
        maps = self._final(wanted)
        return torch.cat([self.split.head(maps[start:start + MAX_BATCH]) for start in range(0, len(maps), MAX_BATCH)])

    def adopt(self, region: int) -> None:
        """Make the copy removing ``region`` (scored by the last :meth:`logits`) the current image: its
        windows pasted into the cached activations (equal to a whole pass's up to float rounding)."""
        if not self._valid[region]:
            raise ValueError(f"region {region} was not scored by the last call")
        acts = list(self._acts)
        for a, readers in enumerate(self._tables_of):
            if not readers:
                continue
            table = self._tables[readers[0]]
            top, left, bottom, right = (int(v) for v in self._boxes[a][region])
            start = self._clean_rows[readers[0]] + int(self._starts[a][region])
            window = table[start:start + (bottom - top) * (right - left)].view(bottom - top, right - left, -1)
            acts[a] = acts[a].clone()
            acts[a][0, :, top:bottom, left:right] = window.permute(2, 0, 1)
        tables_current = self._fresh_clean
        self.set_current(acts, removed=region)
        if tables_current:
            self._pasted = region  # the tables' clean rows differ from the new image only inside its boxes

    def _update(self, wanted: np.ndarray) -> None:
        """Bring the windows of the copies removing ``wanted`` up to date with the current image.

        A copy not scored in the last call computes its whole box; one scored then, before region r was
        removed, only where its box meets r's (elsewhere its windows hold the same values: the two copies
        differ by r's pixels only); one scored for this very image, nothing. Layer by layer, each layer
        reading the one below already updated.
        """
        removed = self._removed
        own = ~self._valid[wanted]
        fresh: list[list[tuple[Batch, torch.Tensor]]] = []
        for a in range(len(self._steps) + 1):
            step = self._steps[a - 1] if a > 0 else None
            if step is not None and step.is_pointwise:
                j = step.inputs[0]
                out = [(batch, self._pointwise(step, values, j)) for batch, values in fresh[j]]
            else:
                out = [(batch, self._compute(a, batch)) for batch in self._batches(a, wanted, own, removed)]
            fresh.append(out)
            for batch, values in out:
                self._paste(a, batch, values)

    def _batches(self, a: int, wanted: np.ndarray, own: np.ndarray, removed: int | None) -> list[Batch]:
        """The parts of activation ``a`` to compute, in batches of one size: each copy's box, or where it
        meets ``removed``'s box for copies scored before its removal."""
        boxes = self._boxes[a][wanted]
        low, high = boxes[:, :2].copy(), boxes[:, 2:].copy()
        if removed is not None:
            box = self._boxes[a][removed]
            stale = ~own
            low[stale] = np.maximum(low[stale], box[:2])
            high[stale] = np.minimum(high[stale], box[2:])
        elif not own.all():
            high[~own] = low[~own]
        extent = np.maximum(high - low, 0)
        live = np.flatnonzero(extent.min(axis=1) > 0)
        if len(live) == 0:
            return []
        weight = float(self._steps[a - 1].cost_per_position) if a > 0 else 1.0
        limit = np.asarray(self._map_size(a))
        batches = []
        for rows in cut(live, extent, weight, PART_OVERHEAD_MACS, PART_SPLITS):
            for start in range(0, len(rows), MAX_BATCH):
                chunk = np.sort(rows[start:start + MAX_BATCH])
                size = extent[chunk].max(axis=0)
                origin = np.minimum(low[chunk], limit - size)
                batches.append((wanted[chunk], origin, (int(size[0]), int(size[1]))))
        return batches

    def _compute(self, a: int, batch: Batch) -> torch.Tensor:
        """Activation ``a`` [m, rows, cols, C] of the batch's copies at its parts (the input: its pixels)."""
        regions, origin, size = batch
        if a == 0:  # the current pixels, the copy's own region showing the background
            height, width = self._map_size(0)
            rows = origin[:, 0, None] + np.arange(size[0])
            cols = origin[:, 1, None] + np.arange(size[1])
            flat = rows[:, :, None] * width + cols[:, None, :]
            hidden = self.labels[rows[:, :, None], cols[:, None, :]] == regions[:, None, None]
            picks = torch.from_numpy(np.where(hidden, flat + height * width, flat).reshape(-1)).to(self.device)
            if self._pixels is None:
                raise ValueError("no current image")
            return self._pixels.index_select(0, picks).view(len(regions), size[0], size[1], -1)
        s, step = a - 1, self._steps[a - 1]
        inputs = []
        for k, j in enumerate(step.inputs):
            table, shape = self._tables[s, k], self._shapes[s, k]
            starts = self._clean_rows[s, k] + self._starts[j][regions]
            index = read_index(origin, size, self._boxes[j][regions], starts, step.gather_kernel, step.stride,
                               step.pad, shape)
            picks = torch.from_numpy(index.reshape(-1)).to(self.device)
            inputs.append(table.index_select(0, picks).view(*index.shape, -1).permute(0, 3, 1, 2))
        out = _nhwc(step.apply(inputs, None, False))
        self.recomputed += out.shape[:3].numel() * step.cost_per_position
        return out

    def _paste(self, a: int, batch: Batch, values: torch.Tensor) -> None:
        """Write a batch's parts of activation ``a`` into the copies' windows (in every table holding them)."""
        regions, origin, size = batch
        flat = values.reshape(-1, values.shape[-1])
        for key in self._tables_of[a]:
            table = self._tables[key]
            starts = self._clean_rows[key] + self._starts[a][regions]
            index = write_index(origin, size, self._boxes[a][regions], starts, len(table) - 1)
            table.index_copy_(0, torch.from_numpy(index).to(self.device), flat)

    def _pointwise(self, step: Step, source: torch.Tensor, j: int) -> torch.Tensor:
        """A point-wise step on parts [m, h, w, C] of activation ``j`` (in place where nothing else reads it)."""
        if isinstance(step.module, nn.Identity):
            return source
        if self._readers[j] == 1:
            return _nhwc(step.module(source.permute(0, 3, 1, 2)))
        return _nhwc(run_module(step.module, [source.permute(0, 3, 1, 2)]))

    def _final(self, wanted: np.ndarray) -> torch.Tensor:
        """The last activation [N, C, H, W] of the copies removing ``wanted``: the current image's with
        their windows in."""
        a = len(self._steps)
        height, width = self._map_size(a)
        key = (-1, 0)
        origin = np.zeros((len(wanted), 2), dtype=np.int64)
        index = read_index(origin, (height, width), self._boxes[a][wanted],
                           self._clean_rows[key] + self._starts[a][wanted], (1, 1), (1, 1), (0, 0), (height, width))
        rows = torch.from_numpy(index.reshape(-1)).to(self.device)
        maps = self._tables[key].index_select(0, rows).view(len(wanted), height, width, -1)
        return maps.permute(0, 3, 1, 2).contiguous()


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
