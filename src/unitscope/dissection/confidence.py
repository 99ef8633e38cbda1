"""How sure is a label? p/q-values, margin and bootstrap stability per unit; intervals per layer.

A unit is a detector when its IoU reaches ``--iou`` AND its label is significant at ``--fdr`` after
Benjamini–Hochberg over all units × concepts of the layer; ``iou_detector`` keeps NetDissect's IoU-only rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from unitscope.data.probe import ConceptTable
from unitscope.dissection.result import DissectionResult, ResampledCounts
from unitscope.stats.bootstrap import bootstrap_labels
from unitscope.stats.evidence import LabelEvidence
from unitscope.stats.iou import ConceptOverlap
from unitscope.stats.significance import benjamini_hochberg, p_values

# Below this many above-threshold activation cells per unit (quantile × images × h × w) a unit's mask is
# a handful of blobs in a handful of images and IoU alone says little: the run warns.
MIN_ACTIVE_CELLS: float = 50.0


def active_cells(quantile: float, images: int, shape: tuple[int, int, int]) -> float:
    """Expected above-threshold cells of one unit's activation maps over the probe set."""
    return quantile * images * shape[1] * shape[2]


# The image side a small map most often comes from too-small images for: an ImageNet-style network's input.
SUGGESTED_SIDE = 224


def _images_needed(quantile: float, h: int, w: int) -> int:
    return int(np.ceil(MIN_ACTIVE_CELLS / (quantile * h * w)))


def small_probe_warning(quantile: float, images: int, shape: tuple[int, int, int], layer: str,
                        image_side: int | None = None) -> str | None:
    """A warning line when the probe set is too small for the layer, else None; it says what to change.

    ``image_side``: the side the network saw the probe images at, when it takes them at their own size (then
    larger images give larger maps, and the line suggests ``world --size 224`` below that size).
    """
    cells = active_cells(quantile, images, shape)
    if cells >= MIN_ACTIVE_CELLS:
        return None
    needed = _images_needed(quantile, shape[1], shape[2])
    line = (f"warning: layer {layer}: each unit is active on only {cells:.0f} of its {shape[1]}x{shape[2]} map cells "
            f"over {images} images (below {MIN_ACTIVE_CELLS:.0f}); IoU labels are unreliable — use at least "
            f"{needed} probe images (--n {needed}; for an export, unitscope world --n {needed})")
    if image_side is not None and image_side < SUGGESTED_SIDE:
        scale = SUGGESTED_SIDE / image_side
        h, w = max(1, round(shape[1] * scale)), max(1, round(shape[2] * scale))
        line += (f", or larger images: unitscope world --size {SUGGESTED_SIDE} gives this layer about {h}x{w} "
                 f"cells, where {_images_needed(quantile, h, w)} images suffice")
    return line


@dataclass(frozen=True)
class LayerConfidence:
    columns: pd.DataFrame  # p_value, q_value, significant, margin, stability per unit
    intervals: dict[str, object]  # bootstrap intervals of the layer's counts
    resampled: ResampledCounts | None = None  # detectors per category in each resample


# What a page or a line shows where a run has no bootstrap interval (dissected with --bootstrap 0).
NO_INTERVAL = "no interval (--bootstrap 0)"


def interval_text(ci: object) -> str:
    """``"a–b"`` for a recorded 95% interval ``[a, b]``; "" when there is none (``--bootstrap 0`` records NaNs,
    which must never reach a page as ``nan–nan``)."""
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    try:
        low, high = float(ci[0]), float(ci[1])
    except (TypeError, ValueError):
        return ""
    return f"{low:.0f}–{high:.0f}" if np.isfinite(low) and np.isfinite(high) else ""


def ci_suffix(ci: object) -> str:
    """``" [95% CI a–b]"`` for a line of text, or ``" (no interval: --bootstrap 0)"`` without one."""
    text = interval_text(ci)
    return f" [95% CI {text}]" if text else " (no interval: --bootstrap 0)"


def _interval(values: np.ndarray) -> list[float]:
    if len(values) == 0:
        return [float("nan"), float("nan")]
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def _significant_digits(values: np.ndarray, digits: int = 10) -> np.ndarray:
    """``values`` rounded to ``digits`` significant decimal digits (zeros stay zero)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(values != 0, 10.0 ** np.floor(np.log10(np.abs(values))), 1.0)
    return np.round(values / scale, digits - 1) * scale


def concept_q_values(overlap: ConceptOverlap, evidence: LabelEvidence, concepts: ConceptTable,
                     width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p- and q-values (Benjamini–Hochberg over the layer's units × concepts) of every pair [U, width], and
    which columns are concepts."""
    is_concept = np.zeros(width, dtype=bool)
    is_concept[[c.number for c in concepts.concepts if c.number < width]] = True
    mean, var = evidence.moments.moments(overlap.label_category)
    # Float sums depend on their order (one process vs. torchrun shards): keep 10 significant digits, so the
    # p-values do not depend on how the probe set was split.
    mean, var = _significant_digits(mean), _significant_digits(var)
    p = p_values(overlap.intersection.cpu().double().numpy(), mean, var, is_concept)
    q = np.ones_like(p)
    q[:, is_concept] = benjamini_hochberg(p[:, is_concept])
    return p, q, is_concept


def layer_confidence(iou: np.ndarray, overlap: ConceptOverlap, evidence: LabelEvidence, concepts: ConceptTable,
                     iou_threshold: float, fdr: float, resamples: int, seed: int = 0) -> LayerConfidence:
    """Per-unit confidence columns and bootstrap intervals for one layer (columns = label numbers)."""
    units, width = iou.shape
    category = overlap.label_category.cpu().numpy()
    p, q, is_concept = concept_q_values(overlap, evidence, concepts, width)
    significant = q <= fdr
    masked = np.where(is_concept[None, :], iou, -1.0)
    best = masked.argmax(axis=1)  # first maximum: the lower label number, as label_units
    rows = np.arange(units)
    second = np.sort(masked, axis=1)[:, -2] if width > 1 else np.zeros(units)
    labelled = masked[rows, best] > 0
    best_number = np.where(labelled, best, -1)
    outcome = bootstrap_labels(evidence.counts, category, best_number, masked, significant, iou_threshold,
                               resamples, seed)
    columns = pd.DataFrame({
        "p_value": p[rows, best],
        "q_value": q[rows, best],
        "significant": significant[rows, best] & labelled,
        "margin": masked[rows, best] - np.maximum(second, 0.0),
        "stability": np.where(labelled, outcome.stability, np.nan),
    })
    intervals = {
        "resamples": int(resamples),
        "detectors_ci": _interval(outcome.detectors),
        "iou_detectors_ci": _interval(outcome.iou_detectors),
        "unique_ci": _interval(outcome.unique),
    }
    counts = {name: outcome.by_category[:, c] for c, name in enumerate(concepts.categories)
              if c < outcome.by_category.shape[1]}
    counts["total"] = np.asarray(outcome.detectors, dtype=np.int64)
    resampled = ResampledCounts(outcome.draws, counts) if outcome.draws else None
    return LayerConfidence(columns, intervals, resampled)


def control_text(control: object, layer: str) -> str:
    """"m of k object/part detectors survive [95% CI a–b]" for one layer of a recorded colour control ("" if none)."""
    counts = control.get("layers", {}).get(layer) if isinstance(control, dict) else None
    if not isinstance(counts, dict):
        return ""
    interval = ci_suffix(counts.get("survive_ci"))
    return f"{counts.get('survive_control')} of {counts.get('detectors')} object/part detectors survive{interval}"


def confidence_lines(result: DissectionResult) -> str:
    """Per layer: detectors (IoU and significant, with bootstrap interval) beside NetDissect's IoU-only count."""
    baseline: dict[str, Any] = dict(result.record.baseline or {})
    lines = []
    for name, layer in result.layers.items():
        total = layer.table.iloc[-1]
        if "iou_detectors" not in layer.table:
            continue
        interval = ci_suffix(layer.intervals.get("detectors_ci"))
        line = (f"{name}: {int(total['detectors'])} significant detectors{interval} "
                f"of {int(total['iou_detectors'])} with IoU alone")
        theirs = baseline.get("layers", {}).get(name)
        if theirs:
            mine = theirs["table"][-1]
            line += f"; random weights: {mine['detectors']} ({mine['iou_detectors']} with IoU alone)"
        survived = control_text(result.record.control, name)
        if survived:
            random_survived = control_text(baseline.get("control"), name)
            line += f"; colour control: {survived}" + (f" (random weights: {random_survived})" if random_survived
                                                       else "")
        lines.append(line)
    return "\n".join(lines)
