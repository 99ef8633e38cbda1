"""Scoring a segmentation against ground truth: pixel accuracy, mean IoU, and two trivial baselines.

Only labelled pixels count (a pixel with no ground-truth label in any of its ``k`` maps is ignored).
A pixel is correct when its predicted concept is one of its ground-truth labels. Counts are integer
sums over images, so the scores do not depend on batching.

- ``pixel_accuracy``: correct / labelled pixels.
- ``mean_iou``: mean over the classes present in the ground truth of ``|P ∩ G| / |P ∪ G|``, counted
  over all images; ``mean_iou_detected`` averages over those classes that some detector can predict.
- baseline (``baseline_*``): predict the most frequent class (largest ground-truth area over the
  evaluated images) everywhere. ``majority_*``: predict each image's own most frequent class, an oracle
  that knows every image's majority label and so is a stronger baseline.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from unitscope.analysis.segment.scores import ImageClassCounts


class SegmentationMeter:
    """Integer counts per class for the prediction and both baselines."""

    def __init__(self, vocabulary: Collection[int] = ()) -> None:
        self.vocabulary = set(int(v) for v in vocabulary)
        self.intersection: dict[int, int] = {}
        self.predicted: dict[int, int] = {}
        self.truth: dict[int, int] = {}
        self.majority_intersection: dict[int, int] = {}
        self.majority_predicted: dict[int, int] = {}
        self.correct = 0
        self.majority_correct = 0
        self.labelled = 0
        self.images = 0
        self._images: list[tuple[dict[int, int], dict[int, int], dict[int, int]]] = []  # (inter, pred, truth)

    def update(self, predicted: np.ndarray, truth_maps: np.ndarray) -> None:
        """Add one image: ``predicted`` [h, w] concept numbers, ``truth_maps`` [k, h, w] (0 = unlabeled)."""
        truth_maps = truth_maps[None] if truth_maps.ndim == 2 else truth_maps
        if truth_maps.shape[1:] != predicted.shape:
            raise ValueError(f"prediction {predicted.shape} and ground truth {truth_maps.shape[1:]} differ in size")
        labelled = (truth_maps != 0).any(axis=0)
        n_labelled = int(labelled.sum())
        self.images += 1
        mine: tuple[dict[int, int], dict[int, int], dict[int, int]] = ({}, {}, {})
        self._images.append(mine)
        if n_labelled == 0:
            return
        self.labelled += n_labelled
        hit = (truth_maps == predicted[None]).any(axis=0) & labelled & (predicted != 0)
        self.correct += int(hit.sum())
        classes, areas = _areas(truth_maps)
        for c, area in zip(classes, areas, strict=True):
            self.truth[c] = self.truth.get(c, 0) + area
            mine[2][c] = area
        kept = predicted[labelled]
        for c, count in zip(*np.unique(kept[kept != 0], return_counts=True), strict=True):
            self.predicted[int(c)] = self.predicted.get(int(c), 0) + int(count)
            mine[1][int(c)] = int(count)
        for c, count in zip(*np.unique(predicted[hit], return_counts=True), strict=True):
            self.intersection[int(c)] = self.intersection.get(int(c), 0) + int(count)
            mine[0][int(c)] = int(count)
        majority = classes[int(np.argmax(areas))]  # ties: the lower label number (classes are sorted)
        self.majority_predicted[majority] = self.majority_predicted.get(majority, 0) + n_labelled
        self.majority_intersection[majority] = self.majority_intersection.get(majority, 0) + max(areas)
        self.majority_correct += max(areas)

    def image_counts(self) -> ImageClassCounts:
        """Every scored image's own counts over the ground truth's classes (those :meth:`class_iou` scores)."""
        classes = tuple(sorted(self.truth))

        def table(part: int) -> np.ndarray:
            rows = [[image[part].get(c, 0) for c in classes] for image in self._images]
            return np.array(rows, dtype=np.int64).reshape(len(self._images), len(classes))

        return ImageClassCounts(classes, table(0), table(2), table(1))

    def class_iou(self) -> dict[int, float]:
        """IoU of each class present in the ground truth."""
        return {c: self.intersection.get(c, 0) / (self.predicted.get(c, 0) + g - self.intersection.get(c, 0))
                for c, g in sorted(self.truth.items())}

    def result(self) -> dict[str, float | int | None]:
        """The scores (None where nothing labelled was seen)."""
        if not self.truth:
            return {"pixel_accuracy": None, "mean_iou": None, "mean_iou_detected": None,
                    "baseline_pixel_accuracy": None, "baseline_mean_iou": None,
                    "majority_pixel_accuracy": None, "majority_mean_iou": None,
                    "classes": 0, "labelled_pixels": 0, "images": self.images}
        ious = self.class_iou()
        detected = [iou for c, iou in ious.items() if c in self.vocabulary]
        frequent = min(self.truth, key=lambda c: (-self.truth[c], c))
        majority = [self.majority_intersection.get(c, 0) / (self.majority_predicted.get(c, 0) + g
                                                            - self.majority_intersection.get(c, 0))
                    for c, g in self.truth.items()]
        return {
            "pixel_accuracy": self.correct / self.labelled,
            "mean_iou": float(np.mean(list(ious.values()))),
            "mean_iou_detected": float(np.mean(detected)) if detected else None,
            "baseline_pixel_accuracy": self.truth[frequent] / self.labelled,
            "baseline_mean_iou": self.truth[frequent] / self.labelled / len(self.truth),
            "baseline_class": frequent,
            "majority_pixel_accuracy": self.majority_correct / self.labelled,
            "majority_mean_iou": float(np.mean(majority)),
            "classes": len(self.truth),
            "classes_detected": len(detected),
            "labelled_pixels": self.labelled,
            "images": self.images,
        }


def _areas(truth_maps: np.ndarray) -> tuple[list[int], list[int]]:
    """Sorted classes of an image and the number of pixels carrying each (in any of the maps)."""
    h, w = truth_maps.shape[1:]
    pixel = np.broadcast_to(np.arange(h * w).reshape(1, h, w), truth_maps.shape)
    labels = truth_maps.astype(np.int64)
    keep = labels != 0
    pairs = np.unique(labels[keep] * (h * w) + pixel[keep])  # each (label, pixel) once
    classes, counts = np.unique(pairs // (h * w), return_counts=True)
    return [int(c) for c in classes], [int(c) for c in counts]
