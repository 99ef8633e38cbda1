"""Where to compute a class activation map, and whether plain CAM applies there.

CAM (Zhou et al. 2016) needs a network that ends ``feature map → global average pooling → linear
classifier``: the class score is then exactly ``Σ_k w_ck · mean(A_k)``, so ``Σ_k w_ck A_k`` is the map.
We detect that structure numerically, for any architecture: one forward pass records the spatial mean
of every 4-D output and the input of the final linear layer; a feature map whose mean *is* that input
(same values) feeds the classifier through global average pooling. Otherwise Grad-CAM is used, at the
paper's ``conv5`` when the network has paper names, else at the last non-pooling 4-D output.

Every output is read with its units on axis 1 (:func:`~unitscope.layout.read_units`, each layer's layout
probed from the model: tokens on their grid, class token dropped; channels-last maps permuted). A ViT's
head reads the class token alone, so after the last attention block the patch tokens get no gradient:
Grad-CAM defaults to the input of that block (its ``ln_1``), where the class token still attends to every
patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.layout import LayerLayout, probe_layers, read_units, unknown_layout_error
from unitscope.models.layers import paper_names, resolve_layer

CAM_METHODS: tuple[str, ...] = ("auto", "cam", "gradcam")
POOLING_TYPES: tuple[type[nn.Module], ...] = (
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d,
)


@dataclass(frozen=True)
class CamSite:
    """The layer to explain and, when it feeds a GAP classifier, that classifier (plain CAM applies)."""

    layer: str
    classifier: nn.Linear | None

    @property
    def method(self) -> str:
        return "cam" if self.classifier is not None else "gradcam"


@dataclass
class _Trace:
    """What one forward pass showed: completion order, spatial means of 4-D outputs, the final linear."""

    order: list[str]
    means: dict[str, torch.Tensor]
    pooling: set[str]
    linear_inputs: dict[str, torch.Tensor]
    linear_outputs: dict[str, torch.Tensor]


def _trace(module: nn.Module, x: torch.Tensor, layers: dict[str, LayerLayout]) -> tuple[_Trace, torch.Tensor]:
    trace = _Trace([], {}, set(), {}, {})

    def hook_for(name: str, sub: nn.Module) -> Callable[[nn.Module, tuple[object, ...], object], None]:
        def hook(_m: nn.Module, inputs: tuple[object, ...], output: object) -> None:
            if name in trace.order:
                trace.order.remove(name)
            trace.order.append(name)
            layout = layers[name].layout if name in layers else "unknown"
            grid = read_units(output, layout) if isinstance(output, torch.Tensor) and layout != "unknown" else None
            if grid is not None and grid.dim() == 4 and grid.shape[2] * grid.shape[3] > 1:
                trace.means[name] = grid.detach().double().mean(dim=(2, 3))
                if isinstance(sub, POOLING_TYPES):
                    trace.pooling.add(name)
            if isinstance(sub, nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor):
                trace.linear_inputs[name] = inputs[0].detach().double()
                trace.linear_outputs[name] = cast(torch.Tensor, output).detach()

        return hook

    handles = [sub.register_forward_hook(hook_for(name, sub)) for name, sub in module.named_modules() if name]
    try:
        with torch.no_grad():
            output = module(x)
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise UsageError("CAM needs a classifier whose output is [batch, classes]; this model returns something else")
    return trace, output


def _final_linear(trace: _Trace, output: torch.Tensor) -> str | None:
    for name in reversed(trace.order):
        if name in trace.linear_outputs and torch.equal(trace.linear_outputs[name], output):
            return name
    return None


def _gap_feature(trace: _Trace, linear: str) -> str | None:
    """The last module (before the classifier) whose spatial mean equals the classifier's input."""
    features = trace.linear_inputs[linear].flatten(1)
    scale = float(features.abs().max()) or 1.0
    before = trace.order[: trace.order.index(linear)]
    for name in reversed(before):
        mean = trace.means.get(name)
        if mean is not None and mean.shape == features.shape and name not in trace.pooling \
                and torch.allclose(mean, features, rtol=1e-4, atol=1e-5 * scale):
            return name
    return None


def _default_gradcam_layer(module: nn.Module, trace: _Trace) -> str:
    conv5 = paper_names(module).get("conv5")
    if conv5 is not None:
        return conv5
    last_attention = _vit_last_attention_input(module)
    if last_attention is not None and last_attention in trace.means:
        return last_attention
    for name in reversed(trace.order):
        if name in trace.means and name not in trace.pooling:
            return name
    raise UsageError("the model has no spatial feature map to explain; pass --layer with a convolutional layer")


def _vit_last_attention_input(module: nn.Module) -> str | None:
    """``encoder.layers.<last>.ln_1`` of a torchvision VisionTransformer, else None."""
    if type(module).__name__ != "VisionTransformer":
        return None
    blocks = [name for name, _ in module.named_modules() if name.startswith("encoder.layers.") and name.count(".") == 2]
    return f"{blocks[-1]}.ln_1" if blocks else None


def find_cam_site(module: nn.Module, x: torch.Tensor, layer: str | None = None, method: str = "auto") -> CamSite:
    """Choose the layer and the method for ``module`` given an example input batch ``x``."""
    if method not in CAM_METHODS:
        raise UsageError(f"--method must be one of {', '.join(CAM_METHODS)}, got {method!r}")
    layers = probe_layers(module, x)  # before hooking: the probe runs the model itself
    trace, output = _trace(module, x, layers)
    linear = _final_linear(trace, output)
    gap = _gap_feature(trace, linear) if linear is not None else None
    chosen = resolve_layer(module, layer) if layer is not None else None
    if chosen is not None and chosen in layers and layers[chosen].layout == "unknown":
        raise unknown_layout_error(chosen, layers[chosen].shape)
    if chosen is not None and chosen not in trace.means:
        raise UsageError(f"layer {layer!r} has no spatial output (4-D, over 1x1) to explain; choose a conv layer")
    cam_ok = gap is not None and (chosen is None or chosen == gap)
    if method == "cam" and not cam_ok:
        where = f"layer {layer!r}" if chosen is not None and gap is not None else "this model"
        raise UsageError(f"plain CAM needs a feature map → global average pooling → linear classifier, which "
                         f"{where} lacks; use --method gradcam (or auto)")
    if cam_ok and method != "gradcam":
        modules = dict(module.named_modules())
        return CamSite(gap, modules[linear])  # type: ignore[arg-type]
    return CamSite(chosen or gap or _default_gradcam_layer(module, trace), None)
