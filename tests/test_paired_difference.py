"""The run's detectors minus its random twin's, paired over the same bootstrap resamples of the probe images,
checked against a brute-force recomputation of every resample's detectors on the planted world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planted import PlantedProbe
from planted_significance import write_significance_model

import unitscope.dissection.confidence as confidence
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.stats.bootstrap import ImageCounts


def _dense(counts: ImageCounts, width: int) -> tuple[np.ndarray, ...]:
    """Per image (in probe order): intersections [N, U, L], active areas [N, U], annotated [N, C] and label
    areas [N, L]."""
    annotated = counts.table("annotated")
    images = np.unique(annotated[:, 0])
    at = {int(image): k for k, image in enumerate(images)}
    n, units = len(images), counts.num_units
    inter, active = np.zeros((n, units, width)), np.zeros((n, units))
    ann, area = np.zeros((n, annotated.shape[1] - 1)), np.zeros((n, width))
    for image, unit, label, count in counts.table("inter"):
        inter[at[int(image)], unit, label] += count
    for image, unit, count in counts.table("active"):
        active[at[int(image)], unit] += count
    for image, label, count in counts.table("label_area"):
        area[at[int(image)], label] += count
    for row in annotated:
        ann[at[int(row[0])]] = row[1:]
    return inter, active, ann, area


def _brute_force_counts(args: tuple[Any, ...], categories: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Detectors per category in each resample, image by image and unit by unit (no sparse sums)."""
    counts, label_category, _best, iou, significant, threshold, resamples, seed = args
    inter, active, ann, area = _dense(counts, iou.shape[1])
    n, units = active.shape
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    out = {name: np.zeros(resamples, np.int64) for name in (*categories, "total")}
    for r in range(resamples):
        w = np.bincount(draws[r], minlength=n).astype(float)
        i_sum = np.einsum("n,nul->ul", w, inter)
        unit_area = np.einsum("n,nu,nc->uc", w, active, ann)
        label_area = w @ area
        for u in range(units):
            candidates = sorted(np.argsort(-iou[u], kind="stable")[:5])
            best_iou, chosen = -1.0, -1
            for label in candidates:
                union = unit_area[u, max(label_category[label], 0)] + label_area[label] - i_sum[u, label]
                value = i_sum[u, label] / union if union > 0 else 0.0
                if value > best_iou:
                    best_iou, chosen = value, label
            if best_iou >= threshold and significant[u, chosen]:
                out[categories[label_category[chosen]]][r] += 1
                out["total"][r] += 1
    return out


def test_paired_difference_matches_brute_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    original = confidence.bootstrap_labels

    def spy(*args: Any) -> Any:
        kept = ImageCounts(args[0].num_units, args[0].num_labels)  # the run's rows are in its work folder, which
        kept.load_state_dict(args[0].export_state())  # goes when the run ends: keep them for the oracle
        calls.append((kept, *args[1:]))
        return original(*args)

    monkeypatch.setattr(confidence, "bootstrap_labels", spy)
    probe = PlantedProbe(30)
    settings = DissectSettings(quantile=0.1, bootstrap=30, baseline="random", workers=0)
    result = dissect(write_significance_model(tmp_path, 8, 0), ["0"], probe, None, mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0), settings=settings, progress=False)
    assert len(calls) == 2  # the run's layer, then its random twin's
    run_args, twin_args = calls
    tables = [run_args[0].table(name) for name in ("inter", "active", "label_area", "annotated")]
    assert {t.dtype for t in tables} == {np.dtype(np.int32)} and all(len(t) for t in tables)  # compact rows (#29)
    mine = _brute_force_counts(run_args, probe.concepts.categories)
    theirs = _brute_force_counts(twin_args, probe.concepts.categories)
    baseline = result.record.baseline
    assert baseline is not None
    entry = baseline["layers"]["0"]
    # the same resamples of the same images for the run and its twin, and the twin's counts kept with it
    assert result.layers["0"].resampled is not None
    assert entry["resampled"]["draws"] == result.layers["0"].resampled.draws
    assert {k: " ".join(map(str, v)) for k, v in theirs.items()} == entry["resampled"]["counts"]
    observed = {row["category"]: row["detectors"] for row in result.layers["0"].table.to_dict(orient="records")}
    twin = {row["category"]: row["detectors"] for row in entry["table"]}
    for category in (*probe.concepts.categories, "total"):
        low, high = np.percentile(mine[category] - theirs[category], [2.5, 97.5])
        assert entry["difference"][category] == [observed[category] - twin[category], low, high], category
    assert any(d[1] != d[2] for d in entry["difference"].values())  # the resamples do vary
