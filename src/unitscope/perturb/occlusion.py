"""Occlusion discrepancy maps for many units of one layer from one batch of occluded copies.

``discrepancy[u, i, j] = |a_u(occluded_ij) - a_u(clean)|`` where ``a_u`` is unit u's activation at its
peak location and ``occluded_ij`` the image with an occluder whose top-left corner is at
``(i * stride, j * stride)``. The absolute value is Zhou et al.'s "discrepancy": occluding can raise or
lower an activation and both mean the unit looks there. ``signed=True`` returns ``clean - occluded``
instead, Captum's ``Occlusion`` convention, so a map can be checked against it value for value.

Occluders outside a unit's theoretical receptive field are not run: the activation cannot change, so
the discrepancy there is exactly 0. Two engines give the same numbers (to float rounding):

* ``incremental``: when every node between the input and the layer is a convolution, pooling,
  point-wise layer (batch norm in eval mode included) or a residual sum (AlexNet, SceneWorldNet, ResNets
  with basic or bottleneck blocks), each occluded copy recomputes only the windows its occluder changed
  (``perturb.incremental``, ``perturb.steps``);
* ``full``: otherwise (attention, concatenation, unknown modules or functional code before the layer),
  or when asked, batches of whole occluded images run through the model up to the layer.

Where attention or a shift mixes positions on the way to the layer (a ViT's tokens, Swin after its first
window attention) no theoretical field exists: the plan recomputes in full over the whole image (every
occluder is run for every unit, none skipped) and reads the output through the capture's token grid
(:func:`unitscope.layout.read_units` with the layer's probed layout: class token dropped, channels-last
maps permuted). A layer whose units are not on axis 1 (channels-last, tokens) is always recomputed in full
and read the same way; one whose layout the probe cannot decide is refused.

:class:`OcclusionPlan` records which engine applies and why (``plan.reason`` names the node that forces
full recomputation; it is logged once per plan); build it once per model, layer and input size with
:func:`plan_occlusion` and pass it to every call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from unitscope.batching import batch_ranges
from unitscope.errors import UsageError
from unitscope.layout import LayerLayout, layer_layout, read_units
from unitscope.perturb.incremental import clean_activations, padded_inputs, plan_regions, run_windows
from unitscope.perturb.occluders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OccluderGrid,
    occluder_patches,
    relevant_positions,
)
from unitscope.perturb.steps import Step, ancestors, extract_steps
from unitscope.receptive.graph import TracedModel, trace_model, truncated_module
from unitscope.receptive.theory import MIXED_POSITIONS, MOVES_POSITIONS, FieldGeometry, fields_of_traced, name_of

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class OcclusionPlan:
    """What occluding ``layer`` of a model at ``input_size`` involves, computed once and reused."""

    layer: str
    input_size: tuple[int, int]
    geometry: FieldGeometry
    channels: int
    full_model: nn.Module  # the model truncated at the layer, output as [B, C, h, w]
    steps: tuple[Step, ...] | None  # the graph of steps, when incremental inference applies
    reason: str
    field_defined: bool = True  # False: attention mixes positions, ``geometry`` is the whole image

    @property
    def path(self) -> str:
        """``incremental`` or ``full``: the engine used when incremental inference is asked for."""
        return "incremental" if self.steps is not None else "full"

    @property
    def map_size(self) -> tuple[int, int]:
        return self.geometry.map_size  # type: ignore[return-value]


def plan_occlusion(model: nn.Module, layer_path: str, input_size: tuple[int, int]) -> OcclusionPlan:
    """Trace the model, find the layer's field and decide between incremental and full inference."""
    size = (int(input_size[0]), int(input_size[1]))
    with torch.no_grad():
        traced = trace_model(model, size)
    node = traced.node_for(layer_path)
    layer = layer_layout(model, layer_path, size)  # its unit axis, probed; refused when undecided
    fields, skipped = fields_of_traced(traced)
    mixing = _position_mixing(traced, node, skipped.get(layer_path))
    if mixing is not None:
        return _whole_image_plan(model, traced, node, layer, size, mixing)
    if layer_path in skipped:
        raise UsageError(f"the receptive field of {layer_path} is unknown ({skipped[layer_path]}); pick another layer")
    shape = traced.shape(node)
    if layer_path not in fields or shape is None:
        raise UsageError(
            f"layer {layer_path} has no spatial extent (output shape {shape}); occlusion maps need a "
            "convolutional or pooling layer"
        )
    if layer.layout != "channels_first":  # [B, h, w, C] or tokens: read as the capture reads it
        what = "a channels-last map" if layer.layout == "channels_last" else layer.layout
        reason = f"full recomputation: {layer_path} outputs {what}, read as [B, C, h, w]"
        LOG.info("occluding %s of %s: %s", layer_path, type(model).__name__, reason)
        return OcclusionPlan(layer_path, size, fields[layer_path], int(layer.units or 0),
                             _GridReadout(truncated_module(traced, node), layer.layout), None, reason)
    steps, reason = extract_steps(traced, node)
    if steps is None:
        reason = f"full recomputation: {reason}"
        LOG.info("occluding %s of %s: %s", layer_path, type(model).__name__, reason)
    return OcclusionPlan(layer_path, size, fields[layer_path], int(shape[1]), truncated_module(traced, node),
                         steps, reason)


def _position_mixing(traced: TracedModel, node: fx.Node, skipped: str | None) -> str | None:
    """Where attention or a shift mixes positions on the way to ``node`` (None: nowhere)."""
    for current in ancestors(traced, node):
        if current.op == "call_module":
            module = traced.graph_module.get_submodule(str(current.target))
            if isinstance(module, nn.MultiheadAttention) or "Attention" in type(module).__name__:
                return f"{current.target} ({type(module).__name__})"
        elif name_of(current) in MOVES_POSITIONS:
            return f"{name_of(current)} (node {current.name})"
    return skipped.split(":", 1)[0] if skipped is not None and MIXED_POSITIONS in skipped else None


class _GridReadout(nn.Module):
    """The truncated model with its output read as the capture reads it: [B, C, h, w]."""

    def __init__(self, inner: nn.Module, layout: str) -> None:
        super().__init__()
        self.inner = inner
        self.layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return read_units(self.inner(x), self.layout)


def _whole_image_plan(model: nn.Module, traced: TracedModel, node: fx.Node, layer: LayerLayout,
                      size: tuple[int, int], mixing: str) -> OcclusionPlan:
    """Full recomputation with every occluder considered for every unit: no field bounds its reach."""
    layer_path = layer.path
    shape = traced.shape(node)
    grid = None if shape is None else read_units(torch.empty(shape, device="meta"), layer.layout).shape
    if grid is None or len(grid) != 4:
        raise UsageError(f"layer {layer_path} has no spatial extent (output shape {shape}); occlusion maps need "
                         "a layer with a map or a grid of patch tokens")
    map_size = (int(grid[2]), int(grid[3]))
    rows, cols = (max(1, side // n) for side, n in zip(size, map_size, strict=True))
    whole = 2 * max(size) + 1  # centred anywhere on the image, it covers all of it
    geometry = FieldGeometry(whole, rows, (rows - 1) / 2, None if rows == cols else whole,
                             None if rows == cols else cols, None if rows == cols else (cols - 1) / 2, map_size)
    reason = (f"full recomputation over the whole image: positions are mixed by attention at {mixing}, so "
              "no theoretical field bounds where an occluder acts")
    LOG.info("occluding %s of %s: %s", layer_path, type(model).__name__, reason)
    return OcclusionPlan(layer_path, size, geometry, int(grid[1]),
                         _GridReadout(truncated_module(traced, node), layer.layout), None, reason,
                         field_defined=False)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate with batch norm's running statistics and no dropout; restore the caller's mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check_units(plan: OcclusionPlan, units: torch.Tensor, peaks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    units = torch.as_tensor(units).long().reshape(-1).cpu()
    peaks = torch.as_tensor(peaks).long().cpu()
    if peaks.shape != (len(units), 2):
        raise UsageError(f"peaks must be [U, 2] (row, column) for {len(units)} units, got {tuple(peaks.shape)}")
    bad = units[(units < 0) | (units >= plan.channels)]
    if len(bad):
        raise UsageError(f"unit {int(bad[0])} is out of range: {plan.layer} has units 0-{plan.channels - 1}")
    h, w = plan.map_size
    outside = (peaks[:, 0] < 0) | (peaks[:, 0] >= h) | (peaks[:, 1] < 0) | (peaks[:, 1] >= w)
    if outside.any():
        y, x = peaks[outside][0].tolist()
        raise UsageError(f"peak ({y}, {x}) lies outside {plan.layer}'s {h}x{w} map")
    return units, peaks


def _paste(image: torch.Tensor, patches: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """Copies of ``image`` [3, H, W], copy n with ``patches[n]`` pasted at ``corners[n]``."""
    batch = image.unsqueeze(0).repeat(len(corners), 1, 1, 1)
    offsets = torch.arange(patch, device=corners.device)
    rows = (corners[:, 0, None] + offsets)[:, :, None]
    cols = (corners[:, 1, None] + offsets)[:, None, :]
    batch[torch.arange(len(corners), device=corners.device)[:, None, None], :, rows, cols] = patches.permute(0, 2, 3, 1)
    return batch


def _full_values(plan: OcclusionPlan, image: torch.Tensor, patches: torch.Tensor, corners: torch.Tensor,
                 units: torch.Tensor, peaks: torch.Tensor, patch: int) -> torch.Tensor:
    """[n, U] unit activations at their peaks, each occluded copy run through the truncated model.

    The batch goes in channels-last, which CPU convolution and pooling kernels run fastest on (about
    1.3x for AlexNet); the values do not change beyond float rounding.
    """
    batch = _paste(image, patches, corners, patch).contiguous(memory_format=torch.channels_last)
    out: torch.Tensor = plan.full_model(batch)
    return out[:, units, peaks[:, 0], peaks[:, 1]]


def occlusion_discrepancy(
    model: nn.Module,
    layer_path: str,
    image: torch.Tensor,
    units: torch.Tensor,
    peaks: torch.Tensor,
    patch: int = 11,
    stride: int = 3,
    fill: str | torch.Tensor = "random",
    seed: int = 0,
    batch_size: int = 256,
    incremental: bool = True,
    *,
    signed: bool = False,
    plan: OcclusionPlan | None = None,
    only: torch.Tensor | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Discrepancy maps [U, gy, gx] of units ``units`` at ``peaks`` ([U, 2] map rows/columns).

    ``image`` is one normalised [3, H, W] tensor; ``mean``/``std`` only shape ``random`` fills.
    ``only`` (bool [gy, gx]) restricts the occluders run (a region of interest; others read 0).
    See the module docstring for the sign convention and the two engines.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise UsageError(f"image must be a normalised [3, H, W] tensor, got shape {tuple(image.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")
    size = (int(image.shape[1]), int(image.shape[2]))
    if plan is None or plan.layer != layer_path or plan.input_size != size:
        plan = plan_occlusion(model, layer_path, size)
    grid = OccluderGrid.build(size, patch, stride)
    units, peaks = _check_units(plan, units, peaks)
    relevant = relevant_positions(plan.geometry, peaks, grid).reshape(len(units), -1)  # [U, G]
    wanted = relevant.any(dim=0)
    if only is not None:
        if tuple(only.shape) != grid.shape:
            raise UsageError(f"only must be a bool mask of the {grid.shape[0]}x{grid.shape[1]} occluder grid")
        wanted &= only.reshape(-1).bool().cpu()
    positions = wanted.nonzero().squeeze(1)
    reference = next(iter(model.parameters()), image)
    device = reference.device
    dtype = reference.dtype if reference.is_floating_point() else torch.float32
    result = torch.zeros(len(units), grid.shape[0] * grid.shape[1], dtype=dtype)
    if len(positions) == 0 or len(units) == 0:
        return result.reshape(len(units), *grid.shape)
    patches = occluder_patches(fill, grid, seed, mean, std).to(dtype)
    steps = plan.steps if incremental else None
    LOG.debug("occluding %s with %d copies: %s", layer_path, len(positions),
              plan.reason if steps is not None else "full recomputation")
    with _eval_mode(model), torch.no_grad():
        image = image.to(device=device, dtype=dtype)
        if steps is not None:
            values, reach, clean = _incremental_values(steps, image, patches, grid, positions, units, peaks,
                                                       relevant, batch_size, device)
        else:
            values, clean = _full_run(plan, image, patches, grid, positions, units, peaks, batch_size, device)
            reach = relevant[:, positions].T
        delta = clean[None, :] - values if signed else (values - clean[None, :]).abs()
        result[:, positions] = torch.where(reach, delta, torch.zeros_like(delta)).T
    return result.reshape(len(units), *grid.shape)


def _patch_batch(patches: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Patches for grid positions ``index`` (a shared patch is repeated)."""
    chosen = patches[index] if len(patches) > 1 else patches.expand(len(index), -1, -1, -1)
    return chosen.to(device).contiguous()


def _full_run(plan: OcclusionPlan, image: torch.Tensor, patches: torch.Tensor, grid: OccluderGrid,
              positions: torch.Tensor, units: torch.Tensor, peaks: torch.Tensor, batch_size: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[P, U] occluded values and [U] clean values, whole images through the truncated model."""
    corners = grid.corners()[positions].to(device)
    units_d, peaks_d = units.to(device), peaks.to(device)
    clean = plan.full_model(image.unsqueeze(0))[0, units_d, peaks_d[:, 0], peaks_d[:, 1]].cpu()
    values = []
    for part in batch_ranges(len(positions), batch_size):
        chunk = slice(part.start, part.stop)
        batch_patches = _patch_batch(patches, positions[chunk], device)
        values.append(_full_values(plan, image, batch_patches, corners[chunk], units_d, peaks_d, grid.patch)
                      .cpu())
    return torch.cat(values), clean


def _incremental_values(steps: tuple[Step, ...], image: torch.Tensor, patches: torch.Tensor, grid: OccluderGrid,
                        positions: torch.Tensor, units: torch.Tensor, peaks: torch.Tensor,
                        relevant: torch.Tensor, batch_size: int, device: torch.device
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[P, U] occluded values, [P, U] reach mask and [U] clean values, windows only."""
    corners = grid.corners()[positions].to(device)
    units_d, peaks_d = units.to(device), peaks.to(device)
    regions = plan_regions(steps, corners, grid.patch, peaks_d, relevant[:, positions].T.to(device))
    acts = clean_activations(steps, image)
    clean = acts[-1][units_d, peaks_d[:, 0], peaks_d[:, 1]].cpu()
    channels, position_of = torch.unique(units_d, return_inverse=True)
    padded = padded_inputs(steps, acts, channels)
    del acts
    values = torch.zeros(len(positions), len(units), dtype=image.dtype)
    for index in regions.batches(steps, len(channels), batch_size):
        windows, layout = run_windows(steps, padded, regions, index, corners[index],
                                      _patch_batch(patches, positions[index.cpu()], device), channels)
        height, width = layout.size[-1]
        oy = (peaks_d[None, :, 0] - layout.origin[-1][0][:, None]).clamp(0, height - 1)
        ox = (peaks_d[None, :, 1] - layout.origin[-1][1][:, None]).clamp(0, width - 1)
        rows = torch.arange(len(index), device=device)[:, None]
        values[index.cpu()] = windows[rows, oy, ox, position_of[None, :]].cpu()
    return values, regions.reach.cpu(), clean
