"""The concept vectors applied before upsampling, not after: the same scores at a fraction of the work.

``segment`` upsamples every unit of every layer to the label resolution, standardises and then takes each
concept's ``w_c·x + b_c`` per pixel: D maps of sh×sw per image (256 × 56 × 56 for the scene net's conv5 +
pool5). Every step before the argmax is linear: a layer's upsampling is ``R A Cᵀ`` (separable matrices,
:class:`~unitscope.dissection.upsample.Upsampler`) and standardising is ``(x − μ) / σ``, so

    score_c = Σ_layers R (Σ_d (w_cd / σ_d) A_d) Cᵀ + (b_c − Σ_d w_cd μ_d / σ_d)

projects each layer's D native maps onto C+1 concept maps first and upsamples only those. A region's mean
standardised feature, which ranks the units behind a box, is ``(⟨Rᵀ m C, A_d⟩ / |m| − μ_d) / σ_d`` for its
mask ``m``: one small product per layer, never the full-resolution features. The numbers equal ``segment``'s
up to float rounding (``tests/test_see.py`` checks them against that reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unitscope.analysis.segment.vectors import ConceptVectors
from unitscope.dissection.upsample import Upsampler


class ConceptProjection:
    """``scores(activations)`` [B, sh, sw, C+1] and ``region_means(...)`` [R, D] from the layers' native maps."""

    def __init__(self, vectors: ConceptVectors, upsamplers: Sequence[Upsampler], device: torch.device) -> None:
        weights = torch.from_numpy(np.asarray(vectors.weights, np.float32)).to(device)  # [C+1, D]
        mean = torch.from_numpy(np.asarray(vectors.mean, np.float32)).to(device)
        std = torch.from_numpy(np.asarray(vectors.std, np.float32)).to(device)
        scaled = weights / std  # w_cd / σ_d
        self.bias = torch.from_numpy(np.asarray(vectors.bias, np.float32)).to(device) - scaled @ mean
        self.upsamplers = [u.to(device) for u in upsamplers]
        self.mean, self.std = mean.double(), std.double()
        self.parts: list[torch.Tensor] = []  # per layer: its columns of w / σ
        start = 0
        for width in vectors.widths:
            self.parts.append(scaled[:, start:start + width].contiguous())
            start += width

    def scores(self, activations: Sequence[torch.Tensor]) -> torch.Tensor:
        """Every concept's score per pixel [B, sh, sw, C+1], as ``concept_scores(standardised(upsampled))``."""
        total: torch.Tensor | None = None
        for part, upsampler, activation in zip(self.parts, self.upsamplers, activations, strict=True):
            b, _, h, w = activation.shape
            projected = (part @ activation.float().flatten(2)).view(b, -1, h, w)  # [B, C+1, h, w]
            up = upsampler(projected)  # [B, C+1, sh, sw]
            total = up if total is None else total.add_(up)
        if total is None:
            raise ValueError("no layers to score")
        total.add_(self.bias[None, :, None, None])
        return total.permute(0, 2, 3, 1)  # a view: the concepts stay the slow axis in memory

    def region_means(self, activations: Sequence[torch.Tensor], images: torch.Tensor,
                     masks: torch.Tensor) -> torch.Tensor:
        """[R, D] (float64): each region's mean standardised feature; ``images`` [R] its image in the batch,
        ``masks`` [R, sh, sw] bool its pixels."""
        weight = masks.double()
        pixels = weight.flatten(1).sum(dim=1).clamp_min(1)[:, None]  # [R, 1]
        means = torch.empty(len(masks), int(self.mean.numel()), dtype=torch.float64, device=masks.device)
        start = 0
        for upsampler, activation in zip(self.upsamplers, activations, strict=True):
            # Rᵀ m C: how much each native cell contributes to the region's upsampled pixels
            field = (upsampler.rows.double().T @ weight @ upsampler.cols.double()).flatten(1)  # [R, h·w]
            width = int(activation.shape[1])
            for j in torch.unique(images).tolist():  # one product per image of the batch
                rows = (images == j).nonzero()[:, 0]
                native = activation[j].double().flatten(1)  # [D_l, h·w]
                means[rows, start:start + width] = field[rows] @ native.T
            start += width
        return (means / pixels - self.mean) / self.std
