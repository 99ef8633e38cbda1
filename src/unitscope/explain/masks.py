"""Rebuild a dissected layer's unit masks and the probe set's concept masks, bit-packed, in one pass.

The run keeps its thresholds but not its (huge) upsampled masks, so we run the forward pass again over
the same probe set with the run's model, preprocessing and thresholds, and threshold the upsampled maps
with the dissection's own ``WindowedMasks``: the masks equal ``Upsampler(maps) > threshold`` bit for
bit, as in ``dissect``. Unit masks are kept as their set bit positions (units fire on ~0.5 % of pixels);
concept masks as packed words. Nothing statistical is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.data.probe import ProbeSample
from unitscope.errors import UsageError
from unitscope.explain.bank import ConceptBank
from unitscope.explain.bitmasks import WORD_BITS, pack, words_per_image
from unitscope.explain.source import RunLayer
from unitscope.stats.labels import LabelBatch

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


def compute_masks(run: RunLayer, device: str = "cpu", batch_size: int = 32, progress: bool = True) -> LayerMasks:
    """One forward pass over the run's probe set: unit masks at the run's thresholds, and concept masks."""
    from unitscope.capture import LayerCapture
    from unitscope.data import open_probe
    from unitscope.dissection.loader import iterate_batches
    from unitscope.dissection.sparse_masks import WindowedMasks
    from unitscope.dissection.upsample import Upsampler
    from unitscope.models.loading import load_model
    from unitscope.progress import progress_bar

    spec, data = run.model, run.data
    loaded = load_model(str(spec["model"]), spec.get("weights"), spec.get("num_classes"), device)  # type: ignore[arg-type]
    loaded.preprocess = loaded.preprocess.with_overrides(spec.get("input_size"), spec.get("mean"), spec.get("std"))  # type: ignore[arg-type]
    count = None if data["n"] is None else int(data["n"])  # type: ignore[call-overload]
    probe = open_probe(str(data["data"]), n=count, seed=int(data["seed"]), size=int(data["size"]))  # type: ignore[call-overload]
    if tuple(probe.label_size) != run.label_size:
        raise UsageError(f"the probe set now has labels of {probe.label_size}, the run used {run.label_size}; "
                         "explain needs the probe set the run was dissected on")
    stride = start = None
    if run.upsample == "rf":  # the run's own receptive-field alignment, else the same theory dissect used
        field = run.geometry
        if field is None:
            from unitscope.receptive.theory import alignment_geometry

            field = alignment_geometry(loaded.module, run.input_size).get(run.path)
        stride, start = field if field is not None else (None, None)
    masker = WindowedMasks.build(Upsampler.build(run.upsample, run.map_size, run.label_size, run.input_size,
                                                 stride, start).to(loaded.device))
    thresholds = torch.from_numpy(run.thresholds.copy()).to(loaded.device, torch.float32)  # as dissect's pass 2
    concepts = run.concepts
    pixels = run.label_size[0] * run.label_size[1]
    words, bits_per_image = words_per_image(pixels), words_per_image(pixels) * WORD_BITS
    row_of = np.full(concepts.max_number + 1, 0, dtype=np.int64)
    row_of[[c.number for c in concepts.concepts]] = np.arange(len(concepts))
    primary = np.array([concepts.categories.index(c.category) for c in concepts.concepts], dtype=np.int64)
    images = np.array([i for i in range(len(probe)) if i not in run.skipped], dtype=np.int64)
    bank_bytes = len(concepts) * len(images) * words * 8
    if bank_bytes > MAX_BANK_BYTES:
        raise UsageError(f"the packed concept masks would take {bank_bytes / 2**30:.1f} GiB "
                         f"({len(concepts)} concepts x {len(images)} images x {pixels} pixels); "
                         "explain a run dissected on fewer images (dissect --n)")
    position = np.full(len(probe), -1, dtype=np.int64)
    position[images] = np.arange(len(images))
    concept_words = np.zeros((len(concepts), len(images), words), dtype=np.uint64)
    annotated = np.zeros((len(images), len(concepts.categories)), dtype=bool)
    found_units: list[np.ndarray] = []
    found_bits: list[np.ndarray] = []
    with (progress_bar(total=len(probe), desc="explain: masks", unit="img", disable=not progress) as bar,
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
            rows = position[[i for i, _ in good]]
            acts = capture.run(loaded.preprocess.batch([s.image for s in samples], loaded.device))[run.path]
            image_of, unit_of = masker.active_pairs(acts, thresholds)
            on = masker.pixels(acts[image_of, unit_of], thresholds[unit_of])
            pair = on.index.cpu().numpy()
            found_units.append(unit_of.cpu().numpy()[pair])
            found_bits.append(rows[image_of.cpu().numpy()[pair]] * bits_per_image + on.pixel.cpu().numpy())
            labels = LabelBatch.from_samples(samples, concepts, run.label_size)
            masks = _concept_masks(labels, row_of, len(concepts), pixels)
            concept_words[:, rows] = pack(masks)
            present = np.asarray(masks.any(axis=2), dtype=bool)  # [K, B]: a label counts under its primary category
            primary_present = np.zeros((len(samples), len(concepts.categories)), dtype=bool)
            for c in range(len(concepts.categories)):
                primary_present[:, c] = present[primary == c].any(axis=0)
            annotated[rows] = labels.annotated.cpu().numpy() | primary_present
    unit = np.concatenate(found_units) if found_units else np.zeros(0, dtype=np.int64)
    bits = np.concatenate(found_bits) if found_bits else np.zeros(0, dtype=np.int64)
    order = np.argsort(unit, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(unit, minlength=run.units))]).astype(np.int64)
    bank = ConceptBank(np.array([c.number for c in concepts.concepts], dtype=np.int64),
                       tuple(c.name for c in concepts.concepts), primary, tuple(concepts.categories),
                       concept_words, annotated, pixels)
    return LayerMasks(bank, bits[order].astype(np.int64), offsets, images)
