"""Per unit × concept overlap counts over the probe set, and Network Dissection's IoU from them.

Counts, summed over images (original NetDissect's rule, ``count_act_with_labelcat`` in Bau et al.'s
``labelprobe.py``):
  intersection[u, l] = pixels where unit u is active and label l is present;
  label_area[l]      = pixels where label l is present;
  unit_area[u, c]    = pixels where unit u is active, in images that hold at least one labelled pixel
                       (or image label) of a concept whose primary category is c;
  IoU[u, l] = intersection / (unit_area[u, category(l)] + label_area[l] - intersection).
category(l) is l's primary category, whichever Broden column its pixels came from, so every image
adding to intersection[u, l] also adds the unit's whole active area to unit_area[u, category(l)], and
IoU ≤ 1. (NetDissect-Lite's rule differs. The rule used here before, the unit's pixels in images whose
column of category c is annotated at all, could exceed 1 for a label of two categories.) The per-image
category flags are decided in ``LabelBatch.from_samples``. Counts are int64, hence exact, and sums,
hence independent of batching and merge order.
Columns are label numbers 0..max_number; column 0 (unlabeled) and numbers that are no concept of the
table stay 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from unitscope.data.probe import ConceptTable
from unitscope.stats._select import flat_nonzero, masked, take_rows
from unitscope.stats._state import (
    StateValue,
    StatsError,
    as_int,
    as_tensor,
    check_kind,
    check_same_args,
    require_keys,
)
from unitscope.stats.labels import LabelBatch, table_fingerprint

__all__ = ["ConceptOverlap", "LabelBatch", "MaskCounts", "MaskPixels"]

_KIND = "ConceptOverlap"
_COUNTS: tuple[str, ...] = ("intersection", "label_area", "unit_area")


def category_of_labels(concepts: ConceptTable) -> torch.Tensor:
    """[max_number + 1] int64: index in ``concepts.categories`` of each label's category, -1 if none."""
    index = {name: i for i, name in enumerate(concepts.categories)}
    unknown = sorted({c.category for c in concepts.concepts} - set(index))
    if unknown:
        raise StatsError(
            f"concepts use categories {unknown} missing from the table's categories "
            f"{list(concepts.categories)}; list every category in ConceptTable.categories"
        )
    table = torch.full((concepts.max_number + 1,), -1, dtype=torch.int64)
    for concept in concepts.concepts:
        table[concept.number] = index[concept.category]
    return table


def count_overlaps(units: torch.Tensor, regions: torch.Tensor, integer: bool | None = None) -> torch.Tensor:
    """[U, n] int64: pixels where unit u (bool [U, P]) and region r (bool [n, P]) are both on.

    On CPU an int8 product with int32 accumulation (``torch._int_mm``) reads the boolean masks in
    place, several times faster than converting them to float; elsewhere (CUDA, whose int8 product
    has shape limits) a float32 product, exact since every count is an integer below 2**24.
    ``integer`` forces one path (None: choose by device).
    """
    int_mm = getattr(torch, "_int_mm", None)
    if integer is None:
        integer = units.device.type == "cpu" and int_mm is not None
    if integer and int_mm is not None:
        counts: torch.Tensor = int_mm(units.view(torch.int8), regions.view(torch.int8).T).to(torch.int64)
        return counts
    return torch.mm(units.to(torch.float32), regions.to(torch.float32).T).round_().to(torch.int64)


@dataclass(frozen=True)
class MaskPixels:
    """``count`` bool masks of ``size`` (sh, sw) given by their on pixels, each listed once.

    ``index`` [n] int64 is the mask of each on pixel, ``pixel`` [n] int64 its flat position in sh*sw.
    Thresholded maps are mostly off, so this is far smaller than the dense masks.
    """

    index: torch.Tensor
    pixel: torch.Tensor
    count: int
    size: tuple[int, int]

    def dense(self) -> torch.Tensor:
        """The masks as bool [count, sh, sw]."""
        sh, sw = self.size
        masks = torch.zeros(self.count * sh * sw, dtype=torch.bool, device=self.index.device)
        masks[self.index * (sh * sw) + self.pixel] = True
        return masks.view(self.count, sh, sw)


@dataclass(frozen=True)
class MaskCounts:
    """Each mask's on pixels, and its on pixels per label present: the one label lookup of a batch's masks.

    ``active`` [M] int64 is each mask's area; entry e says mask ``mask[e]`` has ``count[e]`` on pixels
    labelled ``label[e]`` (pixel labels only, each (mask, label) once, sorted by mask then label). The IoU
    counts and the significance and bootstrap counts all start from it, so the lookup is made once.
    """

    active: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    count: torch.Tensor

    @classmethod
    def build(cls, masks: MaskPixels, image_of: torch.Tensor, labels: LabelBatch) -> MaskCounts:
        """Look up the labels of every on pixel of ``masks`` (mask m belongs to batch image ``image_of[m]``)."""
        device = labels.device
        index, pixel, image_of = masks.index.to(device), masks.pixel.to(device), image_of.to(device)
        active = torch.bincount(index, minlength=masks.count)
        table = labels.pixel_table
        width = labels.num_labels + 1
        found = take_rows(table.reshape(len(labels) * labels.num_pixels, table.shape[2]),
                          image_of.index_select(0, index) * labels.num_pixels + pixel)  # [n, K], -1: no label
        # Key (mask, 1 + label) so that no label (-1) falls in column 0, dropped after counting; int32 keys
        # when they fit (half the memory traffic, the same counts), int64 from here on.
        small = masks.count * width <= torch.iinfo(torch.int32).max
        keys = ((index.to(torch.int32) if small else index)[:, None] * width + 1 + found).view(-1)
        if masks.count * width <= 4 * keys.numel():  # dense counting only when the table is not mostly empty
            counts = torch.bincount(keys, minlength=masks.count * width)
            keys = flat_nonzero(counts)
            counts = counts.index_select(0, keys)
        else:
            keys, counts = torch.unique(keys, return_counts=True)
            keys = keys.to(torch.int64)
        keep = keys % width != 0
        keys, counts = masked(keys, keep), masked(counts, keep)
        return cls(active, keys // width, keys % width - 1, counts)


class ConceptOverlap:
    """Intersection, label area and per-category unit area of every unit with every concept.

    Attributes (int64, on the device of the masks given to ``update``): ``intersection`` [U, L],
    ``label_area`` [L], ``unit_area`` [U, C]; ``label_category`` [L] maps label numbers to category
    indices (-1: not a concept); ``num_images`` counts images seen. L = max label number + 1.
    """

    def __init__(self, num_units: int, concepts: ConceptTable) -> None:
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
            raise StatsError(f"num_units must be a positive integer, got {num_units!r}")
        self.num_units = num_units
        self.categories = tuple(concepts.categories)
        self.concepts_crc = table_fingerprint(concepts)
        self.label_category = category_of_labels(concepts)
        self.num_labels = int(self.label_category.shape[0])
        self.num_images = 0
        self.intersection = torch.zeros(num_units, self.num_labels, dtype=torch.int64)
        self.label_area = torch.zeros(self.num_labels, dtype=torch.int64)
        self.unit_area = torch.zeros(num_units, len(self.categories), dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return self.intersection.device

    def update(self, masks: torch.Tensor, labels: LabelBatch) -> None:
        """Count a batch: ``masks`` bool [B, U, sh, sw] (upsampled activation > threshold)."""
        self._check_batch(masks, labels)
        if masks.device != self.device:
            self._to(masks.device)  # state follows the input (e.g. a CPU checkpoint resumed on GPU)
        if labels.device != self.device:
            labels = labels.to(self.device)
        batch = masks.shape[0]
        flat = masks.reshape(batch, self.num_units, labels.num_pixels)
        # Per image, [U, 1 + n_b] counts: column 0 is the unit's active area, then one per label.
        counts = [count_overlaps(flat[b], region) for b, region in enumerate(labels.regions)]
        active = torch.stack([c[:, 0] for c in counts])  # [B, U]
        self.unit_area += (active.unsqueeze(2) * labels.annotated.unsqueeze(1)).sum(dim=0)
        if labels.pixel_numbers.numel() > 0:
            pixel = torch.cat([c[:, 1:] for c in counts], dim=1)
            self.intersection.index_add_(1, labels.pixel_numbers, pixel)
            self.label_area.index_add_(0, labels.pixel_numbers, labels.pixel_areas)
        if labels.image_numbers.numel() > 0:
            self.intersection.index_add_(1, labels.image_numbers, active[labels.image_owner].T)
            whole = torch.full_like(labels.image_numbers, labels.num_pixels)
            self.label_area.index_add_(0, labels.image_numbers, whole)
        self.num_images += batch

    def update_active(
        self, masks: torch.Tensor | MaskPixels, image_of: torch.Tensor, unit_of: torch.Tensor, labels: LabelBatch
    ) -> None:
        """Count a batch given only its non-empty (image, unit) masks: bool [M, sh, sw] or MaskPixels.

        ``image_of`` [M] is each mask's position in the batch, ``unit_of`` [M] its unit. Every pair not
        listed counts as an empty mask, so passing only the units whose activation exceeds the
        threshold somewhere in the image gives exactly the counts of ``update`` at a fraction of the work.
        """
        if isinstance(masks, MaskPixels):
            if not len(image_of) == len(unit_of) == masks.count:
                raise StatsError("update_active needs one image and unit index per mask")
            self._check_labels(labels, masks.size, None)
            self.update_counts(MaskCounts.build(masks, image_of, labels), image_of, unit_of, labels)
            return
        if masks.ndim != 3 or masks.dtype != torch.bool or not len(image_of) == len(unit_of) == len(masks):
            raise StatsError("update_active needs bool masks [M, sh, sw] with one image and unit index each")
        self._check_labels(labels, masks.shape[-2:], None)
        if masks.device != self.device:
            self._to(masks.device)
        if labels.device != self.device:
            labels = labels.to(self.device)
        image_of = image_of.to(self.device)
        unit_of = unit_of.to(self.device)
        flat = masks.reshape(len(masks), labels.num_pixels)
        if bool((image_of[1:] < image_of[:-1]).any()):  # group by image; nonzero() output already is
            order = torch.argsort(image_of, stable=True)
            flat, unit_of = flat[order], unit_of[order]
        bounds = [0, *torch.bincount(image_of, minlength=len(labels)).cumsum(0).tolist()]
        offsets = [0]
        for region in labels.regions:
            offsets.append(offsets[-1] + region.shape[0] - 1)
        for b, region in enumerate(labels.regions):
            if bounds[b + 1] == bounds[b]:
                continue
            units = unit_of[bounds[b]:bounds[b + 1]]
            counts = count_overlaps(flat[bounds[b]:bounds[b + 1]], region)  # [m_b, 1 + n_b]
            active = counts[:, 0]
            self.unit_area.index_add_(0, units, active[:, None] * labels.annotated[b][None, :].to(torch.int64))
            numbers = labels.pixel_numbers[offsets[b]:offsets[b + 1]]
            if numbers.numel() > 0:
                self.intersection.index_put_((units[:, None], numbers[None, :]), counts[:, 1:], accumulate=True)
            whole = labels.image_numbers[labels.image_owner == b]
            if whole.numel() > 0:
                self.intersection.index_put_(
                    (units[:, None], whole[None, :]), active[:, None].expand(-1, len(whole)), accumulate=True
                )
        if labels.pixel_numbers.numel() > 0:
            self.label_area.index_add_(0, labels.pixel_numbers, labels.pixel_areas)
        if labels.image_numbers.numel() > 0:
            self.label_area.index_add_(0, labels.image_numbers, torch.full_like(labels.image_numbers,
                                                                                labels.num_pixels))
        self.num_images += len(labels)

    def update_counts(
        self, counts: MaskCounts, image_of: torch.Tensor, unit_of: torch.Tensor, labels: LabelBatch
    ) -> None:
        """update_active from the masks' label counts (``MaskCounts.build``), which other statistics share."""
        if counts.active.device != self.device:
            self._to(counts.active.device)
        if labels.device != self.device:
            labels = labels.to(self.device)
        image_of, unit_of = image_of.to(self.device), unit_of.to(self.device)
        if not len(image_of) == len(unit_of) == len(counts.active):
            raise StatsError("update_counts needs one image and unit index per mask")
        width = self.num_labels
        active = counts.active
        annotated = labels.annotated.index_select(0, image_of).to(torch.int64)
        self.unit_area.index_add_(0, unit_of, active[:, None] * annotated)
        flat = unit_of.index_select(0, counts.mask) * width + counts.label
        self.intersection.view(-1).index_add_(0, flat, counts.count)
        self.label_area += labels.label_counts[:, 1:].sum(dim=0)
        if labels.image_numbers.numel() > 0:
            # Whole-image labels: as a [B, most per image] table, -1 padded, then one entry per mask.
            order = torch.argsort(labels.image_owner, stable=True)
            owner, numbers = labels.image_owner[order], labels.image_numbers[order]
            per_image = torch.bincount(owner, minlength=len(labels))
            rank = torch.arange(len(owner), device=self.device) - (per_image.cumsum(0) - per_image)[owner]
            whole = torch.full((len(labels), int(per_image.max())), -1, dtype=torch.int64, device=self.device)
            whole[owner, rank] = numbers
            mine = whole[image_of]  # [M, most]
            listed = mine >= 0
            self.intersection.index_put_(
                (unit_of[:, None].expand_as(mine)[listed], mine[listed]),
                active[:, None].expand_as(mine)[listed], accumulate=True,
            )
            self.label_area.index_add_(0, labels.image_numbers, torch.full_like(labels.image_numbers,
                                                                                labels.num_pixels))
        self.num_images += len(labels)

    def merge(self, other: ConceptOverlap) -> None:
        """Fold in the counts of another part of the probe set (disjoint images)."""
        check_kind(_KIND, other, ConceptOverlap, self)
        check_same_args(_KIND, "merge", self._args(), other._args())
        if self.num_images == 0:
            self._to(other.device)
        for name in _COUNTS:
            getattr(self, name).add_(getattr(other, name).to(self.device))
        self.num_images += other.num_images

    def iou(self) -> torch.Tensor:
        """[U, L] float64 IoU; column l is label number l; 0 where the union is empty or l is no concept."""
        category = self.label_category.to(self.device)
        unit_area = self.unit_area[:, category.clamp(min=0)]
        union = unit_area + self.label_area - self.intersection
        valid = (union > 0) & (category >= 0)
        ratio = self.intersection.to(torch.float64) / union.clamp(min=1).to(torch.float64)
        return torch.where(valid, ratio, torch.zeros_like(ratio))

    def state_dict(self) -> dict[str, StateValue]:
        """Arguments (the concept table as its label→category map) and the counts."""
        return {
            **self._args(),
            "num_images": self.num_images,
            **{name: getattr(self, name).clone() for name in _COUNTS},
        }

    def load_state_dict(self, state: Mapping[str, StateValue]) -> None:
        """Restore a state written by ``state_dict`` of a ConceptOverlap built with the same arguments."""
        require_keys(_KIND, state, [*self._args(), "num_images", *_COUNTS])
        theirs = {
            "num_units": as_int(_KIND, state, "num_units"),
            "concepts_crc": as_int(_KIND, state, "concepts_crc"),
            "label_category": as_tensor(_KIND, state, "label_category"),
        }
        check_same_args(_KIND, "load", self._args(), theirs)
        counts = {name: as_tensor(_KIND, state, name) for name in _COUNTS}
        num_images = as_int(_KIND, state, "num_images")
        for name, tensor in counts.items():
            expected = getattr(self, name)
            if tensor.shape != expected.shape or tensor.dtype != torch.int64:
                raise StatsError(
                    f"ConceptOverlap state entry {name!r} is {tensor.dtype} {tuple(tensor.shape)}, expected "
                    f"int64 {tuple(expected.shape)}; load an unmodified state_dict"
                )
        if num_images < 0:
            raise StatsError(f"ConceptOverlap state has {num_images} images; load an unmodified state_dict")
        self.intersection, self.label_area, self.unit_area = (counts[name] for name in _COUNTS)
        self.label_category = self.label_category.to(self.device)
        self.num_images = num_images

    def _args(self) -> dict[str, StateValue]:
        return {
            "num_units": self.num_units,
            "concepts_crc": self.concepts_crc,
            "label_category": self.label_category.clone(),
        }

    def _to(self, device: torch.device) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name).to(device))
        self.label_category = self.label_category.to(device)

    def _check_batch(self, masks: torch.Tensor, labels: LabelBatch) -> None:
        """Refuse masks or labels that do not fit this statistic, before any count changes."""
        if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.dtype != torch.bool:
            shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise StatsError(
                f"ConceptOverlap.update needs bool masks [B, U, sh, sw], got {shape}; "
                "pass (upsampled activations > thresholds)"
            )
        batch, units, sh, sw = masks.shape
        if units != self.num_units:
            raise StatsError(f"masks have {units} units, this ConceptOverlap counts {self.num_units}")
        self._check_labels(labels, (sh, sw), batch)

    def _check_labels(self, labels: LabelBatch, size: tuple[int, int] | torch.Size, batch: int | None) -> None:
        """Refuse labels of another size, batch (None: any) or concept table."""
        sh, sw = (int(v) for v in size)
        if not isinstance(labels, LabelBatch):
            raise StatsError("ConceptOverlap.update needs a LabelBatch; build one with LabelBatch.from_samples")
        batch = len(labels) if batch is None else batch
        if (sh, sw) != labels.label_size or batch != len(labels):
            raise StatsError(
                f"masks are {batch} x {sh}x{sw} but labels hold {len(labels)} x "
                f"{labels.label_size[0]}x{labels.label_size[1]}; upsample activations to the label size "
                "and encode the labels of the same batch"
            )
        if labels.concepts_crc != self.concepts_crc:
            raise StatsError(
                "labels were encoded with another concept table; build LabelBatch and ConceptOverlap "
                "from the same probe set's concepts"
            )
