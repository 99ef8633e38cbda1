"""Segmentation scores from scikit-learn's confusion matrix: per-class IoU, mean IoU, and baselines.

Each labelled pixel counts once. Where a pixel carries several labels (Broden's ``k`` maps), its truth is
the predicted concept when that is one of its labels, else its first map's label, so a correct guess of any
of its labels is a hit. Unlabelled pixels (0 in every map) are ignored. The confusion matrix is summed over
images in int64, so scores do not depend on batching. The baseline predicts the most frequent class (the
largest ground-truth area over the evaluated images) everywhere.

Each image's own counts (true positives, truth and predicted pixels per class) are kept too
(:meth:`ConfusionMeter.image_counts`): resampling images re-sums them, for the bootstrap interval of the
difference from the random twin (:mod:`unitscope.analysis.segment.twin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix


@dataclass(frozen=True)
class ImageClassCounts:
    """Per image (rows, in the order scored) and class (columns): intersection, truth and predicted pixels.

    The scores re-summed over images with weights: ``weights [R, N] @ intersection`` and so on.
    """

    classes: tuple[int, ...]
    intersection: np.ndarray  # [N, C] int64
    truth: np.ndarray  # [N, C]
    predicted: np.ndarray  # [N, C]

    def mean_iou(self, weights: np.ndarray) -> np.ndarray:
        """[R] mean IoU over the classes present in each weighted resample's ground truth (NaN: none)."""
        inter, truth, pred = (weights @ a.astype(np.float64) for a in (self.intersection, self.truth, self.predicted))
        present = truth > 0
        union = truth + pred - inter
        iou = np.where(present, inter / np.where(union > 0, union, 1.0), 0.0)
        count = present.sum(axis=1)
        return np.where(count > 0, iou.sum(axis=1) / np.maximum(count, 1), np.nan)


class ConfusionMeter:
    """Accumulate a confusion matrix over ``classes`` (0 = "none" is added; predictions outside count as 0)."""

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = [0, *sorted({int(c) for c in classes} - {0})]
        self._position = {c: i for i, c in enumerate(self.classes)}
        self.matrix = np.zeros((len(self.classes), len(self.classes)), dtype=np.int64)
        self._images: list[np.ndarray] = []  # per image: [3, K] true positives, truth and predicted per class

    def update(self, predicted: np.ndarray, truth_maps: np.ndarray) -> None:
        """One image: ``predicted`` [h, w] concept numbers, ``truth_maps`` [k, h, w] or [h, w]."""
        truth_maps = truth_maps[None] if truth_maps.ndim == 2 else truth_maps
        if truth_maps.shape[1:] != predicted.shape:
            raise ValueError(f"prediction {predicted.shape} and ground truth {truth_maps.shape[1:]} differ in size")
        labelled = (truth_maps != 0).any(axis=0)
        hit = (truth_maps == predicted[None]).any(axis=0) & labelled
        first = np.where(truth_maps[0] != 0, truth_maps[0], truth_maps.max(axis=0))
        truth = np.where(hit, predicted, first)[labelled]
        known = np.isin(predicted[labelled], self.classes)
        pred = np.where(known, predicted[labelled], 0)
        truth = np.where(np.isin(truth, self.classes), truth, 0)
        matrix = confusion_matrix(truth, pred, labels=self.classes)
        self.matrix += matrix
        self._images.append(np.stack([np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)]).astype(np.int64))

    def image_counts(self) -> ImageClassCounts:
        """Every scored image's own counts per class (0 = none left out), summing to :attr:`matrix`'s."""
        rows = np.stack(self._images) if self._images else np.zeros((0, 3, len(self.classes)), np.int64)
        return ImageClassCounts(tuple(self.classes[1:]), rows[:, 0, 1:], rows[:, 1, 1:], rows[:, 2, 1:])

    def class_iou(self) -> dict[int, float]:
        """IoU of every class (other than 0) present in the ground truth."""
        tp = np.diag(self.matrix)
        truth = self.matrix.sum(axis=1)
        pred = self.matrix.sum(axis=0)
        return {c: float(tp[i] / (truth[i] + pred[i] - tp[i]))
                for i, c in enumerate(self.classes) if c != 0 and truth[i] > 0}

    def result(self, subset: Sequence[int] | None = None) -> dict[str, float | int | None]:
        """Pixel accuracy, mean IoU (over ``subset`` too when given), and the most-frequent-class baseline."""
        ious = self.class_iou()
        total = int(self.matrix.sum())
        if not ious or total == 0:
            return {"pixel_accuracy": None, "mean_iou": None, "baseline_mean_iou": None, "classes": 0}
        truth = self.matrix.sum(axis=1)
        frequent = int(np.argmax(truth[1:])) + 1
        baseline = float(truth[frequent] / total)  # IoU of the frequent class when predicted everywhere
        chosen = [ious[c] for c in subset or () if c in ious]
        return {
            "pixel_accuracy": float(np.trace(self.matrix) / total),
            "mean_iou": float(np.mean(list(ious.values()))),
            "mean_iou_subset": float(np.mean(chosen)) if chosen else None,
            "baseline_class": self.classes[frequent],
            "baseline_pixel_accuracy": baseline,
            "baseline_mean_iou": baseline / len(ious),
            "classes": len(ious),
            "labelled_pixels": total,
        }
