"""Explain's per-layer null: the random twin's held-out gains, and which units beat them.

A held-out gain can still be chance, or something any network of that architecture shows (a random
ResNet-18 has compositional "gains" too). The null is the same architecture re-initialised
(``dissection.baseline.random_baseline``, the twin ``dissect --baseline random`` dissects), its thresholds
cut at the run's quantile by the dissection's own exact statistic over the same images, and every unit of
the layer searched on the fit images and scored on the held-out ones exactly as the trained units are.

A unit's held-out gain g gets the empirical p-value (1 + #{twin units with gain >= g}) / (1 + #twin units),
Benjamini–Hochberg q-values across the units explained (``stats.significance.benjamini_hochberg``), and
counts as significant when q <= ``FDR`` and g > the gain threshold. The smallest p-value is 1 / (1 + U) for
U twin units, so with m units explained a unit can be significant only if enough of them beat the twin:
BH needs about m / (FDR · (1 + U)) units at that smallest p (one unit alone, when explaining U / 20 or fewer;
20 of a layer's units when one twin has as many). So explain pools K twins (``--null-twins``, default 4; seeds
s, s+1, …): K · U null units, p-values K times finer. On the SceneWorld scene net's conv5 (300 images) one
twin calls no unit significant (33 units beat all but one of its 128 units: q 0.06), four twins call 33.

The layer as a whole: the trained units' mean held-out gain minus the twins' (all their units pooled), with a
paired bootstrap interval over the held-out images (``stats.paired``): each resample draws the held-out images
with replacement, re-sums every unit's per-image intersections and unions (``heldout.heldout_counts``) of its
formula and of its single concept, and recomputes every gain, trained and twin, on that same draw.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from unitscope.errors import UsageError
from unitscope.explain.masks import LayerMasks, RunInputs, layer_thresholds, unit_bits
from unitscope.explain.source import RunLayer
from unitscope.stats.paired import PairedDifference, paired_bootstrap_weighted
from unitscope.stats.paired import verdict as paired_verdict
from unitscope.stats.significance import benjamini_hochberg

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

NULL_KINDS: tuple[str, ...] = ("random", "none")
FDR: float = 0.05
RESAMPLES: int = 2000
_CELLS: int = 1 << 22  # re-summed counts held at once (count rows x resamples), ~32 MB


def check_null(kind: str) -> str:
    if kind not in NULL_KINDS:
        raise UsageError(f"--null must be one of {', '.join(NULL_KINDS)}, got {kind!r}")
    return kind


def twin_masks(run: RunLayer, masks: LayerMasks, seed: int, device: str = "cpu", batch_size: int = 32,
               progress: bool = True, trust: Trust | None = None,
               inputs: RunInputs | None = None) -> tuple[LayerMasks, np.ndarray]:
    """The random twin's unit masks over ``masks``' images (sharing its concept bank) and its thresholds [U]."""
    from unitscope.dissection.baseline import random_baseline

    inputs = inputs or RunInputs(run, device, trust)
    twin = random_baseline(inputs.model(), seed)  # a re-initialised copy: the run's model is left as it is
    probe = inputs.probe()
    thresholds = layer_thresholds(run, twin, probe, masks.images, batch_size, progress)
    bits, offsets = unit_bits(run, twin, probe, masks.images, thresholds, batch_size, progress)
    return LayerMasks(masks.bank, bits, offsets, masks.images), thresholds


def empirical_p(gains: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #null >= g) / (1 + #null) for every gain g (ties count against the unit)."""
    null = np.sort(np.asarray(null, dtype=np.float64))
    at_least = len(null) - np.searchsorted(null, np.asarray(gains, dtype=np.float64), side="left")
    return np.asarray((1 + at_least) / (1 + len(null)), dtype=np.float64)


def judge_gains(gains: np.ndarray, null: np.ndarray | None, threshold: float,
               fdr: float = FDR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p-values, BH q-values across ``gains`` and significance (q <= fdr and gain > threshold); without a null
    p and q are NaN and nothing is significant."""
    gains = np.asarray(gains, dtype=np.float64)
    if null is None or not len(gains):
        nan = np.full(len(gains), np.nan)
        return nan, nan.copy(), np.zeros(len(gains), dtype=bool)
    p = empirical_p(gains, null)
    q = benjamini_hochberg(p)
    return p, q, (q <= fdr) & (gains > threshold)


def null_summary(rows: pd.DataFrame, seeds: list[int], threshold: float) -> dict[str, object]:
    """The twins' gain distribution, in the numbers the page and summary.json show."""
    gain = rows["heldout_gain"].to_numpy(dtype=np.float64)
    return {"kind": "random", "seed": seeds[0], "seeds": seeds, "twins": len(seeds), "units": len(rows),
            "mean_gain": float(gain.mean()), "median_gain": float(np.median(gain)),
            "p95_gain": float(np.percentile(gain, 95)), "max_gain": float(gain.max()),
            "units_gaining": int((gain > threshold).sum()),
            "mean_heldout_iou": float(rows["heldout_iou"].mean()),
            "mean_heldout_single_iou": float(rows["heldout_single_iou"].mean()),
            "mean_fit_gain": float(rows["fit_gain"].mean())}


def needed_to_pass(units: int, null_units: int, fdr: float = FDR) -> int:
    """How many units must each beat every twin unit (p = 1 / (1 + null_units)) for BH to reach q <= fdr."""
    return max(1, math.ceil(units / (fdr * (1 + null_units)) - 1e-9))


def verdict(gains: np.ndarray, significant: int, null: dict[str, object] | None, threshold: float,
            fdr: float = FDR) -> str:
    """The finding in words: how many units beat the random twin, or that none does (and, then, whether the
    twins were too few to tell)."""
    gains = np.asarray(gains, dtype=np.float64)
    units, mean_gain = len(gains), float(gains.mean()) if len(gains) else 0.0
    if null is None:
        return (f"No null (--null none): the held-out gains (mean {mean_gain:+.3f}) are not tested against the "
                "random twin, so no unit is called significant.")
    null_units = int(str(null["units"]))
    whose = "the random twin's" if null.get("twins", 1) == 1 else f"the {null['twins']} random twins'"
    twin = (f"{whose} {null_units} units gain {float(str(null['mean_gain'])):+.3f} on average "
            f"(median {float(str(null['median_gain'])):+.3f}, 95th percentile {float(str(null['p95_gain'])):+.3f})")
    if significant:
        return (f"{significant} of {units} units have a significant held-out gain (q ≤ {fdr} against {whose} "
                f"gains, and gain > {threshold}). The units gain {mean_gain:+.3f} IoU on average on the "
                f"held-out images; {twin}.")
    text = (f"No unit has a significant held-out gain: the trained network does not beat its random twin here. "
            f"Its {units} units gain {mean_gain:+.3f} IoU on average on the held-out images; {twin}.")
    needed = needed_to_pass(units, null_units, fdr)
    if needed > 1:
        above = int((gains > float(str(null["max_gain"]))).sum())
        above95 = int((gains > float(str(null["p95_gain"]))).sum())
        text += (f" With {null_units} twin units no p-value is below 1/{null_units + 1}, so at least {needed} of "
                 f"the {units} units must each beat every twin unit to reach q ≤ {fdr}; {above} do, and {above95} "
                 f"beat {whose} 95th percentile (more twins, --null-twins, resolve smaller p-values).")
    return text


def mean_gain(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[R] the mean over units of IoU(formula) − IoU(single) (0 where a union is empty, as ``formula_iou``),
    from ``counts`` [U, 4, N] (``heldout_counts``) with the images weighted by ``weights`` [R, N]."""
    units, _, images = counts.shape
    flat = counts.reshape(units * 4, images)
    out = []
    step = max(1, _CELLS // max(1, units * 4))
    for start in range(0, len(weights), step):
        sums = (flat @ weights[start:start + step].T).reshape(units, 4, -1)  # [U, 4, r]
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(sums[:, 1::2] > 0, sums[:, 0::2] / sums[:, 1::2], 0.0)  # [U, 2, r]
        out.append((iou[:, 0] - iou[:, 1]).mean(axis=0))
    return np.concatenate(out) if out else np.zeros(0)


def gain_interval(trained: np.ndarray, twins: np.ndarray, resamples: int = RESAMPLES,
                  seed: int = 0) -> PairedDifference:
    """The trained units' mean held-out gain minus the twins' (counts [U, 4, N] and [V, 4, N] over the same N
    held-out images), with its paired bootstrap interval over those images."""
    if trained.shape[2] != twins.shape[2]:
        raise ValueError("the trained and twin counts must cover the same held-out images")
    if not len(trained) or not len(twins):
        nan = float("nan")
        return PairedDifference(nan, nan, nan, 0, resamples, 0.95)
    return paired_bootstrap_weighted(lambda w: mean_gain(trained, w), lambda w: mean_gain(twins, w),
                                     trained.shape[2], resamples, seed)


def gain_summary(diff: PairedDifference, twins: int) -> dict[str, object]:
    """``gain_vs_random`` of summary.json: the difference, its interval and the sentence that says it."""
    whose = "its random twin" if twins == 1 else f"its {twins} random twins"
    text = paired_verdict(diff, "Mean held-out gain (formula IoU − single-concept IoU)", "the trained layer", whose)
    return {**diff.to_dict(), "verdict": text}
