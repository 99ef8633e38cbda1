"""Unit segmentations (Zhou et al. 2015, Fig. 9): show only where a unit fires in an image.

Every position of the unit's activation map above ``threshold`` stands for a square of the input, of
side ``field_size`` (the unit's empirical receptive field; by default the layer's theoretical one),
centred on that position's field centre (pixel k spans k ± 0.5, so a 3-pixel field at centre 2 keeps
pixels 1-3). The union of those squares is kept; the rest of the image is
dimmed. Squares are placed in network-input pixels; an image of another size is mapped proportionally.
"""

from __future__ import annotations

import numpy as np
import torch

from unitscope.errors import UsageError
from unitscope.receptive.theory import FieldGeometry


def segmentation_mask(
    activation: torch.Tensor | np.ndarray,
    threshold: float,
    geometry: FieldGeometry,
    image_size: tuple[int, int],
    field_size: float | None = None,
    input_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Bool [H, W]: pixels inside the field square of some position whose activation exceeds ``threshold``.

    Squares are drawn with a 2-d difference array (+1/-1 at their corners, then cumulative sums), so
    any number of positions costs two passes over the image; squares are clipped at the border.
    """
    act = torch.as_tensor(np.asarray(activation)).double()
    if act.ndim != 2:
        raise UsageError(f"activation must be a 2-d map [h, w], got shape {tuple(act.shape)}")
    side = float(geometry.size if field_size is None else field_size)
    if not side > 0:
        raise UsageError(f"field size must be positive, got {field_size}")
    h, w = image_size
    scale = (1.0, 1.0) if input_size is None else (h / input_size[0], w / input_size[1])
    ys, xs = (act > threshold).nonzero(as_tuple=True)
    centres = geometry.centre(ys.double(), xs.double())
    edges = []
    for d, limit in enumerate((h, w)):
        # The square covers input coordinates centre ± side/2 (pixel k spans k ± 0.5); map its edges to
        # the image and keep the pixels whose centres fall inside [low, high).
        low = (centres[d] - side / 2 + 0.5) * scale[d] - 0.5
        high = (centres[d] + side / 2 + 0.5) * scale[d] - 0.5
        edges.append((torch.ceil(low).long().clamp(0, limit).numpy(), torch.ceil(high).long().clamp(0, limit).numpy()))
    (top, bottom), (left, right) = edges
    keep = (top < bottom) & (left < right)
    top, bottom, left, right = top[keep], bottom[keep], left[keep], right[keep]
    diff = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.add.at(diff, (top, left), 1)
    np.add.at(diff, (top, right), -1)
    np.add.at(diff, (bottom, left), -1)
    np.add.at(diff, (bottom, right), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:h, :w] > 0


def unit_segmentation(
    image: np.ndarray,
    activation: torch.Tensor | np.ndarray,
    threshold: float,
    geometry: FieldGeometry,
    field_size: float | None = None,
    dim: float = 0.2,
    input_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """uint8 HxWx3: ``image`` with everything outside the unit's projected firing region dimmed by ``dim``.

    ``input_size`` is the network input size the geometry refers to (default: the image's own size).
    """
    picture = np.asarray(image)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise UsageError(f"image must be a uint8 HxWx3 array, got {picture.dtype} {picture.shape}")
    if not 0 <= dim <= 1:
        raise UsageError(f"dim must lie in [0, 1], got {dim}")
    mask = segmentation_mask(activation, threshold, geometry, picture.shape[:2], field_size, input_size)
    dimmed = np.rint(picture.astype(np.float64) * dim).astype(np.uint8)
    return np.where(mask[:, :, None], picture, dimmed)
