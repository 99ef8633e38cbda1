"""Where a window layer's input windows come from: gather indices into a padded activation and windows.

A window of a layer's output reads, per position, a patch of the padded input; positions inside the
copy's own input window come from that window, the rest from the current image's activation (the same
for every copy). :func:`gather_index` names those rows once, so a layer's input for many copies is one
``index_select``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unitscope.perturb.steps import Step


@dataclass(frozen=True)
class Gather:
    """Rows [n, rows, cols] of ``cat(clean table of ``clean`` rows, n windows of ``block`` rows each)``."""

    index: torch.Tensor
    clean: int
    block: int

    def without(self, row: int) -> Gather:
        """The same gather with member ``row`` left out (later members' windows move up a block)."""
        keep = torch.arange(len(self.index), device=self.index.device) != row
        index = self.index[keep]
        moved = index >= self.clean + (row + 1) * self.block
        return Gather(torch.where(moved, index - self.block, index), self.clean, self.block)

    def __call__(self, table: torch.Tensor) -> torch.Tensor:
        n, rows, cols = self.index.shape
        return table.index_select(0, self.index.reshape(-1)).view(n, rows, cols, table.shape[1])


def gather_index(out_origin: np.ndarray, out_size: tuple[int, int], in_origin: np.ndarray,
                 in_size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                 padded: tuple[int, int], whole: bool = False) -> np.ndarray:
    """Rows of ``cat(clean table, windows)`` that output windows read: int64 [n, rows, cols].

    Output window n starts at ``out_origin[n]`` and reads padded input positions from ``origin * stride``
    on; those inside input window n (at ``in_origin[n]``, size ``in_size``) come from the window, the rest
    from the clean table (the padded input, ``padded`` in size, row-major). ``whole``: the output is the
    whole map. NumPy, not torch: these are small arrays, made once per layer and group of every step.
    """
    n = len(in_origin)
    picks = []
    for d in range(2):
        length = (out_size[d] - 1) * stride[d] + kernel[d]
        start = np.zeros(n, dtype=np.int64) if whole else out_origin[:, d] * stride[d]
        positions = start[:, None] + np.arange(length)
        inner = positions - pad[d] - in_origin[:, d, None]
        inside = (inner >= 0) & (inner < in_size[d])
        picks.append((positions, np.minimum(np.maximum(inner, 0), in_size[d] - 1), inside))
    (rows, inner_rows, in_rows), (cols, inner_cols, in_cols) = picks
    clean_rows = rows[:, :, None] * padded[1] + cols[:, None, :]
    member = np.arange(n)[:, None, None]
    window_rows = padded[0] * padded[1] + (member * in_size[0] + inner_rows[:, :, None]) * in_size[1] \
        + inner_cols[:, None, :]
    index: np.ndarray = np.where(in_rows[:, :, None] & in_cols[:, None, :], window_rows, clean_rows)
    return index


def padded_shape(step: Step, size: tuple[int, int]) -> tuple[int, int]:
    """The size of a step's input once padded as the layer pads (see :func:`_padded`)."""
    if step.kernel is None:
        return size
    out = []
    for d in range(2):
        trailing = (step.out_size[d] - 1) * step.stride[d] + step.kernel[d] - step.pad[d] - step.in_size[d]
        out.append(size[d] + step.pad[d] + max(0, trailing))
    return out[0], out[1]


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
