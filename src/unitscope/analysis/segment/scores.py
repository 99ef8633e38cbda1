"""Segmentation scores from scikit-learn's confusion matrix: per-class IoU, mean IoU, and baselines.

Each labelled pixel counts once. Where a pixel carries several labels (Broden's ``k`` maps), its truth is
the predicted concept when that is one of its labels, else its first map's label, so a correct guess of any
of its labels is a hit. Unlabelled pixels (0 in every map) are ignored. The confusion matrix is summed over
images in int64, so scores do not depend on batching. The baseline predicts the most frequent class (the
largest ground-truth area over the evaluated images) everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix


class ConfusionMeter:
    """Accumulate a confusion matrix over ``classes`` (0 = "none" is added; predictions outside count as 0)."""

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = [0, *sorted({int(c) for c in classes} - {0})]
        self._position = {c: i for i, c in enumerate(self.classes)}
        self.matrix = np.zeros((len(self.classes), len(self.classes)), dtype=np.int64)

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
        self.matrix += confusion_matrix(truth, pred, labels=self.classes)

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
