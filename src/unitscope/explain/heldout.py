"""Chosen on one half, scored on the other: the fit / held-out split of the probe images, and IoU on a split.

The beam search picks the best of ~10^5 formulas per unit. Scored on the images it chose them on, almost
any unit "gains" from composition, a random network's too (429 of 512 units of a random ResNet-18's
layer4 on 100 images). So a unit's formula, and the best single concept it is compared with, are both
chosen on the *fit* images, and their IoU and the gain are reported on the *held-out* images, which the
search never saw.

The split needs no seed: probe image i is held out when floor((i+1)·f) > floor(i·f), f the held-out
fraction taken as an exact fraction, so the held-out images are spread evenly along the probe set (every
second image for f = 1/2: the odd ones; every third for 1/3) and an image's side depends only on its index
(not on which images a run skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from unitscope.errors import UsageError
from unitscope.explain.bank import ConceptBank, UnitMask
from unitscope.explain.bitmasks import popcount
from unitscope.explain.formulas import Formula, Leaf, category_mask, chain, from_chain
from unitscope.explain.masks import LayerMasks
from unitscope.explain.search import BeamSearch

DEFAULT_HOLDOUT: float = 0.5
ROW_COLUMNS: tuple[str, ...] = ("unit", "formula", "single_label", "fit_iou", "fit_single_iou", "fit_gain",
                                "heldout_iou", "heldout_single_iou", "heldout_gain", "length", "candidates", "chain")
# column types, so that rows read back from a CSV (a resumed run) equal those just computed
DTYPES: dict[str, str] = {"unit": "int64", "formula": "str", "single_label": "str", "fit_iou": "float64",
                          "fit_single_iou": "float64", "fit_gain": "float64", "heldout_iou": "float64",
                          "heldout_single_iou": "float64", "heldout_gain": "float64", "length": "int64",
                          "candidates": "int64", "chain": "str", "p_value": "float64", "q_value": "float64",
                          "significant": "bool", "threshold": "float64", "seed": "int64"}


def check_holdout(fraction: float) -> Fraction:
    """The held-out fraction as an exact fraction, refusing one outside (0, 1)."""
    if not isinstance(fraction, int | float) or not 0 < float(fraction) < 1:
        raise UsageError(f"--holdout {fraction} is not a fraction in (0, 1); 0.5 holds out every second image")
    return Fraction(float(fraction)).limit_denominator(10**6)


def heldout_images(indices: np.ndarray, fraction: float) -> np.ndarray:
    """bool: which of the probe images ``indices`` are held out at ``fraction`` (see the module docstring)."""
    f = check_holdout(fraction)
    i = np.asarray(indices, dtype=np.int64)
    p, q = f.numerator, f.denominator
    return np.asarray((i + 1) * p // q > i * p // q, dtype=bool)


@dataclass(frozen=True)
class Split:
    """A layer's masks over the fit images and over the held-out images."""

    fit: LayerMasks
    heldout: LayerMasks


def split_masks(masks: LayerMasks, fraction: float, like: Split | None = None) -> Split:
    """``masks`` cut into fit and held-out images; both sides must hold images. ``like``: a split of the same
    images made before, whose concept banks (and their formula caches) this one shares (the random twin's)."""
    held = heldout_images(masks.images, fraction)
    fit_rows, held_rows = np.nonzero(~held)[0], np.nonzero(held)[0]
    if not len(fit_rows) or not len(held_rows):
        raise UsageError(f"--holdout {fraction} leaves {len(fit_rows)} fit and {len(held_rows)} held-out images of "
                         f"{len(held)}; explain a run with more images or choose a fraction nearer 0.5")
    return Split(masks.subset(fit_rows, like.fit.bank if like else None),
                 masks.subset(held_rows, like.heldout.bank if like else None))


def formula_counts(bank: ConceptBank, unit: UnitMask, formula: Formula) -> tuple[np.ndarray, np.ndarray]:
    """[N] int64 intersection and union of ``unit`` with ``formula`` in each of ``bank``'s images, by the
    search's rule (the unit counts only in the images where one of the formula's categories is annotated);
    summed over images they give :func:`formula_iou`, re-summed with image weights a bootstrap resample's."""
    bits = bank.bits(formula)
    inter = unit.overlap_per_image(bits)
    in_domain = (bank.image_categories & category_mask(formula)) != 0
    formula_area = popcount(bits.reshape(bank.num_images, bank.words_per_image))
    return inter, np.where(in_domain, unit.per_image, 0) + formula_area - inter


def formula_iou(bank: ConceptBank, unit: UnitMask, formula: Formula) -> float:
    """IoU of ``unit`` with ``formula`` on ``bank``'s images (the sums of :func:`formula_counts`)."""
    inter, union = (int(c.sum()) for c in formula_counts(bank, unit, formula))
    return inter / union if union > 0 else 0.0


def heldout_counts(masks: LayerMasks, rows: pd.DataFrame) -> np.ndarray:
    """float64 [R, 4, N]: for each row of ``rows`` (``ROW_COLUMNS``, units of ``masks``) the unit's per-image
    intersection and union with its formula, then with its single concept, on ``masks``' (held-out) images:
    what the bootstrap over held-out images re-sums."""
    bank = masks.bank
    by_number = {int(bank.numbers[k]): bank.leaf(k) for k in range(len(bank))}
    by_label = {bank.labels[k]: bank.leaf(k) for k in range(len(bank))}

    def leaf(number: int) -> Leaf:
        return by_number[number]

    counts = np.zeros((len(rows), 4, bank.num_images), dtype=np.float64)
    for r, (unit, formula_chain, single) in enumerate(zip(rows["unit"], rows["chain"], rows["single_label"],
                                                         strict=True)):
        mask = UnitMask.from_bits(masks.unit_bits(int(unit)), bank)
        counts[r, 0], counts[r, 1] = formula_counts(bank, mask, from_chain(str(formula_chain), leaf))
        counts[r, 2], counts[r, 3] = formula_counts(bank, mask, by_label[str(single)])
    return counts


def explain_unit(search: BeamSearch, split: Split, unit: int) -> dict[str, object]:
    """One row of ``formulas.csv`` (``ROW_COLUMNS``): ``search`` (over the fit bank) chooses the formula and
    the best single concept on the fit images; both are scored again on the held-out images."""
    fit_bank, held_bank = split.fit.bank, split.heldout.bank
    found = search.explain(UnitMask.from_bits(split.fit.unit_bits(unit), fit_bank))
    held = UnitMask.from_bits(split.heldout.unit_bits(unit), held_bank)
    held_iou = formula_iou(held_bank, held, found.formula)
    held_single = formula_iou(held_bank, held, found.single)
    return {"unit": unit, "formula": str(found.formula), "single_label": str(found.single),
            "fit_iou": found.iou, "fit_single_iou": found.single_iou, "fit_gain": found.gain,
            "heldout_iou": held_iou, "heldout_single_iou": held_single, "heldout_gain": held_iou - held_single,
            "length": len(found.formula.leaves), "candidates": found.candidates, "chain": chain(found.formula)}
