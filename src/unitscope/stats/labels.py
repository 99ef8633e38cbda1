"""The labels of a batch of probe samples, encoded once so every unit of every layer reuses them.

Per image and pixel we keep the concept labels present there (a few of Broden's ~1200) in a small
table, ready for looking up the pixels where a unit is on. From it, on demand, each image's labels
present become boolean masks over the label-resolution pixels, ready for one matrix product with the
units' masks. Row 0 of each image's regions is the whole image, so the same product also yields every
unit's active area, which is the overlap with any whole-image label (scene, texture); those need no
mask of their own.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from unitscope.data.probe import ConceptTable, ProbeSample
from unitscope.stats._state import StatsError

# float32 (the GPU path of ConceptOverlap) counts pixels exactly while sums stay below 2**24.
MAX_EXACT_PIXELS: int = 2**24


def table_fingerprint(concepts: ConceptTable) -> int:
    """A checksum of a concept table (categories, numbers, names), stable across processes."""
    rows = [repr(tuple(concepts.categories))]
    rows += [f"{c.number}\x1f{c.name}\x1f{c.category}" for c in sorted(concepts.concepts, key=lambda c: c.number)]
    return zlib.crc32("\x1e".join(rows).encode("utf-8"))


def concept_lookup(concepts: ConceptTable) -> np.ndarray:
    """[max_number + 1] bool: which label numbers are concepts of the table (0 never is)."""
    lookup = np.zeros(concepts.max_number + 1, dtype=bool)
    lookup[[c.number for c in concepts.concepts]] = True
    return lookup


def _key_dtype(bins: int) -> torch.dtype:
    """int32 for bincount keys below ``bins`` when they fit: half the memory traffic of int64, same counts."""
    return torch.int32 if bins <= np.iinfo(np.int32).max else torch.int64


@dataclass(frozen=True)
class LabelBatch:
    """Labels of B probe samples at label resolution (sh, sw), P = sh*sw pixels.

    pixel_table: int32 [B, P, K], the distinct concept label numbers present at each pixel (the union
      over all stacked maps of all pixel categories), -1 where fewer than K; K is the most maps any
      sample of the batch stacks.
    regions (derived): per image, bool [1 + n_b, P]: row 0 all True (the whole image), then one row per
      pixel label present, in increasing label number.
    pixel_numbers, pixel_areas (derived): int64 [sum n_b], label number and pixel count of each row
      after row 0.
    image_numbers, image_owner: int64 [m], whole-image labels and the batch position carrying each.
    annotated: bool [B, C], whether image b holds at least one labelled pixel or image label of a concept
      whose primary category is ``categories[c]`` (original NetDissect's ``count_act_with_labelcat``: the
      unit's active pixels in image b count toward category c only then). Which column a label came from
      does not matter, so a label of two categories (Broden ``material(6);object(2)``) counts under its
      primary one everywhere, and no IoU can exceed 1.
    concepts_crc: the concept table's fingerprint, so labels of another table are refused.
    Label numbers outside the concept table are ignored; a label given both as a whole-image
    label and in a map counts once, as the whole image.
    """

    label_size: tuple[int, int]
    categories: tuple[str, ...]
    num_labels: int
    concepts_crc: int
    pixel_table: torch.Tensor
    image_numbers: torch.Tensor
    image_owner: torch.Tensor
    annotated: torch.Tensor

    def __len__(self) -> int:
        return int(self.annotated.shape[0])

    @property
    def num_pixels(self) -> int:
        return self.label_size[0] * self.label_size[1]

    @property
    def device(self) -> torch.device:
        return self.annotated.device

    @property
    def regions(self) -> tuple[torch.Tensor, ...]:
        return self._pixel_rows[0]

    @property
    def pixel_numbers(self) -> torch.Tensor:
        return self._pixel_rows[1]

    @property
    def pixel_areas(self) -> torch.Tensor:
        return self._pixel_rows[2]

    @cached_property
    def _pixel_rows(self) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """Regions, numbers and areas from the table, built only when a dense product needs them."""
        regions, numbers, areas = [], [], []
        whole = torch.ones(1, self.num_pixels, dtype=torch.bool, device=self.device)
        for table in self.pixel_table:  # [P, K]
            counts = torch.bincount(table[table >= 0].to(torch.int64), minlength=self.num_labels)
            nums = torch.nonzero(counts)[:, 0]
            regions.append(torch.cat([whole, (table.T[None, :, :] == nums[:, None, None]).any(dim=1)]))
            numbers.append(nums)
            areas.append(counts[nums])
        empty = torch.zeros(0, dtype=torch.int64, device=self.device)
        return tuple(regions), torch.cat([empty, *numbers]), torch.cat([empty, *areas])

    @cached_property
    def _runs(self) -> LabelRuns:
        return label_runs(self.pixel_table, numpy=self.device.type == "cpu")

    @cached_property
    def label_counts(self) -> torch.Tensor:
        """int64 [B, L + 1]: pixels of each label number per image (column 0: none); built once per batch."""
        return run_label_counts(self._runs, len(self), self.num_labels, self.num_pixels,
                                numpy=self.device.type == "cpu")

    @cached_property
    def position_edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys ``(1 + label) * P + pixel`` (no label: row 0) of where each run of a label begins along a map
        (first) and where the run before it ends (second: at the pixel after its last), int32 when that fits.

        Summed over a batch into an [L + 1, P] table, +1 per begin and -1 per end, the running sum along the
        pixels counts the images holding each label at each position (``NullMoments.label_map``)."""
        return run_position_edges(self._runs, self.num_labels, self.num_pixels, numpy=self.device.type == "cpu")

    def to(self, device: torch.device | str) -> LabelBatch:
        """The same labels on another device."""
        return LabelBatch(
            label_size=self.label_size,
            categories=self.categories,
            num_labels=self.num_labels,
            concepts_crc=self.concepts_crc,
            pixel_table=self.pixel_table.to(device),
            image_numbers=self.image_numbers.to(device),
            image_owner=self.image_owner.to(device),
            annotated=self.annotated.to(device),
        )

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[ProbeSample],
        concepts: ConceptTable,
        label_size: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> LabelBatch:
        """Encode the labels of ``samples`` (pixel maps must be [k, sh, sw] at ``label_size``)."""
        encoder = LabelEncoder(concepts, label_size)
        return cls.from_encoded([encoder.encode(s) for s in samples], encoder, device)

    @classmethod
    def from_encoded(
        cls, encoded: Sequence[SampleLabels], encoder: LabelEncoder, device: torch.device | str = "cpu"
    ) -> LabelBatch:
        """A batch of samples encoded one by one (in loader workers, or read back from a label cache)."""
        pixels = encoder.num_pixels
        depth = max((len(e.table) for e in encoded), default=0)
        table = np.full((len(encoded), pixels, depth), -1, dtype=np.int32)
        for b, e in enumerate(encoded):
            table[b, :, : len(e.table)] = e.table.T
        whole = [e.whole.astype(np.int64, copy=False) for e in encoded]
        owner = [np.full(len(w), b, dtype=np.int64) for b, w in enumerate(whole)]
        annotated = np.zeros((len(encoded), len(encoder.categories)), dtype=bool)
        for b, e in enumerate(encoded):
            annotated[b] = e.annotated
        return cls(
            label_size=encoder.label_size,
            categories=encoder.categories,
            num_labels=encoder.num_labels,
            concepts_crc=encoder.concepts_crc,
            pixel_table=torch.from_numpy(table).to(device),
            image_numbers=_long(np.concatenate([np.zeros(0, np.int64), *whole]), device),
            image_owner=_long(np.concatenate([np.zeros(0, np.int64), *owner]), device),
            annotated=torch.from_numpy(annotated).to(device),
        )


@dataclass(frozen=True)
class SampleLabels:
    """One sample's labels as LabelBatch needs them: small, picklable, and what the label cache stores.

    table: int32 [k, P], the concept label of each of the sample's k stacked maps at each pixel, -1 for none
    or a repeat; whole: int64 [m], its whole-image concept labels, increasing; annotated: bool [C], as
    ``LabelBatch.annotated``.
    """

    table: np.ndarray
    whole: np.ndarray
    annotated: np.ndarray


class LabelEncoder:
    """Encodes samples of one concept table at one label size, one at a time (cheap to send to a worker)."""

    def __init__(self, concepts: ConceptTable, label_size: tuple[int, int]) -> None:
        sh, sw = (int(s) for s in label_size)
        if sh < 1 or sw < 1 or sh * sw >= MAX_EXACT_PIXELS:
            raise StatsError(f"label_size must be positive and below 2**24 pixels, got {label_size!r}")
        self.label_size = (sh, sw)
        self.categories = tuple(concepts.categories)
        self.num_labels = concepts.max_number + 1
        self.concepts_crc = table_fingerprint(concepts)
        self.lookup = concept_lookup(concepts)
        self.primary = primary_category_index(concepts)

    @property
    def num_pixels(self) -> int:
        return self.label_size[0] * self.label_size[1]

    def encode(self, sample: ProbeSample) -> SampleLabels:
        """The sample's labels; a map of another size is refused (StatsError)."""
        whole = sorted(
            {int(n) for labels in sample.image_labels.values() for n in labels if _known(self.lookup, int(n))}
        )
        rows, labelled = _pixel_table(sample, self.label_size, self.lookup, whole)
        numbers = np.concatenate([labelled.astype(np.int64), np.asarray(whole, np.int64)])
        present = np.flatnonzero(np.bincount(numbers, minlength=1))  # the labels present (no sort needed)
        annotated = np.zeros(len(self.categories) + 1, dtype=bool)  # last: no category, dropped
        annotated[self.primary[present]] = True
        return SampleLabels(rows, np.asarray(whole, dtype=np.int64), annotated[:-1].copy())


def primary_category_index(concepts: ConceptTable) -> np.ndarray:
    """[max_number + 1] int64: index in ``concepts.categories`` of each concept's primary category.

    Non-concepts map to an extra last column callers drop (never looked up: only concepts are present).
    """
    index = {name: i for i, name in enumerate(concepts.categories)}
    table = np.full(concepts.max_number + 1, len(concepts.categories), dtype=np.int64)
    for concept in concepts.concepts:
        table[concept.number] = index.get(concept.category, len(concepts.categories))
    return table


def _known(lookup: np.ndarray, number: int) -> bool:
    return 0 < number < len(lookup) and bool(lookup[number])


def _long(values: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.int64, copy=False)).to(device)


def _pixel_table(
    sample: ProbeSample, size: tuple[int, int], lookup: np.ndarray, whole: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """int32 [k, P]: the concept labels of one sample's k stacked maps, -1 for none or a repeat; and the label
    numbers of its runs (every pixel label present, some more than once).

    Label maps are piecewise constant, so the work is done per run of equal values along each map (~30 times
    fewer than pixels) and the table is the runs repeated out; a pixel-by-pixel pass is needed only where two
    maps hold the same label."""
    pixels = size[0] * size[1]
    stacks = []
    for category, maps in sample.pixel_labels.items():
        arr = np.asarray(maps)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or tuple(arr.shape[1:]) != size:
            raise StatsError(
                f"sample {sample.index}: {category} label maps have shape {arr.shape}, expected "
                f"[k, {size[0]}, {size[1]}]; give labels at the probe set's label_size"
            )
        stacks.append(arr.reshape(arr.shape[0], pixels))
    if not stacks:
        return np.zeros((0, pixels), dtype=np.int32), np.zeros(0, dtype=np.int32)
    flat = np.concatenate(stacks, axis=0)
    if not np.issubdtype(flat.dtype, np.integer):
        flat = flat.astype(np.int64)
    at = run_starts(flat)  # each map begins a run
    values = flat.reshape(-1)[at]
    # Concepts of the table that are no whole-image label here; numbers out of range read the False at the end.
    wanted = np.append(lookup, False)
    wanted[list(whole)] = False
    valid = np.take(wanted, values, mode="clip")  # negatives read lookup[0] (no concept), too large the False
    lengths = np.diff(at, append=flat.size)
    labelled = values[valid].astype(np.int32)
    held = np.zeros((len(flat), len(wanted)), dtype=bool)  # [map, label]: where the same label is in two maps
    held[at[valid] // pixels, labelled] = True
    if len(flat) < 2 or not bool((np.count_nonzero(held, axis=0) > 1).any()):
        return np.repeat(np.where(valid, values, -1).astype(np.int32), lengths).reshape(flat.shape), labelled
    every = np.repeat(valid, lengths).reshape(flat.shape)
    for k in range(1, len(flat)):  # a label in several maps at one pixel counts once
        every[k] &= ~((flat[:k] == flat[k]) & every[:k]).any(axis=0)
    return np.where(every, flat, -1).astype(np.int32, copy=False), labelled


def run_starts(values: np.ndarray) -> np.ndarray:
    """int64 flat positions in ``values`` [N, L, ...] where a run of equal values along axis 1 begins (position 0
    of each line along it included): label maps are piecewise constant, so there are few."""
    begins = np.empty(values.shape, dtype=bool)
    begins[:, :1] = True
    np.not_equal(values[:, 1:], values[:, :-1], out=begins[:, 1:])
    return np.flatnonzero(begins)


@dataclass(frozen=True)
class LabelRuns:
    """The runs of equal labels along the pixels of each stacked map of a batch (``pixel_table[b, :, k]``).

    Label maps are piecewise constant, so a batch has ~30 times fewer runs than table entries, and every
    per-pixel count the sums need follows from where runs begin, one entry per run. Per run: ``image``,
    first ``pixel`` and ``label`` (int64); ``after``: bool, whether it ends a run before it (pixel > 0);
    ``before``: the label of the run it ends, one per True of ``after``.
    """

    image: torch.Tensor
    pixel: torch.Tensor
    label: torch.Tensor
    after: torch.Tensor
    before: torch.Tensor


def label_runs(table: torch.Tensor, numpy: bool) -> LabelRuns:
    """The runs of ``table`` [B, P, K]; ``numpy`` (CPU tensors only): several times torch's CPU speed for the
    compare and the selections, the same values."""
    _, pixels, depth = table.shape
    if depth == 0:  # no maps: no runs
        none = torch.zeros(0, dtype=torch.int64, device=table.device)
        return LabelRuns(none, none, none, none.bool(), none)
    if numpy:
        entries = table.numpy()
        at = run_starts(entries)
        pixel = at // depth % pixels
        after = pixel > 0
        flat = entries.reshape(-1)
        parts = (at // (pixels * depth), pixel, flat[at].astype(np.int64), after,
                 flat[at[after] - depth].astype(np.int64))
        return LabelRuns(*(torch.from_numpy(part) for part in parts))
    begins_t = torch.ones(table.shape, dtype=torch.bool, device=table.device)
    begins_t[:, 1:] = table[:, 1:] != table[:, :-1]
    at_t = torch.nonzero(begins_t.view(-1))[:, 0]
    pixel_t = at_t // depth % pixels
    after_t = pixel_t > 0
    flat_t = table.reshape(-1)
    return LabelRuns(at_t // (pixels * depth), pixel_t, flat_t[at_t].to(torch.int64), after_t,
                     flat_t[at_t[after_t] - depth].to(torch.int64))


def run_label_counts(runs: LabelRuns, batch: int, num_labels: int, pixels: int, numpy: bool) -> torch.Tensor:
    """int64 [B, L + 1], ``LabelBatch.label_counts`` from the runs: a run beginning at pixel p adds the P - p
    pixels to its map's end, and the next run takes off what lies beyond its own beginning."""
    width = num_labels + 1
    to_end = pixels - runs.pixel
    if numpy:  # a weighted bincount: whole numbers, exact in float64
        image, label, after, before, reach = (t.numpy() for t in (runs.image, runs.label, runs.after, runs.before,
                                                                  to_end))
        counts = np.bincount(image * width + 1 + label, weights=reach, minlength=batch * width) - np.bincount(
            image[after] * width + 1 + before, weights=reach[after], minlength=batch * width)
        return torch.from_numpy(counts.astype(np.int64).reshape(batch, width))
    flat = torch.zeros(batch * width, dtype=torch.int64, device=runs.image.device)
    flat.index_add_(0, runs.image * width + 1 + runs.label, to_end)
    flat.index_add_(0, runs.image[runs.after] * width + 1 + runs.before, -to_end[runs.after])
    return flat.view(batch, width)


def run_position_edges(runs: LabelRuns, num_labels: int, pixels: int, numpy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``LabelBatch.position_edges`` from the runs."""
    dtype = _key_dtype((num_labels + 1) * pixels)
    if numpy:
        pixel, label, after, before = (t.numpy() for t in (runs.pixel, runs.label, runs.after, runs.before))
        width = np.int32 if dtype == torch.int32 else np.int64
        return (torch.from_numpy(((1 + label) * pixels + pixel).astype(width)),
                torch.from_numpy(((1 + before) * pixels + pixel[after]).astype(width)))
    begins = (1 + runs.label) * pixels + runs.pixel
    return begins.to(dtype), ((1 + runs.before) * pixels + runs.pixel[runs.after]).to(dtype)
