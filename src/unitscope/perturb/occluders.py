"""Where occluders go, what they contain, and which of them can reach a unit.

The grid follows Captum's ``Occlusion``: top-left corners at ``0, stride, 2*stride, …`` while the patch
still fits, so ``gy = (H - patch) // stride + 1``. Fills live in the network's normalised input space:
``zeros`` is the dataset mean colour, ``random`` draws uniform RGB pixels in [0, 1] and normalises them
with the given mean and std (Zhou et al.'s random-pixel occluders), a tensor is used as given. The random
patch at grid position k depends only on ``(seed, k)``, never on which positions are run or in what batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unitscope.errors import UsageError
from unitscope.receptive.theory import FieldGeometry

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
FILLS: tuple[str, ...] = ("random", "zeros")


@dataclass(frozen=True)
class OccluderGrid:
    """Square occluders of side ``patch`` slid with ``stride`` over an image of ``image_size``."""

    image_size: tuple[int, int]
    patch: int
    stride: int

    @classmethod
    def build(cls, image_size: tuple[int, int], patch: int, stride: int) -> OccluderGrid:
        """Validated grid; a patch larger than the image or a non-positive stride is a usage error."""
        h, w = image_size
        if isinstance(patch, bool) or not isinstance(patch, int) or patch <= 0:
            raise UsageError(f"occluder patch must be a positive integer, got {patch!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride <= 0:
            raise UsageError(f"occluder stride must be a positive integer, got {stride!r}")
        if patch > min(h, w):
            raise UsageError(f"occluder patch {patch} is larger than the {h}x{w} image; use --patch <= {min(h, w)}")
        return cls((h, w), patch, stride)

    @property
    def shape(self) -> tuple[int, int]:
        """(gy, gx): occluder positions per column and per row."""
        return tuple((side - self.patch) // self.stride + 1 for side in self.image_size)  # type: ignore[return-value]

    def corners(self) -> torch.Tensor:
        """[gy*gx, 2] int64 top-left corners (y0, x0), row-major."""
        gy, gx = self.shape
        ys = torch.arange(gy) * self.stride
        xs = torch.arange(gx) * self.stride
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def occluder_patches(
    fill: str | torch.Tensor,
    grid: OccluderGrid,
    seed: int = 0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Patches for every grid position: [gy*gx, 3, p, p] for ``random``, else [1, 3, p, p] (shared)."""
    p = grid.patch
    if isinstance(fill, torch.Tensor):
        try:
            return fill.detach().float().expand(3, p, p).reshape(1, 3, p, p).clone()
        except RuntimeError as err:
            raise UsageError(f"fill tensor of shape {tuple(fill.shape)} does not broadcast to 3x{p}x{p}") from err
    if fill == "zeros":
        return torch.zeros(1, 3, p, p)
    if fill == "random":
        gy, gx = grid.shape
        generator = torch.Generator().manual_seed(int(seed))
        pixels = torch.rand(gy * gx, 3, p, p, generator=generator)
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        return (pixels - m) / s
    raise UsageError(f"unknown occluder fill {fill!r}; use one of {', '.join(FILLS)} or a tensor")


def relevant_positions(geometry: FieldGeometry, peaks: torch.Tensor, grid: OccluderGrid) -> torch.Tensor:
    """[U, gy, gx] bool: occluders that overlap the theoretical field of each unit's peak.

    Elsewhere the unit's activation cannot change, so its discrepancy there is exactly 0.
    """
    masks = []
    for dim, count in enumerate(grid.shape):
        axis = geometry.axis(dim)
        centre = axis.start + axis.stride * peaks[:, dim].double()
        half = (axis.size - 1) / 2
        first = (torch.arange(count) * grid.stride).double()
        last = first + grid.patch - 1
        masks.append((first[None, :] <= centre[:, None] + half) & (last[None, :] >= centre[:, None] - half))
    return masks[0][:, :, None] & masks[1][:, None, :]


def grid_to_pixels(maps: torch.Tensor, grid: OccluderGrid) -> torch.Tensor:
    """[U, gy, gx] occluder values → [U, H, W]: each pixel averages the occluders covering it.

    This is Captum's ``Occlusion`` attribution (sum over covering windows / their count); pixels no
    occluder covers (a border narrower than the stride) get 0.
    """
    h, w = grid.image_size
    ones = torch.ones(1, 1, grid.patch, grid.patch, dtype=maps.dtype, device=maps.device)
    values = maps.unsqueeze(1)
    total = F.conv_transpose2d(values, ones, stride=grid.stride)
    count = F.conv_transpose2d(torch.ones_like(values[:1]), ones, stride=grid.stride)
    pad = (0, w - total.shape[-1], 0, h - total.shape[-2])
    total, count = F.pad(total, pad), F.pad(count, pad)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total)).squeeze(1)
