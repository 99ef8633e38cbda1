"""Hoyer-square sparsity of a layer's activations (Kurtz et al., ICML 2020, "Inducing and exploiting
activation sparsity for fast inference on deep neural networks", the activation form of Yang, Wen & Li,
ICLR 2020, "DeepHoyer"'s Hoyer-square regulariser).

For one image's activation vector ``a`` (all units and positions of the layer), ``H_S(a) = (Σ|a|)² / Σa²``
counts, smoothly and scale-free, how many entries are active (1 when one is, ``D`` when all are equal).
We divide by ``D`` so the penalty lies in (0, 1] at every layer, and average over the batch.
"""

from __future__ import annotations

import torch

from unitscope.constraints.base import Constraint

CITATION = ("Kurtz et al., ICML 2020 (activation Hoyer regulariser); Yang, Wen & Li, ICLR 2020 (DeepHoyer: "
            "Hoyer-square)")


def hoyer_square(activations: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean over the batch of ``(Σ|a|)² / (D · Σa²)`` per image (``activations``: [B, ...])."""
    flat = activations.reshape(activations.shape[0], -1)
    l1 = flat.abs().sum(1)
    l2 = flat.pow(2).sum(1)
    return (l1.pow(2) / (flat.shape[1] * (l2 + eps))).mean()


class Sparsity(Constraint):
    citation = CITATION

    def loss(self, output: torch.Tensor) -> torch.Tensor:
        return hoyer_square(output)
