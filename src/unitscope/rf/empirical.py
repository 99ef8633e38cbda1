"""Empirical receptive fields by occlusion (Zhou et al. 2015, §3.2), for many units of a layer at once.

For each unit: find its top-K probe images (highest maximum activation) and the peak location in each;
occlude each top image at every grid position (one batch of occluded copies serves every unit whose
top list holds that image) and record the discrepancy of the unit's activation at its peak; turn the
grid of discrepancies into a pixel map (each pixel averages the occluders covering it); shift the map so
that the centre of the peak's theoretical field sits at the middle of a square canvas; average the
canvases over the K images (each canvas pixel over the images that cover it).

Size: the side of the square whose area equals the number of canvas pixels (input pixels) where the
mean map reaches ``fraction`` (default 0.5) of its maximum. Occluders of side ``patch`` blur the map by
about their own size, so fields smaller than the patch read as roughly the patch's size: use a smaller
``--patch`` to resolve early layers. A unit whose activation never changes (a dead unit) has no size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from unitscope.batching import batched
from unitscope.data.probe import ProbeSet
from unitscope.distributed import Group
from unitscope.errors import UsageError
from unitscope.perturb.occluders import OccluderGrid, grid_to_pixels
from unitscope.perturb.occlusion import OcclusionPlan, occlusion_discrepancy, plan_occlusion
from unitscope.progress import progress_iter
from unitscope.receptive.theory import FieldGeometry
from unitscope.stats.topk import TopImages

Preprocess = Callable[[Sequence[np.ndarray]], torch.Tensor]


@dataclass(frozen=True)
class EmpiricalSettings:
    """How occlusion maps are made and measured."""

    topk: int = 10
    patch: int = 11
    stride: int = 3
    fill: str = "random"
    seed: int = 0
    fraction: float = 0.5
    occlusion_batch: int = 256
    forward_batch: int = 32
    incremental: bool = True

    def validate(self) -> None:
        """Refuse settings that cannot produce a map, with the option to change."""
        for name in ("topk", "occlusion_batch", "forward_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not 0 < self.fraction < 1:
            raise UsageError(f"the size threshold fraction must lie in (0, 1), got {self.fraction}")


@dataclass
class UnitField:
    """One unit's averaged, re-centred discrepancy map and the size measured on it."""

    unit: int
    size: float | None  # None: the unit's activation never changed (dead unit)
    mean_map: torch.Tensor  # [S, S], canvas centred on the peak's field centre
    images: list[int] = field(default_factory=list)
    peaks: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class LayerFields:
    """Empirical fields of the analysed units of one layer, beside the theoretical field."""

    layer: str
    theoretical: FieldGeometry
    units: list[UnitField]
    engine: str
    input_size: tuple[int, int]
    theoretical_defined: bool = True  # False: attention mixes positions; ``theoretical`` is the whole image

    @property
    def sizes(self) -> list[float]:
        return [u.size for u in self.units if u.size is not None]

    def summary(self) -> dict[str, float | int | None]:
        """Mean and (population) standard deviation of the measured sizes, and how many units were dead."""
        sizes = self.sizes
        return {
            "mean": float(np.mean(sizes)) if sizes else None,
            "std": float(np.std(sizes)) if sizes else None,
            "units": len(sizes),
            "dead_units": len(self.units) - len(sizes),
        }


def canvas_radius(geometry: FieldGeometry, patch: int, image_size: tuple[int, int]) -> int:
    """Half-side of the canvas: the theoretical field plus an occluder, no more than the image."""
    largest = max(geometry.axis(0).size, geometry.axis(1).size)
    return int(min(math.ceil((largest + patch - 1) / 2), max(image_size) - 1))


def recentre(pixel_map: torch.Tensor, centre: tuple[float, float], radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Place an [H, W] map on a (2r+1)² canvas with ``centre`` (rounded) at the middle: (values, coverage)."""
    h, w = pixel_map.shape
    side = 2 * radius + 1
    values = torch.zeros(side, side, dtype=pixel_map.dtype)
    covered = torch.zeros(side, side, dtype=pixel_map.dtype)
    cy, cx = (math.floor(c + 0.5) for c in centre)
    y0, x0 = max(0, cy - radius), max(0, cx - radius)
    y1, x1 = min(h, cy + radius + 1), min(w, cx + radius + 1)
    if y0 < y1 and x0 < x1:
        target = (slice(y0 - cy + radius, y1 - cy + radius), slice(x0 - cx + radius, x1 - cx + radius))
        values[target] = pixel_map[y0:y1, x0:x1]
        covered[target] = 1
    return values, covered


def field_size(mean_map: torch.Tensor, fraction: float) -> float | None:
    """Side of the square with the area where the map reaches ``fraction`` of its maximum (None if flat 0)."""
    peak = float(mean_map.max())
    if peak <= 0:
        return None
    return math.sqrt(int((mean_map >= fraction * peak).sum()))


def prepare(preprocess: Preprocess, images: Sequence[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Network input for probe images (one at a time: they may differ in size before resizing),
    refusing images that do not come out at ``size``."""
    tensors = [preprocess([image]) for image in images]
    odd = next((t for t in tensors if tuple(t.shape[-2:]) != size), None)
    if odd is not None:
        raise UsageError(
            f"probe images differ in size ({tuple(odd.shape[-2:])} and {size}); pass --input-size to resize "
            "them to one size"
        )
    return torch.cat(tensors)


def top_images(plan: OcclusionPlan, model: nn.Module, probe: ProbeSet, preprocess: Preprocess,
               units: torch.Tensor, k: int, batch_size: int, device: torch.device,
               progress: bool = False, group: Group | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit its top-k image indices [U, k'] and peaks [U, k', 2] (row, column) on the layer's map.

    Under torchrun each rank searches every ``world``-th batch and the tables are merged (exact).
    """
    group = group or Group()
    tops = TopImages(len(units), k)
    width = plan.map_size[1]
    n = len(probe)
    mine = group.shard(n, batch_size)
    with torch.no_grad():
        for indices in progress_iter(list(batched(mine, batch_size)), desc=f"top images {plan.layer}",
                                     disable=None if progress else True, unit="batch"):
            batch = prepare(preprocess, [probe[i].image for i in indices], plan.input_size).to(device)
            acts = plan.full_model(batch)[:, units.to(device)].flatten(2)
            scores, flat = acts.max(dim=2)
            tops.update(scores.float().cpu(), torch.tensor(indices), flat.cpu())
    image_indices, _scores, flat_peaks = group.merge_topk(tops).result()
    return image_indices, torch.stack([flat_peaks // width, flat_peaks % width], dim=-1)


def empirical_fields(
    model: nn.Module,
    layer: str,
    probe: ProbeSet,
    preprocess: Preprocess,
    units: Sequence[int] | None = None,
    settings: EmpiricalSettings | None = None,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    progress: bool = False,
    group: Group | None = None,
) -> LayerFields:
    """Empirical receptive fields of ``units`` (default: all) of ``layer`` over the probe set.

    ``preprocess`` turns a list of uint8 HxWx3 probe images into a normalised batch at the network's
    input size; ``mean``/``std`` are that normalisation (they shape the random occluders' pixels).
    """
    settings = settings or EmpiricalSettings()
    settings.validate()
    if len(probe) == 0:
        raise UsageError(f"the probe set {probe.name} is empty; check --data")
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    first = preprocess([probe[0].image])
    input_size = (int(first.shape[-2]), int(first.shape[-1]))
    plan = plan_occlusion(model, layer, input_size)
    grid = OccluderGrid.build(input_size, settings.patch, settings.stride)
    chosen = torch.arange(plan.channels) if units is None else torch.as_tensor(list(units), dtype=torch.long)
    bad = chosen[(chosen < 0) | (chosen >= plan.channels)]
    if len(bad):
        raise UsageError(f"unit {int(bad[0])} is out of range: {layer} has units 0-{plan.channels - 1}")
    was_training = model.training
    model.eval()
    try:
        tops, peaks = top_images(plan, model, probe, preprocess, chosen, settings.topk, settings.forward_batch,
                                 device, progress, group)
        maps = _occlude_tops(model, plan, probe, preprocess, grid, chosen, tops, peaks, settings, mean, std,
                             progress, group or Group())
    finally:
        model.train(was_training)
    fields = []
    for row, unit in enumerate(chosen.tolist()):
        total, covered = maps[row]
        mean_map = torch.where(covered > 0, total / covered.clamp(min=1), torch.zeros_like(total))
        fields.append(UnitField(unit, field_size(mean_map, settings.fraction), mean_map,
                                tops[row].tolist(), [tuple(p) for p in peaks[row].tolist()]))
    engine = plan.reason if settings.incremental and plan.steps is not None else (
        "full recomputation (asked for)" if plan.steps is not None else plan.reason)
    return LayerFields(layer, plan.geometry, fields, engine, input_size, plan.field_defined)


def _occlude_tops(model: nn.Module, plan: OcclusionPlan, probe: ProbeSet, preprocess: Preprocess,
                  grid: OccluderGrid, units: torch.Tensor, tops: torch.Tensor, peaks: torch.Tensor,
                  settings: EmpiricalSettings, mean: Sequence[float], std: Sequence[float],
                  progress: bool, group: Group) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per unit, the summed re-centred pixel maps and their coverage over its top images.

    Under torchrun each rank occludes every ``world``-th image; the re-centred maps are gathered and
    summed in image order on every rank, so the float64 sums equal one process's bit for bit.
    """
    radius = canvas_radius(plan.geometry, grid.patch, grid.image_size)
    side = 2 * radius + 1
    sums = [(torch.zeros(side, side, dtype=torch.float64), torch.zeros(side, side, dtype=torch.float64))
            for _ in range(len(units))]
    by_image: dict[int, list[tuple[int, int]]] = {}
    for row in range(len(units)):
        for rank, image_index in enumerate(tops[row].tolist()):
            by_image.setdefault(image_index, []).append((row, rank))
    bars = {"disable": None if progress else True, "unit": "image"}  # None: only on a terminal
    mine: dict[int, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for image_index in progress_iter(sorted(by_image)[group.rank::group.world], desc=f"occluding {plan.layer}",
                                     **bars):
        members = by_image[image_index]
        rows = torch.tensor([row for row, _ in members])
        these_peaks = torch.stack([peaks[row, rank] for row, rank in members])
        image = prepare(preprocess, [probe[image_index].image], plan.input_size)[0]
        grids = occlusion_discrepancy(model, plan.layer, image, units[rows], these_peaks, settings.patch,
                                      settings.stride, settings.fill, settings.seed, settings.occlusion_batch,
                                      settings.incremental, plan=plan, mean=mean, std=std)
        pixel_maps = grid_to_pixels(grids.double(), grid)
        for j, (row, _rank) in enumerate(members):
            centre = plan.geometry.centre(float(these_peaks[j, 0]), float(these_peaks[j, 1]))
            mine.setdefault(image_index, []).append((row, *recentre(pixel_maps[j], centre, radius)))
    gathered = {image: maps for part in group.all_gather(mine) for image, maps in part.items()}
    for image_index in sorted(gathered):
        for row, values, covered in gathered[image_index]:
            sums[row][0].add_(values)
            sums[row][1].add_(covered)
    return sums
