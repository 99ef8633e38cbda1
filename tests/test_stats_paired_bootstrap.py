"""The paired bootstrap over image weights (re-summed counts): the resamples of the column bootstrap, by hand,
its verdict in words, and segment's mean IoU re-summed from each image's counts."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.analysis.segment.metrics import SegmentationMeter
from unitscope.analysis.segment.scores import ConfusionMeter, ImageClassCounts
from unitscope.stats.paired import (
    PairedDifference,
    WeightStatistic,
    mean_of,
    paired_bootstrap,
    paired_bootstrap_weighted,
    verdict,
)


def _weighted_mean(values: np.ndarray) -> WeightStatistic:
    return lambda weights: np.asarray(weights @ values / weights.sum(axis=1))


def test_weights_draw_the_resamples_of_the_column_bootstrap() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=9), rng.normal(size=9) + 0.3
    weighted = paired_bootstrap_weighted(_weighted_mean(a), _weighted_mean(b), 9, resamples=450, seed=7)
    columns = paired_bootstrap([a], [b], mean_of, resamples=450, seed=7)
    assert weighted.low == pytest.approx(columns.low, abs=1e-12)
    assert weighted.high == pytest.approx(columns.high, abs=1e-12)
    assert weighted.difference == pytest.approx(a.mean() - b.mean()) and (weighted.n, weighted.resamples) == (9, 450)
    # and both are the plain numpy loop: each resample draws n images with replacement, for both networks
    draws = np.random.default_rng(7).integers(0, 9, size=(450, 9))
    low, high = np.percentile(a[draws].mean(axis=1) - b[draws].mean(axis=1), [2.5, 97.5])
    assert weighted.low == pytest.approx(low, abs=1e-12) and weighted.high == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize(("trained", "random", "low", "high", "words"), [
    ([1, 1], [0, 0], 1.0, 1.0, "mean: the trained network beats its random twin (difference +1.000"),
    ([1, 0], [0, 0], 0.0, 1.0, "mean: the trained network does not beat its random twin (difference +0.500"),
    ([0, 0], [1, 0], -1.0, 0.0, "[-1.000, +0.000], which includes 0)."),
    ([0, 0], [1, 1], -1.0, -1.0, "which lies below 0)."),
])
def test_two_images_by_hand(trained: list[int], random: list[int], low: float, high: float, words: str) -> None:
    """Two images: a resample holds both once (p = 1/2) or one twice (1/4 each); with 2000 resamples both tails
    are reached, so the 95% interval runs from the smallest to the largest possible difference."""
    mine, theirs = _weighted_mean(np.array(trained, float)), _weighted_mean(np.array(random, float))
    result = paired_bootstrap_weighted(mine, theirs, 2)
    assert (result.low, result.high) == (low, high)
    assert result.beats_baseline == (low > 0)
    assert words in verdict(result, "mean") and "over 2 images" in verdict(result, "mean")


def test_no_images_no_verdict() -> None:
    result = paired_bootstrap_weighted(_weighted_mean(np.zeros(0)), _weighted_mean(np.zeros(0)), 0)
    assert isinstance(result, PairedDifference) and not result.beats_baseline
    assert "nothing can be said" in verdict(result, "mean IoU") and result.to_dict()["low"] is None


def test_mean_iou_from_image_counts_by_hand() -> None:
    """Two images, classes 1 and 2; weights (2, 0) count image 1 twice and leave image 2 out."""
    truth1, pred1 = np.array([[[1, 1], [2, 0]]]), np.array([[1, 0], [1, 1]])
    truth2, pred2 = np.array([[[2, 2], [2, 1]]]), np.array([[2, 2], [2, 2]])
    for meter in (ConfusionMeter([1, 2]), SegmentationMeter()):
        meter.update(pred1, truth1)
        meter.update(pred2, truth2)
        counts: ImageClassCounts = meter.image_counts()
        assert counts.classes == (1, 2) and counts.truth.shape == (2, 2)
        full = counts.mean_iou(np.ones((1, 2)))[0]
        assert full == pytest.approx(meter.result()["mean_iou"])
        # image 1 alone: class 1 TP 1, truth 2, predicted 2 (the unlabelled pixel does not count) → 1/3;
        # class 2: TP 0, truth 1 → 0. Doubling every count keeps the IoUs.
        assert counts.mean_iou(np.array([[2.0, 0.0]]))[0] == pytest.approx((1 / 3 + 0) / 2)
