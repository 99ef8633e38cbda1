"""Concept whitening (Chen, Bei & Rudin, Nature Machine Intelligence 2020): a BatchNorm's stand-in that
decorrelates and standardises a layer's channels (ZCA whitening) and then rotates them with an orthogonal
matrix whose first axes the training aligns with chosen concepts (``unitscope.constraints.whitening``).

Here whitening is exact ZCA from an eigendecomposition (the paper's code approximates it with IterNorm's
Newton iterations), so the whitened batch's covariance is the identity up to ``eps``. The module applies
``z = Rᵀ W (x − μ)`` as one 1×1 convolution: it is point-wise in space, so receptive-field tracing, the
layout probe and the occlusion engine see an ordinary convolution, and the layer names stay those of the
BatchNorm it replaces (``conv5.1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BUFFER_PREFIX = "cw_"  # buffers kept in float32 when a checkpoint stores the rest as float16 (models/builtin.py)


def zca_matrix(cov: torch.Tensor, eps: float) -> torch.Tensor:
    """``(cov + eps·I)^(-1/2)`` from a symmetric eigendecomposition, computed in float64."""
    wide = cov.double()
    wide = (wide + wide.T) / 2 + eps * torch.eye(wide.shape[0], dtype=torch.float64, device=wide.device)
    values, vectors = torch.linalg.eigh(wide)
    matrix: torch.Tensor = (vectors * values.clamp_min(eps).rsqrt()) @ vectors.T
    return matrix


class ConceptWhitening(nn.Module):
    """ZCA whitening with running estimates, then the rotation ``cw_rotation`` (a buffer, orthogonal).

    Training mode whitens with the batch's mean and covariance (gradients flow through them, as through a
    BatchNorm's) and updates the running estimates; eval mode uses the running ones. The rotation is not a
    parameter: the optimiser never touches it; ``rotate`` changes it by a Cayley transform.
    """

    cw_mean: torch.Tensor
    cw_cov: torch.Tensor
    cw_rotation: torch.Tensor
    cw_steps: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.register_buffer(f"{BUFFER_PREFIX}mean", torch.zeros(num_features))
        self.register_buffer(f"{BUFFER_PREFIX}cov", torch.eye(num_features))
        self.register_buffer(f"{BUFFER_PREFIX}rotation", torch.eye(num_features))
        self.register_buffer(f"{BUFFER_PREFIX}steps", torch.zeros((), dtype=torch.long))

    def reset_running_stats(self) -> None:
        """Identity statistics and rotation (what a random twin of the network starts from)."""
        self.cw_mean.zero_()
        self.cw_cov.copy_(torch.eye(self.num_features))
        self.cw_rotation.copy_(torch.eye(self.num_features))
        self.cw_steps.zero_()

    def batch_statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and covariance over batch and positions, in float64 ([C], [C, C])."""
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
        mean = flat.mean(1)
        centred = flat - mean[:, None]
        return mean, centred @ centred.T / flat.shape[1]

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """``W (x − μ)`` before the rotation (the axes the alignment step reads)."""
        return self._transform(x, rotate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._transform(x, rotate=True)

    def _transform(self, x: torch.Tensor, rotate: bool) -> torch.Tensor:
        if self.training:
            mean, cov = self.batch_statistics(x)
            with torch.no_grad():
                self.cw_mean.lerp_(mean.detach().to(self.cw_mean.dtype), self.momentum)
                self.cw_cov.lerp_(cov.detach().to(self.cw_cov.dtype), self.momentum)
                self.cw_steps += 1
        else:
            mean, cov = self.cw_mean.double(), self.cw_cov.double()
        matrix = zca_matrix(cov, self.eps)
        if rotate:
            matrix = self.cw_rotation.double().T @ matrix
        bias = -(matrix @ mean)
        return F.conv2d(x, matrix.to(x.dtype)[:, :, None, None], bias.to(x.dtype))

    @torch.no_grad()
    def rotate(self, gradient: torch.Tensor, step: float) -> None:
        """One Cayley step on the Stiefel manifold (Wen & Yin 2013, as the paper): with ``G`` the loss's
        gradient in ``R`` and ``A = G Rᵀ − R Gᵀ`` (skew-symmetric), ``R ← (I + η/2 A)⁻¹ (I − η/2 A) R``,
        which keeps ``R`` orthogonal."""
        rotation = self.cw_rotation.double()
        grad = gradient.double()
        skew = grad @ rotation.T - rotation @ grad.T
        eye = torch.eye(self.num_features, dtype=torch.float64, device=rotation.device)
        updated = torch.linalg.solve(eye + step / 2 * skew, (eye - step / 2 * skew) @ rotation)
        self.cw_rotation.copy_(updated.to(self.cw_rotation.dtype))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
