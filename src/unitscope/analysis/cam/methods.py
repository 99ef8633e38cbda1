"""Class activation maps as a template method: a variant only says how to weight the channels.

Every method here computes ``relu(Σ_k w_k A_k)`` from one layer's activations ``A`` [B, K, h, w] and
per-channel weights ``w`` [B, K], upsamples it bilinearly to the input size and rescales each image's map
to [0, 1] (``(m - min) / (max - min + 1e-7)``), as pytorch-grad-cam does. A new variant overrides
:meth:`ChannelWeightedCAM.channel_weights` and nothing else:

- :class:`CAM` (Zhou et al. 2016): ``w`` = the classifier's weights of the target class; valid when the
  layer feeds global average pooling and then that linear classifier. No backward pass.
- :class:`GradCAM` (Selvaraju et al. 2017): ``w`` = the spatial mean of the gradient of the target class
  score with respect to ``A``. For a GAP network it equals CAM divided by h·w, hence the same map.

The gradient is taken with ``torch.autograd.grad`` on the input, so the model's parameter ``.grad``
fields are never touched. Every image is independent of the others: results do not depend on batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unitscope.capture import LayerRecorder
from unitscope.errors import UsageError

NORMALISE_EPS = 1e-7


@dataclass(frozen=True)
class CamResult:
    """Heatmaps in [0, 1] at ``size`` ([B, H, W]), the raw rectified maps ([B, h, w]), targets, logits."""

    heatmaps: torch.Tensor
    raw: torch.Tensor
    targets: torch.Tensor
    logits: torch.Tensor


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max rescaling of [B, H, W] to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    shifted = maps - low
    high = shifted.flatten(1).max(dim=1).values[:, None, None]
    return shifted / (high + NORMALISE_EPS)


class ChannelWeightedCAM:
    """The template: record ``layer``, score the targets, weight the channels, rectify, upsample, rescale."""

    name: str = "channel-weighted"
    needs_gradients: bool = True

    def __init__(self, module: nn.Module, layer: str) -> None:
        self.module = module
        self.layer = layer

    def channel_weights(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] weight of each channel for each image's target class. Variants override this only."""
        raise NotImplementedError

    def __call__(
        self, x: torch.Tensor, targets: Sequence[int] | torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> CamResult:
        """Maps for a preprocessed batch ``x``; ``targets`` default to each image's top-1 class."""
        activations, gradients, logits, chosen = self._record(x, targets)
        weights = self.channel_weights(activations, gradients, chosen).to(activations.dtype)
        raw = torch.relu((weights[:, :, None, None] * activations).sum(dim=1))
        out_size = size or (int(x.shape[-2]), int(x.shape[-1]))
        upsampled = F.interpolate(raw[:, None], size=out_size, mode="bilinear", align_corners=False)[:, 0]
        return CamResult(normalise_maps(upsampled), raw, chosen, logits)

    def _record(
        self, x: torch.Tensor, targets: Sequence[int] | torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x = x.detach().clone().requires_grad_(self.needs_gradients)
        recorder = LayerRecorder(self.module, self.layer, gradients=self.needs_gradients, example=x)  # probes
        with torch.set_grad_enabled(self.needs_gradients), recorder:
            logits = self.module(x)
            chosen = logits.detach().argmax(dim=1) if targets is None else \
                torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1)
            if chosen.shape[0] != logits.shape[0]:
                raise ValueError(f"{chosen.shape[0]} targets for a batch of {logits.shape[0]} images")
            if self.needs_gradients:
                score = logits.gather(1, chosen[:, None]).sum()
                torch.autograd.grad(score, x)
        # the layer's last call, units on axis 1: tokens and channels-last maps as [B, K, h, w]
        activation = recorder.read(recorder.activation) if recorder.activation is not None else None
        gradient = recorder.read(recorder.gradient) if recorder.gradient is not None else None
        if activation is None or activation.dim() != 4:
            raise ValueError(f"layer {self.layer} did not produce a 4-D feature map")
        if self.needs_gradients and gradient is None:
            raise ValueError(f"no gradient reached layer {self.layer}; it does not influence the class score")
        if gradient is not None and not bool(gradient.any()):
            raise UsageError(f"the class scores do not depend on layer {self.layer} (its gradient is zero for every "
                             "image: an untrained head, e.g. torchvision's zero-initialised ViT head); give "
                             "trained --weights or choose another --layer")
        return activation, gradient, logits.detach(), chosen


class CAM(ChannelWeightedCAM):
    """Zhou et al. 2016: the classifier's weights of the target class (layer → GAP → ``classifier``)."""

    name = "cam"
    needs_gradients = False

    def __init__(self, module: nn.Module, layer: str, classifier: nn.Linear) -> None:
        super().__init__(module, layer)
        self.classifier = classifier

    def channel_weights(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        return self.classifier.weight.detach()[targets]


class GradCAM(ChannelWeightedCAM):
    """Selvaraju et al. 2017: spatially averaged gradients of the target class score."""

    name = "gradcam"

    def channel_weights(
        self, activations: torch.Tensor, gradients: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor:
        if gradients is None:
            raise ValueError("Grad-CAM needs the layer's gradients")
        return gradients.mean(dim=(2, 3))
