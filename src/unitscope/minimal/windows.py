"""A greedy step's candidates scored from the current image's cached activations, recomputing windows.

Every candidate of a step differs from the current image inside one region's box, so up to the trunk's
end (:mod:`unitscope.minimal.split`) its activations differ from the current image's only inside a box
that grows layer by layer (:func:`unitscope.perturb.incremental.changed_regions`). Early layers, whose
maps are large and whose changed boxes are small, are computed in windows: candidates are grouped with
their neighbours (:func:`groups`) and a group shares one window per activation, the hull of its members'
boxes at one place, so a layer's input is a slice of the current image's padded activation with the
group's windows pasted in (slices only, no per-copy gathers). From the first activation where changed
boxes cover a good share of the map (``SWITCH_FRACTION``) on, windows save little and small convolutions
run slowly, so every candidate's whole map is pasted together and the rest of the trunk and the head run
as ordinary batches. Everything runs channels-last, which CPU convolutions run fastest on.

Values equal a whole forward pass's up to float rounding (a window's convolution adds the same products,
perhaps in another order); :mod:`unitscope.minimal.choice` decides near ties with whole passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from unitscope.errors import UsageError
from unitscope.minimal.split import Split
from unitscope.perturb.incremental import changed_regions
from unitscope.perturb.steps import Step, run_module

SWITCH_FRACTION = 0.25  # mean share of a map that changed boxes cover, from which whole maps are computed
BATCH_OVERHEAD_MACS = 2e7  # what one more window group costs on a CPU core (Python, kernel launches)
Patches = Callable[[torch.Tensor, tuple[int, int], tuple[int, int]], torch.Tensor]
CHANNELS_LAST = torch.channels_last


class WindowScorer:
    """Logits of copies of a current image that each differ from it inside one box."""

    def __init__(self, split: Split, batch_size: int) -> None:
        self.split = split
        self.batch_size = batch_size
        steps = split.steps
        self._acts: list[torch.Tensor] = []
        self._clean: dict[int, list[torch.Tensor]] = {}
        self._costs = {s + 1: float(step.cost_per_position) for s, step in enumerate(steps)
                       if step.cost_per_position > 1}
        # activation a is a cut when no step after it reads an earlier activation
        self._cuts = [all(j >= a for step in steps[a:] for j in step.inputs) for a in range(len(steps) + 1)]

    def set_current(self, acts: list[torch.Tensor]) -> None:
        """Cache the current image's activations (input first, each [1, C, h, w])."""
        self._acts = acts
        self._clean = {}

    def _padded(self, s: int) -> list[torch.Tensor]:
        """Step ``s``'s clean inputs [1, C, Hp, Wp], padded as the layer pads (``-inf`` for max pooling)."""
        if s not in self._clean:
            step = self.split.steps[s]
            self._clean[s] = [_padded(step, self._acts[j]).contiguous(memory_format=CHANNELS_LAST)
                              for j in step.inputs]
        return self._clean[s]

    def switch(self, per_layer: list[list[list[int]]]) -> int:
        """The activation from which whole maps are computed: the first cut whose changed boxes cover on
        average ``SWITCH_FRACTION`` of the map (the trunk's end if none does)."""
        steps = self.split.steps
        for a in range(len(steps) + 1):
            if not self._cuts[a]:
                continue
            height, width = steps[0].in_size if a == 0 else steps[a - 1].out_size
            share = sum((b[1] - b[0]) * (b[3] - b[2]) for b in per_layer[a]) / (len(per_layer[a]) * height * width)
            if share >= SWITCH_FRACTION:
                return a
        return len(steps)

    def logits(self, boxes: torch.Tensor, patches: Patches) -> torch.Tensor:
        """Logits [N, classes] for copies changed inside ``boxes`` (int64 [N, 4]: top, bottom, left, right).

        ``patches(index, corner, size)`` gives copies ``index``' normalised pixels [n, 3, rows, columns] in
        the rectangle of that size at that (top, left) corner.
        """
        if len(boxes) == 0:
            raise UsageError("no candidates to score; a greedy step needs at least one region kept")
        steps = self.split.steps
        layers = changed_regions(steps, [(boxes[:, 0], boxes[:, 1]), (boxes[:, 2], boxes[:, 3])])
        per_layer = [torch.stack([a[0], a[1], b[0], b[1]], 1).tolist() for a, b in layers]  # [L + 1][N][4]
        switch = self.switch(per_layer)
        costs = {a: c for a, c in self._costs.items() if a <= switch}
        order: list[int] = []
        maps = []
        for members in groups(per_layer, costs, self.batch_size):
            index = torch.tensor(members, device=boxes.device)
            hulls = [_hull([layer[m] for m in members]) for layer in per_layer[: switch + 1]]
            maps.append(self._windows(index, hulls, patches))
            order += members
        full = torch.cat(maps)
        outs = [self._rest(full[start:start + self.batch_size], switch)
                for start in range(0, len(full), self.batch_size)]
        out = torch.cat(outs)
        result = torch.empty_like(out)
        result[torch.tensor(order, device=out.device)] = out
        return result

    def _windows(self, index: torch.Tensor, hulls: list[list[int]], patches: Patches) -> torch.Tensor:
        """Activation ``len(hulls) - 1`` [n, C, h, w] of copies ``index``, their changes lying in ``hulls``."""
        steps = self.split.steps
        top, bottom, left, right = hulls[0]
        windows = [patches(index, (top, left), (bottom - top, right - left))]
        for s in range(len(hulls) - 1):
            step = steps[s]
            if step.is_pointwise:
                windows.append(run_module(step.module, [windows[step.inputs[0]]]))
                continue
            inputs = [_input(step, clean, windows[j], hulls[j], hulls[s + 1])
                      for clean, j in zip(self._padded(s), step.inputs, strict=True)]
            windows.append(step.apply(inputs, None, False))
        top, bottom, left, right = hulls[-1]
        full = self._acts[len(hulls) - 1].expand(len(index), -1, -1, -1)
        full = full.clone(memory_format=CHANNELS_LAST)  # a copy even where expand and layout change nothing
        full[:, :, top:bottom, left:right] = windows[-1]
        return full

    def _rest(self, x: torch.Tensor, switch: int) -> torch.Tensor:
        """The trunk from activation ``switch`` (a cut) on, and the head, on whole maps ``x``."""
        steps = self.split.steps
        acts: dict[int, torch.Tensor] = {switch: x}
        for s in range(switch, len(steps)):
            acts[s + 1] = run_module(steps[s].module, [acts[j] for j in steps[s].inputs])
        out: torch.Tensor = self.split.head(acts[len(steps)].contiguous())
        return out


def _input(step: Step, clean: torch.Tensor, window: torch.Tensor, source: list[int], box: list[int]
           ) -> torch.Tensor:
    """The padded input [n, C, ...] that output window ``box`` reads: the clean slice with ``window`` (at
    ``source`` in the unpadded input) pasted over it."""
    kernel, stride, pad = step.gather_kernel, step.stride, step.pad
    spans = [(box[2 * d] * stride[d], (box[2 * d + 1] - 1) * stride[d] + kernel[d]) for d in range(2)]
    base = clean[:, :, spans[0][0]:spans[0][1], spans[1][0]:spans[1][1]]
    base = base.expand(window.shape[0], -1, -1, -1).clone(memory_format=CHANNELS_LAST)
    cuts = []
    for d in range(2):
        start = source[2 * d] + pad[d]  # the window's first position in padded coordinates
        cuts.append((max(start, spans[d][0]), min(source[2 * d + 1] + pad[d], spans[d][1]), start, spans[d][0]))
    (r0, r1, rs, rb), (c0, c1, cs, cb) = cuts
    if r0 < r1 and c0 < c1:
        base[:, :, r0 - rb:r1 - rb, c0 - cb:c1 - cb] = window[:, :, r0 - rs:r1 - rs, c0 - cs:c1 - cs]
    return base


def _padded(step: Step, clean: torch.Tensor) -> torch.Tensor:
    """A step's clean input [1, C, Hp, Wp], padded as the layer pads (``-inf`` for max pooling)."""
    if step.kernel is None:
        return clean
    pad_value = float("-inf") if isinstance(step.module, torch.nn.MaxPool2d) else 0.0
    pads = []
    for d in (1, 0):
        trailing = (step.out_size[d] - 1) * step.stride[d] + step.kernel[d] - step.pad[d] - step.in_size[d]
        pads += [step.pad[d], max(0, trailing)]
    return F.pad(clean, pads, value=pad_value)


def _hull(boxes: list[list[int]]) -> list[int]:
    """The smallest box (top, bottom, left, right) holding every box given; at least one position."""
    top, left = min(b[0] for b in boxes), min(b[2] for b in boxes)
    return [top, max(max(b[1] for b in boxes), top + 1), left, max(max(b[3] for b in boxes), left + 1)]


def groups(per_layer: list[list[list[int]]], costs: dict[int, float], batch_size: int) -> list[list[int]]:
    """Copies in groups of nearby boxes: a serpentine order over bands of rows, cut where it costs least.

    ``per_layer[a][n]`` is copy n's changed box in activation a; ``costs[a]`` the multiply-adds per
    position of the convolution writing activation a. A group costs its size times its hull windows'
    multiply-adds, plus ``BATCH_OVERHEAD_MACS``; the cut minimising the total over the order is found by
    dynamic programming (at most ``batch_size`` per group).
    """
    boxes = per_layer[0]
    count = len(boxes)
    height = max(b[1] for b in boxes)
    bands = max(1, round((count / 3) ** 0.5))
    centre = [((b[0] + b[1]) / 2, (b[2] + b[3]) / 2) for b in boxes]
    band = [min(int(r / height * bands), bands - 1) for r, _ in centre]
    order = sorted(range(count), key=lambda n: (band[n], centre[n][1] if band[n] % 2 == 0 else -centre[n][1]))
    best = [0.0] + [float("inf")] * count
    cut = [0] * (count + 1)
    for start in range(count):
        hull: dict[int, list[int]] = {}
        for stop in range(start + 1, min(count, start + batch_size) + 1):
            area = 0.0
            for layer, weight in costs.items():
                b = per_layer[layer][order[stop - 1]]
                h = hull.get(layer, b)
                h = [min(h[0], b[0]), max(h[1], b[1]), min(h[2], b[2]), max(h[3], b[3])]
                hull[layer] = h
                area += weight * max(1, h[1] - h[0]) * max(1, h[3] - h[2])
            total = best[start] + (stop - start) * area + BATCH_OVERHEAD_MACS
            if total < best[stop]:
                best[stop], cut[stop] = total, start
    result: list[list[int]] = []
    stop = count
    while stop > 0:
        result.append(sorted(order[cut[stop]:stop]))
        stop = cut[stop]
    return result[::-1]
