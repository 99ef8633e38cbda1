"""Detection average precision at IoU 0.5, with image weights for the paired bootstrap.

Matching (PASCAL VOC): within one image and class, detections in order of confidence each take the unmatched
ground-truth instance they overlap most, a true positive when that box IoU is at least 0.5, else a false
positive. AP is the area under the precision–recall curve without interpolation,
``Σ_n (R_n − R_{n−1}) P_n`` over the distinct confidences (ties form one step), with recall over *all*
ground-truth instances — scikit-learn's ``average_precision_score`` on the detections' labels times the share
of instances found. A resample weights each image by how often it was drawn: its detections and instances
count that many times, which is what drawing it twice does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unitscope.see.boxes import box_iou

IOU = 0.5
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detections:
    """One class over the images: each detection's image, confidence and match; instances per image."""

    image: np.ndarray  # [P] int image index
    confidence: np.ndarray  # [P]
    true: np.ndarray  # [P] bool: matched an instance
    instances: np.ndarray  # [N] int ground-truth instances per image


def match(predicted: Sequence[tuple[Box, float]], truth: Sequence[Box], iou: float = IOU) -> list[bool]:
    """Which detections of one image and class are true positives (greedy by confidence, VOC)."""
    order = sorted(range(len(predicted)), key=lambda i: -predicted[i][1])
    taken = [False] * len(truth)
    hits = [False] * len(predicted)
    for i in order:
        best, where = iou, -1
        for j, box in enumerate(truth):
            overlap = box_iou(predicted[i][0], box)
            if not taken[j] and overlap >= best:
                best, where = overlap, j
        if where >= 0:
            taken[where] = True
            hits[i] = True
    return hits


def collect(predicted: Sequence[Sequence[tuple[Box, float]]], truth: Sequence[Sequence[Box]],
            iou: float = IOU) -> Detections:
    """One class: ``predicted[i]`` and ``truth[i]`` are image i's detections (box, confidence) and instances."""
    images, confidences, hits = [], [], []
    for i, (mine, real) in enumerate(zip(predicted, truth, strict=True)):
        flags = match(mine, real, iou)
        images += [i] * len(mine)
        confidences += [c for _, c in mine]
        hits += flags
    return Detections(np.asarray(images, np.int64), np.asarray(confidences, np.float64), np.asarray(hits, bool),
                      np.asarray([len(t) for t in truth], np.int64))


def average_precision(found: Detections, weights: np.ndarray) -> np.ndarray:
    """[R] AP for each row of image weights [R, N] (NaN where the weighted images hold no instance)."""
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    total = weights @ found.instances.astype(np.float64)  # [R]
    if found.confidence.size == 0:
        return np.where(total > 0, 0.0, np.nan)
    order = np.argsort(-found.confidence, kind="stable")
    w = weights[:, found.image[order]]  # [R, P]
    tp = np.cumsum(w * found.true[order], axis=1)
    seen = np.cumsum(w, axis=1)
    ordered = found.confidence[order]
    last = np.append(ordered[1:] != ordered[:-1], True)  # the end of each group of tied confidences
    tp, seen = tp[:, last], seen[:, last]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(seen > 0, tp / np.where(seen > 0, seen, 1), 0.0)
        recall = tp / total[:, None]
    step = np.diff(np.concatenate([np.zeros((len(w), 1)), recall], axis=1), axis=1)
    ap = (step * precision).sum(axis=1)
    return np.where(total > 0, ap, np.nan)


def mean_ap(classes: Sequence[Detections], weights: np.ndarray) -> np.ndarray:
    """[R] mean AP over the classes with an instance in each weighted resample (NaN: none)."""
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    if not classes:
        return np.full(len(weights), np.nan)
    table = np.stack([average_precision(c, weights) for c in classes])  # [C, R]
    present = np.isfinite(table)
    count = present.sum(axis=0)
    return np.where(count > 0, np.where(present, table, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
