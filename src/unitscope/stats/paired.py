"""A paired bootstrap over images: how sure is a difference between two networks scored on the same images?

Each resample draws N images with replacement once and recomputes the statistic of both networks on that
same draw, so what the images share (an easy image is easy for both) cancels in the difference. The
interval is the percentile interval of the resampled differences (2.5th to 97.5th percentile for 95 %,
numpy's linear method, as the dissection's intervals). Seeded: the same inputs give the same interval.

:func:`paired_bootstrap_weighted` draws the very same resamples but hands each statistic its image weights
(how often each image was drawn), for statistics that re-sum per-image counts (segment's mean IoU from each
image's per-class intersections and unions) rather than average one value per image. :func:`verdict` says
in words whether the trained network beats its null: only where the whole interval lies above 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# A statistic of per-image columns: arrays [..., N] in, one value per leading index [...] out (e.g. a mean
# over the last axis), so every resample is computed at once.
Statistic = Callable[..., np.ndarray]

_BLOCK = 1 << 21  # resampled image indices held at once (resamples x images), ~16 MB


@dataclass(frozen=True)
class PairedDifference:
    """``difference`` = statistic(trained) − statistic(baseline) on all images; [low, high] its interval."""

    difference: float
    low: float
    high: float
    n: int
    resamples: int
    level: float

    @property
    def beats_baseline(self) -> bool:
        """The whole interval lies above 0 (a NaN interval does not)."""
        return bool(self.low > 0)

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(self).items()}


def paired_bootstrap(trained: Sequence[np.ndarray], baseline: Sequence[np.ndarray], statistic: Statistic,
                     resamples: int = 2000, seed: int = 0, level: float = 0.95) -> PairedDifference:
    """Bootstrap interval of ``statistic(*trained) - statistic(*baseline)`` over paired images.

    ``trained`` and ``baseline`` are the statistic's per-image columns (each of length N, image i of one
    the same image as image i of the other).
    """
    columns = [np.asarray(c, dtype=np.float64) for c in (*trained, *baseline)]
    if not columns or len(trained) != len(baseline):
        raise ValueError("give the same number of per-image columns for both networks")
    n = len(columns[0])
    if any(c.shape != (n,) for c in columns):
        raise ValueError(f"every per-image column must have shape ({n},)")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    k = len(trained)
    if n == 0:
        nan = float("nan")
        return PairedDifference(nan, nan, nan, 0, resamples, level)
    difference = float(statistic(*columns[:k]) - statistic(*columns[k:]))
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    block = max(1, _BLOCK // n)
    for start in range(0, resamples, block):
        index = rng.integers(0, n, size=(min(block, resamples - start), n))
        picked = [c[index] for c in columns]
        draws.append(np.asarray(statistic(*picked[:k]) - statistic(*picked[k:]), dtype=np.float64))
    return _interval(difference, draws, n, resamples, level)


def _interval(difference: float, draws: list[np.ndarray], n: int, resamples: int, level: float) -> PairedDifference:
    """The percentile interval of the resampled differences (non-finite ones dropped; none left: NaN bounds)."""
    values = np.concatenate(draws)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return PairedDifference(difference, float("nan"), float("nan"), n, resamples, level)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return PairedDifference(difference, float(low), float(high), n, resamples, level)


# A statistic of image weights: [R, N] (how often each image is in each resample; ones for all images) → [R].
WeightStatistic = Callable[[np.ndarray], np.ndarray]


def paired_bootstrap_weighted(trained: WeightStatistic, baseline: WeightStatistic, n: int, resamples: int = 2000,
                              seed: int = 0, level: float = 0.95) -> PairedDifference:
    """Bootstrap interval of ``trained(w) - baseline(w)`` over ``n`` paired images, ``w`` the image weights of
    each resample: the resamples of :func:`paired_bootstrap` with the same ``seed`` and ``n``, counted."""
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    if n <= 0:
        nan = float("nan")
        return PairedDifference(nan, nan, nan, 0, resamples, level)
    full = np.ones((1, n), dtype=np.float64)
    difference = float(np.asarray(trained(full))[0] - np.asarray(baseline(full))[0])
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    block = max(1, _BLOCK // n)
    for start in range(0, resamples, block):
        index = rng.integers(0, n, size=(min(block, resamples - start), n))
        weights = np.zeros(index.shape, dtype=np.float64)
        np.add.at(weights, (np.arange(len(index))[:, None], index), 1.0)
        draws.append(np.asarray(trained(weights), np.float64) - np.asarray(baseline(weights), np.float64))
    return _interval(difference, draws, n, resamples, level)


def verdict(diff: PairedDifference, measure: str, trained: str = "the trained network",
            baseline: str = "its random twin") -> str:
    """``measure`` of ``trained`` against ``baseline``, in words: it beats it only where the interval lies above 0."""
    if diff.n == 0 or np.isnan(diff.low):
        return f"{measure}: nothing to resample, so nothing can be said of {trained} against {baseline}."
    shown = (f"difference {diff.difference:+.3f}, {diff.level:.0%} paired bootstrap interval over {diff.n} images "
             f"[{diff.low:+.3f}, {diff.high:+.3f}]")
    if diff.beats_baseline:
        return f"{measure}: {trained} beats {baseline} ({shown})."
    where = "lies below 0" if diff.high < 0 else "includes 0"
    return f"{measure}: {trained} does not beat {baseline} ({shown}, which {where})."


def mean_of(values: np.ndarray) -> np.ndarray:
    """The mean over images (the last axis): a :data:`Statistic` of one column."""
    return np.asarray(np.mean(values, axis=-1))


def ratio_of_means(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """mean(numerator) / mean(denominator) over images: a :data:`Statistic` of two columns (e.g. CAM's lift)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.mean(numerator, axis=-1) / np.mean(denominator, axis=-1))
