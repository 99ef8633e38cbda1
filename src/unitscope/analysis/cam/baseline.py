"""The trained network's localisation beside its random-weights twin's, with paired bootstrap intervals.

The twin is the same architecture re-initialised (``dissection.baseline.random_baseline``), explained at
the same layer with the same method, for the same class as the trained network on each image (its
prediction, or ``--class``), so both heatmaps of an image are scored against the same foreground mask.
Only images scored for both networks enter the differences; each difference (lift, pointing game) gets
a 95 % percentile interval from a paired bootstrap over those images. A trained network whose interval
does not lie above 0 does not beat its twin, and the verdict says so in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unitscope.analysis.cam.localisation import ImageScore, LocalisationScore
from unitscope.stats.paired import PairedDifference, mean_of, paired_bootstrap, ratio_of_means, verdict

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
MEASURES: dict[str, str] = {"lift": "lift", "pointing": "pointing game"}


@dataclass(frozen=True)
class CamBaseline:
    """The random twin's score and each trained − random difference with its interval."""

    seed: int
    model: str
    localisation: LocalisationScore
    differences: dict[str, PairedDifference]

    def verdict(self) -> str:
        """One sentence per measure: does the trained network beat its random twin?"""
        return " ".join(verdict_sentence(MEASURES[name], diff) for name, diff in self.differences.items())

    def to_dict(self) -> dict[str, object]:
        return {"kind": "random", "seed": self.seed, "model": self.model, "localisation": self.localisation.to_dict(),
                "differences": {name: diff.to_dict() for name, diff in self.differences.items()},
                "verdict": self.verdict()}


def paired_differences(trained: Sequence[ImageScore], random: Sequence[ImageScore],
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, PairedDifference]:
    """Trained − random lift and pointing game over the images both scored (image i of each is one image)."""
    if len(trained) != len(random):
        raise ValueError(f"{len(trained)} trained and {len(random)} random image scores: they must pair up")
    pairs = [(t, r) for t, r in zip(trained, random, strict=True) if t.scored and r.scored]

    def column(values: list[float | None]) -> np.ndarray:
        return np.array(values, dtype=np.float64)

    hit = [column([p[k].hit_rate for p in pairs]) for k in (0, 1)]
    share = [column([p[k].object_share for p in pairs]) for k in (0, 1)]
    point = [column([p[k].pointing for p in pairs]) for k in (0, 1)]
    return {
        "lift": paired_bootstrap([hit[0], share[0]], [hit[1], share[1]], ratio_of_means, resamples, seed),
        "pointing": paired_bootstrap([point[0]], [point[1]], mean_of, resamples, seed),
    }


def verdict_sentence(measure: str, diff: PairedDifference) -> str:
    """``measure`` of the trained network against its random twin, in words (``stats.paired.verdict``)."""
    return verdict(diff, measure)
