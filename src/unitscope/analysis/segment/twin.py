"""The random twin's column of ``segment``: the same method with the same architecture re-initialised
(:func:`unitscope.dissection.baseline.random_baseline`), on the same images, and a bootstrap interval over
those images of the mean-IoU difference.

- ``vectors``: concept vectors are fitted on the twin's features exactly as on the trained network's (same
  layers, fitting images, pixels, penalty) and segment the same images.
- ``units``: a run records only its random twin's detector *counts* per category (``dissect --baseline
  random``), not which of the twin's units detect what at which threshold, so there is nothing to segment
  with; the column says so rather than guess.

A mean IoU is re-summed from each image's own counts (:class:`~unitscope.analysis.segment.scores.ImageClassCounts`),
so the bootstrap needs no second pass; trained and twin see the same resampled images (paired).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from unitscope.analysis.segment.scores import ImageClassCounts
from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError
from unitscope.stats.paired import paired_bootstrap_weighted, verdict

BASELINES: tuple[str, ...] = ("random", "none")
RESAMPLES = 2000  # bootstrap resamples of the images for the interval of the difference (as cam's)
BOOTSTRAP_SEED = 0
NOT_MEASURED_NONE = "not measured (--baseline none)"
NOT_MEASURED_UNITS = ("not measured for --method units: a run records only its random twin's detector counts, "
                      "not which of the twin's units detect what, so the twin has no unit segmentation; "
                      "--method vectors (the default) measures the random twin")


class ScoredMeter(Protocol):
    def result(self) -> dict[str, float | int | None]: ...

    def image_counts(self) -> ImageClassCounts: ...


def check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise UsageError(f"--baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")


def twin_seed(run: DissectionResult, seed: int | None) -> int:
    """The random weights' seed: ``seed``, else the one the run's own random baseline used, else 0."""
    if seed is not None:
        return seed
    recorded = run.record.baseline
    value = recorded.get("seed") if isinstance(recorded, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def random_column(trained: ScoredMeter, twin: ScoredMeter | None, baseline: str, seed: int | None,
                  note: str | None = None, resamples: int = RESAMPLES) -> dict[str, object]:
    """The keys ``metrics.json`` gets: the twin's mean IoU and pixel accuracy, the paired bootstrap of the
    mean-IoU difference, and the verdict in words (``note`` says why the twin was not measured)."""
    column: dict[str, object] = {"baseline": baseline, "baseline_seed": seed}
    if twin is None:
        return {**column, "random_mean_iou": None, "random_pixel_accuracy": None, "mean_iou_vs_random": None,
                "beats_random": None, "random_verdict": note or NOT_MEASURED_NONE}
    mine, theirs = trained.image_counts(), twin.image_counts()
    if mine.classes != theirs.classes or len(mine.truth) != len(theirs.truth):
        raise ValueError("the trained network and its twin were scored on different images")
    difference = paired_bootstrap_weighted(mine.mean_iou, theirs.mean_iou, len(mine.truth), resamples,
                                           BOOTSTRAP_SEED)
    ours, scores = trained.result()["mean_iou"], twin.result()
    measured = not np.isnan(difference.low)
    measure = f"mean IoU {ours:.3f} against {scores['mean_iou']:.3f}" if measured else "mean IoU"
    words = verdict(difference, measure, baseline=f"its random twin (seed {seed})")
    return {**column, "random_mean_iou": scores["mean_iou"], "random_pixel_accuracy": scores["pixel_accuracy"],
            "mean_iou_vs_random": difference.to_dict(), "beats_random": difference.beats_baseline if measured
            else None, "random_verdict": words}


def random_lines(metrics: dict[str, object]) -> list[str]:
    """The printed lines of the random column: the twin's scores, then the verdict in words."""
    if metrics.get("random_mean_iou") is None:
        return [f"random twin: {metrics.get('random_verdict') or NOT_MEASURED_NONE}"]
    accuracy = metrics.get("random_pixel_accuracy")
    shown = f", pixel accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""
    return [f"random twin (same architecture, weights re-initialised with seed {metrics.get('baseline_seed')}): "
            f"mean IoU {metrics['random_mean_iou']:.3f}{shown}", str(metrics["random_verdict"])]
