"""``see``'s one forward pass per batch: scene logits, the concept vectors' scores and the class map, together.

Hooks sit on the layers the concept vectors read (e.g. conv5 and pool5) and on the CAM layer. Plain CAM
(a feature map → global average pooling → linear head) needs no gradient: the classifier's weights weight
the channels. Grad-CAM needs the gradient of the predicted class's score at its layer, and only there: the
forward pass runs with every parameter's ``requires_grad`` off and the CAM layer's output replaced by a
detached copy that requires grad, so autograd records only what follows that layer, and the one backward
(``torch.autograd.grad`` to that copy) runs through the head alone. No second forward pass, ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unitscope.analysis.cam.methods import CAM, ChannelWeightedCAM, GradCAM, normalise_maps
from unitscope.analysis.segment.vectors import ConceptVectors, FeatureMaps
from unitscope.capture import ForwardHook, LayerRecorder
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.see.projection import ConceptProjection


@dataclass(frozen=True)
class CamPlan:
    """Where and how the class map is made: the layer's module path and, for plain CAM, the classifier's."""

    layer: str
    classifier: str | None

    @property
    def method(self) -> str:
        return "cam" if self.classifier is not None else "gradcam"

    def build(self, module: nn.Module) -> ChannelWeightedCAM:
        """The channel-weighting method on ``module`` (the trained network or its twin)."""
        if self.classifier is None:
            return GradCAM(module, self.layer)
        head = dict(module.named_modules())[self.classifier]
        if not isinstance(head, nn.Linear):
            raise UsageError(f"module {self.classifier} is not a linear classifier; CAM needs one")
        return CAM(module, self.layer, head)


@dataclass(frozen=True)
class PassResult:
    """One batch: logits [B, K], each vector layer's native maps [B, D_l, h, w] (``activations``), concept
    scores [B, sh, sw, C+1], the class explained per image [B], and its map in [0, 1] at the label
    resolution [B, sh, sw]."""

    logits: torch.Tensor
    activations: list[torch.Tensor]
    scores: torch.Tensor
    targets: torch.Tensor
    heat: np.ndarray


class _GradientSite(ForwardHook):
    """Replaces the layer's output by a detached copy that requires grad: the backward stops there."""

    def __init__(self, module: nn.Module, path: str, example: torch.Tensor) -> None:
        super().__init__(module, path, example)
        self.leaf: torch.Tensor | None = None

    def _on_forward(self, _module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> object:
        if not isinstance(output, torch.Tensor):
            raise UsageError(f"layer {self.path} returns {type(output).__name__}, not a tensor; choose another layer")
        self.leaf = output.detach().requires_grad_(True)
        return self.leaf.clone()  # a later in-place operation changes the clone, never the leaf


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for one pass (restored after), so nothing before the CAM layer
    is recorded for a backward."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class OnePass:
    """``OnePass(model, features, vectors, cam)(x, label_size)``: everything ``see`` needs from one forward pass."""

    def __init__(self, model: LoadedModel, features: FeatureMaps, vectors: ConceptVectors, cam: CamPlan) -> None:
        self.model = model
        self.features = features
        self.vectors = vectors
        self.cam = cam
        self.method = cam.build(model.module)
        self.projection = ConceptProjection(vectors, features.upsamplers, model.device)

    def __call__(self, x: torch.Tensor, label_size: tuple[int, int], targets: torch.Tensor | None = None) -> PassResult:
        """``targets``: the class each image's map explains (default its own top-1; the random twin is scored on
        the trained network's, as ``cam`` scores it)."""
        module = self.model.module
        gradients = self.cam.classifier is None
        with ExitStack() as stack:
            site = stack.enter_context(_GradientSite(module, self.cam.layer, x)) if gradients else None
            cam_recorder = None if gradients else stack.enter_context(LayerRecorder(module, self.cam.layer, example=x))
            recorders = [stack.enter_context(LayerRecorder(module, p)) for p in self.features.paths]
            if gradients:
                stack.enter_context(_frozen(module))
            stack.enter_context(torch.set_grad_enabled(gradients))
            stack.enter_context(self.model.autocast())
            logits = module(x)
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                raise UsageError("see needs a classifier whose output is [batch, classes]; this model's is not")
            targets = logits.detach().argmax(dim=1) if targets is None else targets.to(logits.device)
            gradient = None
            if site is not None:
                if site.leaf is None:
                    raise UsageError(f"layer {self.cam.layer} did not run in the forward pass")
                score = logits.gather(1, targets[:, None]).sum()
                (gradient,) = torch.autograd.grad(score, site.leaf, allow_unused=True)
                if gradient is None:
                    raise UsageError(f"the class scores do not depend on layer {self.cam.layer}; choose another "
                                     "CAM layer")
        with torch.no_grad():
            if site is not None and site.leaf is not None and gradient is not None:
                activation, grad = site.read(site.leaf.detach()), site.read(gradient)
            else:
                raw = cam_recorder.activation if cam_recorder is not None else None
                if raw is None or cam_recorder is None:
                    raise UsageError(f"layer {self.cam.layer} did not run in the forward pass")
                activation, grad = cam_recorder.read(raw), None
            heat = self._heat(activation.float(), None if grad is None else grad.float(), targets,
                              (int(x.shape[-2]), int(x.shape[-1])), label_size)
            activations = []
            for path, recorder in zip(self.features.paths, recorders, strict=True):
                if recorder.activation is None or recorder.activation.dim() != 4:
                    raise UsageError(f"layer {path} gave no [batch, units, h, w] maps; choose conv layers")
                activations.append(recorder.activation.float())
            scores = self.projection.scores(activations)
        return PassResult(logits.detach().float(), activations, scores, targets, heat)

    def _heat(self, activation: torch.Tensor, gradient: torch.Tensor | None, targets: torch.Tensor,
              input_size: tuple[int, int], label_size: tuple[int, int]) -> np.ndarray:
        """The class map as ``cam`` makes it (rectified, upsampled to the input, rescaled to [0, 1]), then
        averaged down to the label resolution, where it is scored and stored."""
        weights = self.method.channel_weights(activation, gradient, targets).to(activation.dtype)
        raw = torch.relu((weights[:, :, None, None] * activation).sum(dim=1))
        up = F.interpolate(raw[:, None], size=input_size, mode="bilinear", align_corners=False)[:, 0]
        heat = normalise_maps(up)
        pooled = F.adaptive_avg_pool2d(heat[:, None].double(), label_size)[:, 0]
        return np.asarray(pooled.cpu().numpy())
