"""Upsampling activation maps to the label resolution, as separable interpolation matrices.

Two geometries:
- ``rf`` (default): each activation sits at the centre of its theoretical receptive field in the input,
  ``start + stride * i`` (input pixel coordinates, pixel k centred at k). A label pixel q of a map of
  ``label_side`` pixels covering an input of ``input_side`` pixels is centred at
  ``(q + 0.5) * input_side / label_side - 0.5``; its value is the linear interpolation between the two
  nearest receptive-field centres (clamped at the border). This fixes the half-field shift that a plain
  resize introduces when padding is asymmetric or the map does not tile the input exactly.
- ``bilinear``: NetDissect-Lite's plain resize (``F.interpolate(..., align_corners=False)``).

Both are products ``Wy @ A @ Wx^T`` with small dense matrices, so upsampling a whole batch of units is
two matrix multiplications.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unitscope.dissection.settings import UPSAMPLE_MODES


def interpolation_matrix(source_positions: torch.Tensor, in_size: int) -> torch.Tensor:
    """[out, in] weights of linear interpolation at fractional ``source_positions`` on an ``in_size`` grid."""
    t = source_positions.double().clamp(0, in_size - 1)
    lo = t.floor().long().clamp(max=in_size - 1)
    hi = (lo + 1).clamp(max=in_size - 1)
    frac = t - lo.double()
    weights = torch.zeros(len(t), in_size, dtype=torch.float64)
    rows = torch.arange(len(t))
    weights[rows, lo] += 1 - frac
    weights[rows, hi] += frac
    return weights


@dataclass(frozen=True)
class Upsampler:
    """Maps [B, U, h, w] activations to [B, U, sh, sw] at the label resolution."""

    rows: torch.Tensor  # [sh, h]
    cols: torch.Tensor  # [sw, w]

    @classmethod
    def build(
        cls,
        mode: str,
        feature_size: tuple[int, int],
        label_size: tuple[int, int],
        input_size: tuple[int, int],
        stride: float | None = None,
        start: float | None = None,
    ) -> Upsampler:
        """Matrices for one layer. ``rf`` needs the layer's receptive-field ``stride`` and ``start``."""
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample mode {mode!r}; use one of {UPSAMPLE_MODES}")
        mats = []
        for axis in range(2):
            n_in, n_out, side = feature_size[axis], label_size[axis], input_size[axis]
            q = torch.arange(n_out, dtype=torch.float64)
            if mode == "bilinear" or stride is None or start is None:
                source = (q + 0.5) * n_in / n_out - 0.5
            else:
                centre = (q + 0.5) * side / n_out - 0.5
                source = (centre - start) / stride
            mats.append(interpolation_matrix(source, n_in))
        return cls(mats[0].float(), mats[1].float())

    def to(self, device: torch.device | str) -> Upsampler:
        return Upsampler(self.rows.to(device), self.cols.to(device))

    def __call__(self, activations: torch.Tensor) -> torch.Tensor:
        a = activations.float()
        return torch.matmul(self.rows, torch.matmul(a, self.cols.T))
