"""Rebuild a dissected layer's unit masks and the probe set's concept masks, bit-packed, in one pass.

The run keeps its thresholds but not its (huge) upsampled masks, so we run the forward pass again over
the same probe set with the run's model, preprocessing and thresholds, and threshold the upsampled maps
with the dissection's own ``WindowedMasks``: the masks equal ``Upsampler(maps) > threshold`` bit for
bit, as in ``dissect``. Unit masks are kept as their set bit positions (units fire on ~0.5 % of pixels);
concept masks as packed words. Nothing statistical is recomputed.

The same passes serve the random twin (``null.py``): ``layer_thresholds`` cuts its maps at the run's
quantile with the dissection's exact statistic, ``unit_bits`` thresholds them into the same layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.errors import UsageError
from unitscope.explain.bank import ConceptBank
from unitscope.explain.bitmasks import WORD_BITS, pack, words_per_image
from unitscope.explain.source import RunLayer
from unitscope.stats.labels import LabelBatch

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust
    from unitscope.dissection.sparse_masks import WindowedMasks
    from unitscope.models.loading import LoadedModel

# Concept masks are held densely, one bit per label pixel per concept: fine for SceneWorld (20 MB at 300 images),
# not for all of Broden (~120 GB), which would need them stored per image where each concept is present.
MAX_BANK_BYTES: int = 8 * 2**30


@dataclass
class LayerMasks:
    """Concept bank and every unit's set bits (unit u: ``bits[offsets[u]:offsets[u + 1]]``)."""

    bank: ConceptBank
    bits: np.ndarray  # int64, grouped by unit
    offsets: np.ndarray  # [U + 1] int64
    images: np.ndarray  # [N] probe index of each bank image

    def unit_bits(self, unit: int) -> np.ndarray:
        return self.bits[self.offsets[unit]:self.offsets[unit + 1]]

    @property
    def units(self) -> int:
        return len(self.offsets) - 1

    def subset(self, rows: np.ndarray, bank: ConceptBank | None = None) -> LayerMasks:
        """The masks over the bank images ``rows`` only (ascending), renumbered 0..len(rows)-1; ``bank``: the
        same subset of the bank made before (another network's masks share it, and its formula cache)."""
        rows = np.asarray(rows, dtype=np.int64)
        b = self.bank
        if bank is None:
            bank = ConceptBank(b.numbers, b.names, b.categories, b.category_names,
                               np.ascontiguousarray(b.words[:, rows]), b.annotated[rows], b.pixels)
        elif bank.num_images != len(rows):
            raise ValueError(f"a bank of {bank.num_images} images given for {len(rows)} rows")
        per_image = b.words_per_image * WORD_BITS
        position = np.full(b.num_images, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        image = position[self.bits // per_image]
        keep = image >= 0
        unit = np.repeat(np.arange(self.units), np.diff(self.offsets))[keep]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(unit, minlength=self.units))]).astype(np.int64)
        return LayerMasks(bank, image[keep] * per_image + self.bits[keep] % per_image, offsets, self.images[rows])

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (the checkpoint of the mask pass)."""
        b = self.bank
        return {"numbers": b.numbers, "names": np.array(b.names, dtype=object).astype(str),
                "categories": b.categories, "category_names": np.array(b.category_names, dtype=str),
                "words": b.words, "annotated": b.annotated, "pixels": np.array(b.pixels),
                "bits": self.bits, "offsets": self.offsets, "images": self.images}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> LayerMasks:
        bank = ConceptBank(state["numbers"], tuple(str(s) for s in state["names"]), state["categories"],
                           tuple(str(s) for s in state["category_names"]), state["words"], state["annotated"],
                           int(state["pixels"]))
        return cls(bank, state["bits"], state["offsets"], state["images"])


def _concept_masks(labels: LabelBatch, row_of: np.ndarray, concepts: int, pixels: int) -> np.ndarray:
    """bool [K, B, P] from the encoded labels (pixel labels and whole-image labels)."""
    table = labels.pixel_table.cpu().numpy()  # [B, P, depth], label numbers or -1
    out = np.zeros((concepts, len(labels), pixels), dtype=bool)
    b, p, d = np.nonzero(table >= 0)
    out[row_of[table[b, p, d]], b, p] = True
    owner = labels.image_owner.cpu().numpy()
    numbers = labels.image_numbers.cpu().numpy()
    out[row_of[numbers], owner, :] = True
    return out


class RunInputs:
    """The run's model and probe set, reopened once (``dissection.reopen``) when first needed: the mask pass,
    every random twin and the page's pictures share them instead of each reopening and re-checking the run."""

    def __init__(self, run: RunLayer, device: str = "cpu", trust: Trust | None = None) -> None:
        self.run, self.device, self.trust = run, device, trust
        self._model: LoadedModel | None = None
        self._probe: ProbeSet | None = None

    def model(self) -> LoadedModel:
        if self._model is None:
            from unitscope.dissection.reopen import reopen_model

            self._model = reopen_model(self.run.result, device=self.device, trust=self.trust)
        return self._model

    def probe(self) -> ProbeSet:
        if self._probe is None:
            self._probe = reopen_probe_of(self.run)
        return self._probe


def compute_masks(run: RunLayer, device: str = "cpu", batch_size: int = 32, progress: bool = True,
                  trust: Trust | None = None, inputs: RunInputs | None = None) -> LayerMasks:
    """One forward pass over the run's probe set: unit masks at the run's thresholds, and concept masks.

    The model and probe set come back through ``dissection.reopen`` (checked against the run's digests, no
    code from the run folder without ``trust``), and the pass runs under the run's own autocast (``--amp``),
    so the maps are compared with thresholds measured at the same precision.
    """
    inputs = inputs or RunInputs(run, device, trust)
    loaded, probe = inputs.model(), inputs.probe()
    concepts = run.concepts
    pixels = run.label_size[0] * run.label_size[1]
    words = words_per_image(pixels)
    row_of = np.full(concepts.max_number + 1, 0, dtype=np.int64)
    row_of[[c.number for c in concepts.concepts]] = np.arange(len(concepts))
    primary = np.array([concepts.categories.index(c.category) for c in concepts.concepts], dtype=np.int64)
    images = dissected_images(run, probe)
    bank_bytes = len(concepts) * len(images) * words * 8
    if bank_bytes > MAX_BANK_BYTES:
        raise UsageError(f"the packed concept masks would take {bank_bytes / 2**30:.1f} GiB "
                         f"({len(concepts)} concepts x {len(images)} images x {pixels} pixels); "
                         "explain a run dissected on fewer images (dissect --n)")
    concept_words = np.zeros((len(concepts), len(images), words), dtype=np.uint64)
    annotated = np.zeros((len(images), len(concepts.categories)), dtype=bool)
    masker = unit_masker(run, loaded)
    thresholds = torch.from_numpy(run.thresholds.copy()).to(loaded.device, torch.float32)  # as dissect's pass 2
    found = _UnitBits(run, words * WORD_BITS)
    for rows, samples, acts in layer_batches(run, loaded, probe, images, batch_size, progress, "explain: masks"):
        found.add(masker, acts, thresholds, rows)
        labels = LabelBatch.from_samples(samples, concepts, run.label_size)
        masks = _concept_masks(labels, row_of, len(concepts), pixels)
        concept_words[:, rows] = pack(masks)
        present = np.asarray(masks.any(axis=2), dtype=bool)  # [K, B]: a label counts under its primary category
        primary_present = np.zeros((len(samples), len(concepts.categories)), dtype=bool)
        for c in range(len(concepts.categories)):
            primary_present[:, c] = present[primary == c].any(axis=0)
        annotated[rows] = labels.annotated.cpu().numpy() | primary_present
    bits, offsets = found.result()
    bank = ConceptBank(np.array([c.number for c in concepts.concepts], dtype=np.int64),
                       tuple(c.name for c in concepts.concepts), primary, tuple(concepts.categories),
                       concept_words, annotated, pixels)
    return LayerMasks(bank, bits, offsets, images)


def reopen_probe_of(run: RunLayer) -> ProbeSet:
    """The run's probe set (``dissection.reopen``), refused if its labels are no longer the run's size."""
    from unitscope.dissection.reopen import reopen_probe

    probe = reopen_probe(run.result)
    if tuple(probe.label_size) != run.label_size:
        raise UsageError(f"the probe set now has labels of {probe.label_size}, the run used {run.label_size}; "
                         "explain needs the probe set the run was dissected on")
    return probe


def dissected_images(run: RunLayer, probe: ProbeSet) -> np.ndarray:
    """Probe indices of the images the run dissected (all but its skipped ones), ascending."""
    return np.array([i for i in range(len(probe)) if i not in run.skipped], dtype=np.int64)


def unit_masker(run: RunLayer, loaded: LoadedModel) -> WindowedMasks:
    """The dissection's own upsampling and thresholding for this layer (``rf``: the run's field geometry)."""
    from unitscope.dissection.sparse_masks import WindowedMasks
    from unitscope.dissection.upsample import Upsampler

    stride = start = None
    if run.upsample == "rf":  # the run's own receptive-field alignment, else the same theory dissect used
        field = run.geometry
        if field is None:
            from unitscope.receptive.theory import alignment_geometry

            field = alignment_geometry(loaded.module, run.input_size).get(run.path)
        stride, start = field if field is not None else (None, None)
    return WindowedMasks.build(Upsampler.build(run.upsample, run.map_size, run.label_size, run.input_size,
                                               stride, start).to(loaded.device))


def layer_batches(run: RunLayer, loaded: LoadedModel, probe: ProbeSet, images: np.ndarray, batch_size: int,
                  progress: bool, desc: str) -> Iterator[tuple[np.ndarray, list[ProbeSample], torch.Tensor]]:
    """(rows in ``images``, samples, the layer's maps) per batch of the dissected images, under the run's
    autocast (``--amp``: thresholds were measured on maps of that precision)."""
    from unitscope.capture import LayerCapture
    from unitscope.dissection.loader import iterate_batches
    from unitscope.progress import progress_bar

    position = np.full(len(probe), -1, dtype=np.int64)
    position[images] = np.arange(len(images))
    with (progress_bar(total=len(probe), desc=desc, unit="img", disable=not progress) as bar,
          LayerCapture(loaded.module, [run.path]) as capture):
        for batch in iterate_batches(probe, 0, batch_size, 0):
            good = [(i, s) for i, s in zip(batch.indices, batch.samples, strict=True) if position[i] >= 0]
            bad = [i for i, s in good if s is None]
            if bad:
                raise UsageError(f"probe image {bad[0]} cannot be read now but was dissected: "
                                 f"{batch.errors.get(bad[0], 'unreadable')}")
            bar.update(len(batch.indices))
            if not good:
                continue
            samples: list[ProbeSample] = [s for _, s in good if s is not None]
            with loaded.autocast():
                acts = capture.run(loaded.preprocess.batch([s.image for s in samples], loaded.device))[run.path]
            yield position[[i for i, _ in good]], samples, acts


def unit_bits(run: RunLayer, loaded: LoadedModel, probe: ProbeSet, images: np.ndarray, thresholds: np.ndarray,
              batch_size: int = 32, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every unit's set bits (grouped by unit) and offsets [U + 1] for ``loaded`` at ``thresholds``, in the
    layout of ``compute_masks`` (another network of the same architecture: the random twin)."""
    masker = unit_masker(run, loaded)
    limits = torch.from_numpy(np.asarray(thresholds, dtype=np.float64).copy()).to(loaded.device, torch.float32)
    found = _UnitBits(run, words_per_image(run.label_size[0] * run.label_size[1]) * WORD_BITS)
    for rows, _, acts in layer_batches(run, loaded, probe, images, batch_size, progress, "explain: twin masks"):
        found.add(masker, acts, limits, rows)
    return found.result()


def layer_thresholds(run: RunLayer, loaded: LoadedModel, probe: ProbeSet, images: np.ndarray,
                     batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """[U] float64: each unit's threshold at the run's top quantile over the dissected images, by the same
    exact statistic (``stats.TopQuantile``, fed and read as the dissection engine's pass 1 does)."""
    from unitscope.stats import TopQuantile

    h, w = run.map_size
    quantile = TopQuantile(run.units, run.quantile, len(probe) * h * w)
    for _, _, acts in layer_batches(run, loaded, probe, images, batch_size, progress, "explain: twin thresholds"):
        if tuple(acts.shape[1:]) != (run.units, h, w):
            raise UsageError(f"the random twin's {run.layer} has maps of {tuple(acts.shape[1:])}, the run's "
                             f"{(run.units, h, w)}")
        quantile.update(acts.transpose(0, 1).reshape(run.units, -1))
    return np.asarray(quantile.thresholds(count=len(images) * h * w).cpu().numpy(), dtype=np.float64)


class _UnitBits:
    """Collects the on pixels of every unit's masks as bit positions of the bank's flat layout."""

    def __init__(self, run: RunLayer, bits_per_image: int) -> None:
        self.units = run.units
        self.bits_per_image = bits_per_image
        self.found_units: list[np.ndarray] = []
        self.found_bits: list[np.ndarray] = []

    def add(self, masker: WindowedMasks, acts: torch.Tensor, thresholds: torch.Tensor, rows: np.ndarray) -> None:
        image_of, unit_of = masker.active_pairs(acts, thresholds)
        on = masker.pixels(acts[image_of, unit_of], thresholds[unit_of])
        pair = on.index.cpu().numpy()
        self.found_units.append(unit_of.cpu().numpy()[pair])
        self.found_bits.append(rows[image_of.cpu().numpy()[pair]] * self.bits_per_image + on.pixel.cpu().numpy())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        unit = np.concatenate(self.found_units) if self.found_units else np.zeros(0, dtype=np.int64)
        bits = np.concatenate(self.found_bits) if self.found_bits else np.zeros(0, dtype=np.int64)
        order = np.argsort(unit, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(unit, minlength=self.units))]).astype(np.int64)
        return bits[order].astype(np.int64), offsets
