"""Where a window layer's input comes from: rows of one table holding a padded activation and windows.

Each copy of the current image (one region removed) keeps, per activation, a window over its own box
(the positions where its activation can differ from the current image's), stored row-major in a table
after the current image's padded activation: ``[clean rows | every copy's window | one spare row]``. A
window layer's output at some positions of a copy reads, per position, a patch of the padded input: inside
the copy's box from its window, elsewhere from the clean rows. :func:`read_index` names those rows, so a
layer's input for many copies is one ``index_select``; :func:`write_index` names where outputs go back.
The index arithmetic is NumPy: small arrays, made per layer and batch of every greedy step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from unitscope.perturb.steps import Step

Box = np.ndarray  # int64 [n, 4]: top, left, bottom, right (bottom and right exclusive), map coordinates


def read_index(origin: np.ndarray, size: tuple[int, int], boxes: Box, starts: np.ndarray, kernel: tuple[int, int],
               stride: tuple[int, int], pad: tuple[int, int], padded: tuple[int, int]) -> np.ndarray:
    """Table rows [n, rows, cols] that outputs ``size`` at ``origin`` [n, 2] read: padded input positions from
    ``origin * stride`` on, from copy i's window (box ``boxes[i]``, first row ``starts[i]``) inside its box,
    from the clean rows (the padded input, ``padded`` in size, row-major) elsewhere."""
    picks = []
    for d in range(2):
        positions = origin[:, d, None] * stride[d] + np.arange((size[d] - 1) * stride[d] + kernel[d])
        at = positions - pad[d]
        inside = (at >= boxes[:, d, None]) & (at < boxes[:, d + 2, None])
        inner = np.minimum(np.maximum(at - boxes[:, d, None], 0), (boxes[:, d + 2] - boxes[:, d] - 1)[:, None])
        picks.append((positions, inner, inside))
    (rows, inner_rows, in_rows), (cols, inner_cols, in_cols) = picks
    clean = rows[:, :, None] * padded[1] + cols[:, None, :]
    width = (boxes[:, 3] - boxes[:, 1])[:, None, None]
    window = starts[:, None, None] + inner_rows[:, :, None] * width + inner_cols[:, None, :]
    index: np.ndarray = np.where(in_rows[:, :, None] & in_cols[:, None, :], window, clean)
    return index


def write_index(origin: np.ndarray, size: tuple[int, int], boxes: Box, starts: np.ndarray, spare: int
                ) -> np.ndarray:
    """Table rows [n * rows * cols] where outputs ``size`` at ``origin`` [n, 2] belong: copy i's window row
    inside its box, row ``spare`` (never read) outside it."""
    rows = origin[:, 0, None] + np.arange(size[0]) - boxes[:, 0, None]
    cols = origin[:, 1, None] + np.arange(size[1]) - boxes[:, 1, None]
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    inside = ((rows >= 0) & (rows < height[:, None]))[:, :, None] & ((cols >= 0) & (cols < width[:, None]))[:, None, :]
    index = starts[:, None, None] + rows[:, :, None] * width[:, None, None] + cols[:, None, :]
    out: np.ndarray = np.where(inside, index, spare).reshape(-1)
    return out


def cut(rows: np.ndarray, extent: np.ndarray, weight: float, overhead: float, splits: int) -> list[np.ndarray]:
    """``rows`` in batches that each share their largest extent (``extent[rows]``: [n, 2]): sorted by rows or
    by columns, whichever cuts better, and cut in two where that saves more than ``overhead`` multiply-adds
    (``weight`` per position); each half again while ``splits`` lasts."""
    count = len(rows)
    e = extent[rows]
    whole = count * float(e[:, 0].max()) * float(e[:, 1].max()) * weight
    if splits == 0 or count < 2 or whole <= overhead:  # no cut can save more than a batch costs
        return [rows]
    best, order, at = whole, rows, 0
    k = np.arange(1, count)
    for d in range(2):
        sort = np.lexsort((-e[:, 1 - d], -e[:, d]))
        s = e[sort]
        before = np.maximum.accumulate(s[:, 1 - d])[:-1]  # the other extent's largest among the first k
        after = np.maximum.accumulate(s[::-1, 1 - d])[::-1][1:]  # among the rest
        cost = (k * s[0, d] * before + (count - k) * s[1:, d] * after) * weight + overhead
        i = int(np.argmin(cost))
        if cost[i] < best:
            best, order, at = float(cost[i]), rows[sort], i + 1
    if at == 0:
        return [rows]
    return cut(order[:at], extent, weight, overhead, splits - 1) + cut(order[at:], extent, weight, overhead, splits - 1)


def padded(step: Step, clean: torch.Tensor) -> torch.Tensor:
    """A step's clean input [1, C, Hp, Wp], padded as the layer pads (``-inf`` for max pooling)."""
    if step.kernel is None:
        return clean
    pad_value = float("-inf") if isinstance(step.module, torch.nn.MaxPool2d) else 0.0
    pads = []
    for d in (1, 0):
        trailing = (step.out_size[d] - 1) * step.stride[d] + step.kernel[d] - step.pad[d] - step.in_size[d]
        pads += [step.pad[d], max(0, trailing)]
    return F.pad(clean, pads, value=pad_value)


def region_boxes(labels: np.ndarray) -> torch.Tensor:
    """int64 [K, 4]: each region's bounding box (top, bottom, left, right; bottom and right exclusive)."""
    count = int(labels.max()) + 1
    rows = np.broadcast_to(np.arange(labels.shape[0])[:, None], labels.shape).ravel()
    cols = np.broadcast_to(np.arange(labels.shape[1])[None, :], labels.shape).ravel()
    flat = labels.ravel()
    boxes = np.zeros((count, 4), dtype=np.int64)
    boxes[:, 0] = labels.shape[0]
    boxes[:, 2] = labels.shape[1]
    np.minimum.at(boxes[:, 0], flat, rows)
    np.maximum.at(boxes[:, 1], flat, rows + 1)
    np.minimum.at(boxes[:, 2], flat, cols)
    np.maximum.at(boxes[:, 3], flat, cols + 1)
    return torch.from_numpy(boxes)
