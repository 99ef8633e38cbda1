"""Interpretable filters: Zhang, Wu & Zhu, CVPR 2018, "Interpretable convolutional neural networks", Sec. 3.1.

Each filter's ``n × n`` map ``x`` (after the ReLU) is scored against ``n² + 1`` templates: a positive one
per position ``μ``, ``T⁺_μ(i) = τ · max(1 − β‖i − μ‖₁ / n, −1)``, and the negative ``T⁻ = −τ``
(``τ = 0.5 / n²``, ``β = 4``, the paper's values), with prior ``p(T⁻) = 1 − α``, ``p(T⁺_μ) = α / n²``,
``α = n² / (1 + n²)``. ``p(x | T) = exp(tr(x · T)) / Z_T`` with ``Z_T`` summed over the images of the mini-batch
(the paper's set ``X``), and the filter's loss is the paper's ``Loss_f = −MI(X; T)``: the mutual information
between the filter's maps and the templates, computed exactly over the batch, summed over the layer's
filters (the paper's ``Loss = Σ_f Loss_f``). The paper's masking layer (the map multiplied by its peak's
template in the forward pass) is not used: the loss alone, so the network's architecture, and every loader,
stay unchanged.
"""

from __future__ import annotations

import torch

from unitscope.constraints.base import Constraint

CITATION = ("Zhang, Wu & Zhu, CVPR 2018, Interpretable CNNs: Loss_f = -MI(X;T) over the mini-batch, summed over "
            "filters, without the mask layer")
BETA = 4.0


def part_templates(n: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Templates ``[n² + 1, n²]`` (the n² positive ones, then the negative one) and their log prior ``[n² + 1]``."""
    tau = 0.5 / n**2
    rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    cells = torch.stack([rows.reshape(-1), cols.reshape(-1)], 1).to(dtype)
    distance = torch.cdist(cells, cells, p=1)  # [μ, i]
    positive = tau * torch.clamp(1 - BETA * distance / n, min=-1.0)
    templates = torch.cat([positive, torch.full((1, n * n), -tau, dtype=dtype)])
    alpha = n * n / (1 + n * n)
    prior = torch.cat([torch.full((n * n,), alpha / (n * n), dtype=dtype), torch.tensor([1 - alpha], dtype=dtype)])
    return templates, prior.log()


def filter_loss(maps: torch.Tensor) -> torch.Tensor:
    """``Σ_f −MI(X_f; T)`` over the filters, for square maps ``[B, F, n, n]``."""
    batch, filters, n, width = maps.shape
    if n != width:
        raise ValueError(f"interpretable-filter templates need square maps, got {n}x{width}")
    templates, log_prior = part_templates(n, maps.dtype)
    scores = maps.reshape(batch, filters, n * n) @ templates.to(maps.device).T  # tr(x · T): [B, F, K]
    log_given = scores - torch.logsumexp(scores, dim=0, keepdim=True)  # log p(x | T), over the batch
    log_prior = log_prior.to(maps.device)
    log_marginal = torch.logsumexp(log_given + log_prior, dim=2, keepdim=True)  # log p(x): [B, F, 1]
    information = (log_prior.exp() * log_given.exp() * (log_given - log_marginal)).sum(dim=(0, 2))  # [F]
    return -information.sum()


class Filters(Constraint):
    citation = CITATION

    def loss(self, output: torch.Tensor) -> torch.Tensor:
        return filter_loss(output)
