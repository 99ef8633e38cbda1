"""The paired bootstrap over images: against a plain numpy loop, by hand, and its verdict in words."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.analysis.segment.metrics import SegmentationMeter
from unitscope.analysis.segment.scores import ConfusionMeter, ImageClassCounts
from unitscope.stats.bootstrap import PairedDifference, paired_bootstrap, weighted_mean


def test_paired_bootstrap_is_the_numpy_loop() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=9), rng.normal(size=9) + 0.3
    got = paired_bootstrap(weighted_mean(a), weighted_mean(b), 9, resamples=450, seed=7, block=100)
    draws = np.random.default_rng(7)
    diffs = []
    for _ in range(450):  # each resample: n draws with replacement, the same images for both statistics
        idx = draws.integers(0, 9, size=9)
        diffs.append(a[idx].mean() - b[idx].mean())
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert got.low == pytest.approx(low, abs=1e-12) and got.high == pytest.approx(high, abs=1e-12)
    assert got.trained == pytest.approx(a.mean()) and got.random == pytest.approx(b.mean())
    assert got.resamples == 450 and got.images == 9


@pytest.mark.parametrize(("trained", "random", "low", "high", "words"), [
    ([1, 1], [0, 0], 1.0, 1.0, "beats its random twin"),  # every resample: +1
    ([1, 0], [0, 0], 0.0, 1.0, "does not beat its random twin: mean 0.500 against 0.000"),  # 0, 0.5 or 1
    ([0, 0], [1, 0], -1.0, 0.0, "interval includes 0"),
    ([0, 0], [1, 1], -1.0, -1.0, "interval lies below 0"),
])
def test_two_images_by_hand(trained: list[int], random: list[int], low: float, high: float, words: str) -> None:
    """Two images: a resample holds both once (p = 1/2) or one twice (1/4 each); with 1000 resamples both tails
    are reached, so the 95% interval runs from the smallest to the largest possible difference."""
    result = paired_bootstrap(weighted_mean(np.array(trained)), weighted_mean(np.array(random)), 2)
    assert (result.low, result.high) == (low, high)
    assert result.beats == (low > 0)
    assert words in result.verdict("mean")


def test_no_images_no_verdict() -> None:
    result = PairedDifference(0.3, 0.1, float("nan"), float("nan"), 0)
    assert not result.beats and "no verdict" in result.verdict("mean IoU")
    assert result.as_dict()["low"] is None


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
        # image 1 alone: class 1 TP 1, truth 2, predicted 2 (unlabelled pixel not counted) → 1/3;
        # class 2: TP 0, truth 1 → 0. Doubling every count keeps the IoUs.
        assert counts.mean_iou(np.array([[2.0, 0.0]]))[0] == pytest.approx((1 / 3 + 0) / 2)
