"""Semantic segmentation by a dissected layer's detector units, in the same forward pass as the prediction.

Each detector unit (its Network Dissection label in the chosen category, IoU over the threshold) is
upsampled to the label resolution exactly as ``dissect`` did (same geometry, same preprocessing) and is
*active* where it exceeds its dissection threshold ``t`` (strictly, like ``dissect``). A pixel takes the
concept of its most strongly activated unit, where strength is the margin over the threshold in units
of the threshold, ``(a - t) / |t|`` (``a - t`` when ``t == 0``), so units of different scales compete
fairly; ties go to the lower unit number. A pixel where no detector is active gets 0 (no concept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.capture import LayerRecorder
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.upsample import Upsampler
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel


@dataclass(frozen=True)
class UnitSegmentation:
    """Per image: concept number per label pixel (0 = none), the winning unit (-1 = none), class probabilities."""

    labels: torch.Tensor  # [B, sh, sw] int64
    units: torch.Tensor  # [B, sh, sw] int64
    probabilities: torch.Tensor  # [B, K] float64


@dataclass(frozen=True)
class DetectorSet:
    """The detector units of one dissected layer that segmentation uses."""

    layer: str
    path: str
    units: tuple[int, ...]
    numbers: tuple[int, ...]
    thresholds: tuple[float, ...]
    shape: tuple[int, int, int]


def detector_set(run: DissectionResult, layer: str | None, category: str = "object") -> DetectorSet:
    """Detector units of ``layer`` (default: the run's last layer) whose label is in ``category``."""
    name = layer if layer is not None else list(run.layers)[-1]
    if name not in run.layers:
        raise UsageError(f"the run has no layer {name!r}; its layers are {', '.join(run.layers)}")
    result = run.layers[name]
    units = result.units
    chosen = units[units["detector"].astype(bool) & (units["category"] == category)]
    if chosen.empty:
        raise UsageError(f"layer {name} of the run has no {category} detectors to segment with; "
                         "dissect on more images or choose another --layer")
    numbers = tuple(run.concepts.number_of(str(label), category) for label in chosen["label"])
    return DetectorSet(name, result.path, tuple(int(u) for u in chosen["unit"]), numbers,
                       tuple(float(t) for t in chosen["threshold"]), result.shape)


class UnitSegmenter:
    """Scene probabilities and a unit segmentation from one forward pass of ``model``."""

    def __init__(self, model: LoadedModel, detectors: DetectorSet, upsampler: Upsampler) -> None:
        self.model = model
        self.detectors = detectors
        self.upsampler = upsampler.to(model.device)
        self._units = torch.tensor(detectors.units, dtype=torch.long, device=model.device)
        self._numbers = torch.tensor(detectors.numbers, dtype=torch.long, device=model.device)
        thresholds = torch.tensor(detectors.thresholds, dtype=torch.float32, device=model.device)
        self._thresholds = thresholds[None, :, None, None]
        scale = thresholds.abs()
        self._scale = torch.where(scale > 0, scale, torch.ones_like(scale))[None, :, None, None]

    def __call__(self, images: list[np.ndarray]) -> UnitSegmentation:
        x = self.model.preprocess.batch(images, self.model.device)
        with torch.no_grad(), LayerRecorder(self.model.module, self.detectors.path) as recorder:
            logits = self.model.module(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise UsageError("segment needs a classifier whose output is [batch, classes]; this model's is not")
        activation = recorder.activation
        if activation is None or tuple(activation.shape[1:]) != self.detectors.shape:
            got = None if activation is None else tuple(activation.shape[1:])
            raise UsageError(f"layer {self.detectors.layer} gives maps of shape {got}, but the run dissected "
                             f"{self.detectors.shape}; use the model and input size that were dissected")
        maps = self.upsampler(activation[:, self._units])  # [B, D, sh, sw]
        active = maps > self._thresholds
        strength = ((maps - self._thresholds) / self._scale).masked_fill(~active, float("-inf"))
        best = strength.argmax(dim=1)
        hit = active.any(dim=1)
        labels = torch.where(hit, self._numbers[best], torch.zeros_like(best))
        units = torch.where(hit, self._units[best], torch.full_like(best, -1))
        probabilities = torch.softmax(logits.double(), dim=1)
        return UnitSegmentation(labels.cpu(), units.cpu(), probabilities.cpu())
