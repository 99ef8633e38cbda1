"""Concept vectors (Net2Vec, Fong & Vedaldi 2018): each concept as a linear combination of many units.

Features: the units of one or more layers (e.g. conv5 and pool5), each upsampled to the label resolution
as ``dissect`` did, concatenated per pixel and standardised with the training split's mean and std. One
multinomial logistic regression (torch, full-batch L-BFGS, small L2 penalty) over the category's concepts
plus a "none" class for unlabelled pixels gives every concept c a vector ``w_c`` and bias ``b_c``; a pixel
takes ``argmax_c (w_c·x + b_c)``. Training pixels are a fixed random sample per image (first label map as
the target); the last ``holdout`` share of the fitting images is kept out and scored, so the reported
IoUs are held-out.

Net2Vec's finding, measured: for each concept, the fewest units (largest ``|w_c|`` on standardised
features, the other weights of ``w_c`` set to 0, no refit) whose segmentation reaches 90 % of the full
vector's held-out IoU.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unitscope.analysis.segment.scores import ConfusionMeter
from unitscope.batching import batch_ranges
from unitscope.capture import LayerRecorder
from unitscope.data.probe import ProbeSet
from unitscope.defaults import FIT_N
from unitscope.dissection.upsample import Upsampler
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel

UNIT_STEPS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ConceptVectors:
    """Fitted vectors: ``weights`` [C+1, D] over standardised features (row 0 = none), ``numbers`` [C+1]."""

    layers: tuple[str, ...]
    paths: tuple[str, ...]
    widths: tuple[int, ...]
    numbers: np.ndarray
    names: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    report: dict[str, object]

    def save(self, directory: Path) -> None:
        """``vectors.npz`` (arrays) and ``vectors.json`` (layers, concepts, held-out scores)."""
        np.savez(directory / "vectors.npz", numbers=self.numbers, weights=self.weights, bias=self.bias,
                 mean=self.mean, std=self.std)
        meta = {"layers": list(self.layers), "paths": list(self.paths), "widths": list(self.widths),
                "names": list(self.names), **self.report}
        (directory / "vectors.json").write_text(json.dumps(meta, indent=2))


class FeatureMaps:
    """One forward pass: the model's logits and the chosen layers upsampled and concatenated [B, D, sh, sw]."""

    def __init__(self, model: LoadedModel, paths: tuple[str, ...], upsamplers: tuple[Upsampler, ...]) -> None:
        self.model = model
        self.paths = paths
        self.upsamplers = tuple(u.to(model.device) for u in upsamplers)
        self.widths: tuple[int, ...] = ()

    def __call__(self, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model.preprocess.batch(images, self.model.device)
        with torch.no_grad(), ExitStack() as stack:
            recorders = [stack.enter_context(LayerRecorder(self.model.module, p)) for p in self.paths]
            logits = self.model.module(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            raise UsageError("segment needs a classifier whose output is [batch, classes]; this model's is not")
        return logits, self.upsample([r.activation for r in recorders])

    def upsample(self, activations: list[torch.Tensor | None]) -> torch.Tensor:
        """The layers' maps (one per path, as recorded) upsampled and concatenated [B, D, sh, sw]; ``see``
        records them in its own pass and hands them over here."""
        maps = []
        self.widths = tuple(int(a.shape[1]) for a in activations if a is not None)
        for path, activation, upsampler in zip(self.paths, activations, self.upsamplers, strict=True):
            if activation is None or activation.dim() != 4:
                raise UsageError(f"layer {path} gave no [batch, units, h, w] maps; choose conv layers")
            maps.append(upsampler(activation))
        return torch.cat(maps, dim=1)


def fit_concept_vectors(
    features: FeatureMaps,
    layers: tuple[str, ...],
    probe: ProbeSet,
    category: str = "object",
    n: int = FIT_N,
    holdout: float = 0.25,
    pixels: int = 128,
    l2: float = 3e-4,
    seed: int = 0,
    batch_size: int = 16,
) -> ConceptVectors:
    """Fit the vectors on the first ``n`` images of ``probe`` (the last ``holdout`` share held out)."""
    count = min(n, len(probe))
    n_test = max(1, round(count * holdout))
    if count - n_test < 1:
        raise UsageError(f"fitting concept vectors needs at least 2 labelled images, got {count}")
    concepts = list(probe.concepts.in_category(category))
    if not concepts:
        raise UsageError(f"the probe set has no {category} concepts to fit vectors for")
    numbers = np.array([0, *[c.number for c in concepts]])
    lookup = np.zeros(int(numbers.max()) + 1, dtype=np.int64)
    lookup[numbers] = np.arange(len(numbers))
    rng = np.random.default_rng(seed)
    train_x: list[torch.Tensor] = []
    train_y: list[np.ndarray] = []
    test_x: list[torch.Tensor] = []
    test_truth: list[np.ndarray] = []
    for part in batch_ranges(count, batch_size):
        samples = [probe[i] for i in part]
        _, maps = features([s.image for s in samples])
        for j, sample in enumerate(samples):
            truth = sample.pixel_labels.get(category)
            if truth is None:
                continue
            if part.start + j >= count - n_test:
                test_x.append(maps[j].flatten(1).clone())  # [D, P], unit-major for the held-out scoring
                test_truth.append(truth)
                continue
            flat = maps[j].flatten(1).T  # [P, D]
            pick = torch.from_numpy(rng.choice(flat.shape[0], min(pixels, flat.shape[0]), replace=False))
            target = truth[0].reshape(-1)[pick.numpy()]
            train_x.append(flat[pick])
            train_y.append(lookup[np.clip(target, 0, len(lookup) - 1)] * np.isin(target, numbers))
    if not train_x or not test_x:
        raise UsageError(f"no images of the probe set carry {category} labels; fit vectors on a labelled probe set")
    x = torch.cat(train_x)
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    weights, bias = _fit((x - mean) / std, torch.from_numpy(np.concatenate(train_y)), len(numbers), l2)
    test = torch.cat(test_x, dim=1)  # [D, T*P]: all held-out pixels, one copy
    test_x.clear()
    test.sub_(mean[:, None]).div_(std[:, None])
    report = _held_out(test, test_truth, weights, bias, numbers, [c.name for c in concepts])
    report.update({"fit_images": count - n_test, "held_out_images": len(test_truth), "pixels_per_image": pixels,
                   "l2": l2, "category": category, "probe": probe.name})
    return ConceptVectors(layers, features.paths, features.widths, numbers, ("none", *[c.name for c in concepts]),
                          weights.numpy(), bias.numpy(), mean.numpy(), std.numpy(), report)


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS (deterministic)."""
    w = torch.zeros(classes, x.shape[1], dtype=torch.float32, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float32, requires_grad=True)
    present = torch.bincount(y, minlength=classes) > 0
    optimiser = torch.optim.LBFGS([w, b], lr=1, max_iter=100, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = (x @ w.T + b).masked_fill(~present, -1e4)
        loss = torch.nn.functional.cross_entropy(logits, y) + l2 * (w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        b_out = b.detach().clone()
        b_out[~present] = -1e4  # a concept never seen in training is never predicted
    return w.detach().clone(), b_out


def _held_out(test: torch.Tensor, truth: list[np.ndarray], weights: torch.Tensor, bias: torch.Tensor,
              numbers: np.ndarray, names: list[str]) -> dict[str, object]:
    """Held-out IoU per concept, and units needed for 90 % of it (top-|w| units only, no refit).

    ``test`` is [D, pixels], unit-major, so the top units of a concept are contiguous rows: its score with
    the first s units grows by adding the next rows' share, one pass over at most half the data per concept
    instead of one full product per step.
    """
    full = weights @ test + bias[:, None]  # [C, pixels]
    maps = [t[None] if t.ndim == 2 else t for t in truth]
    k_max = max(t.shape[0] for t in maps)
    stacked = np.concatenate([np.concatenate([t, np.zeros((k_max - t.shape[0], *t.shape[1:]), t.dtype)])
                              for t in maps], axis=1)  # all held-out images as one tall image [k, T*h, w]
    meter = ConfusionMeter([int(c) for c in numbers[1:]])
    meter.update(numbers[full.argmax(dim=0).numpy()].reshape(stacked.shape[1:]), stacked)
    base = meter.class_iou()
    truth_number = stacked.reshape(stacked.shape[0], -1)  # [k, P]: the held-out labels per pixel
    top2 = full.topk(2, dim=0)
    steps = [s for s in UNIT_STEPS if s < test.shape[0]]
    per_concept: dict[str, dict[str, object]] = {}
    for k, number in enumerate(numbers[1:], start=1):
        if number not in base or base[number] <= 0:
            continue
        # Concept k wins a pixel when its score beats the best other score (ties: the lower index wins).
        first = top2.indices[0] == k
        other = torch.where(first, top2.values[1], top2.values[0])
        other_index = torch.where(first, top2.indices[1], top2.indices[0])
        is_truth = torch.from_numpy((truth_number == number).any(axis=0))

        def binary_iou(column: torch.Tensor, k: int = k, other: torch.Tensor = other,
                       other_index: torch.Tensor = other_index, is_truth: torch.Tensor = is_truth) -> float:
            wins = (column > other) | ((column == other) & (k < other_index))
            union = int((wins | is_truth).sum())
            return int((wins & is_truth).sum()) / union if union else 0.0

        goal = 0.9 * binary_iou(full[k])
        order = torch.argsort(weights[k].abs(), descending=True)
        partial = torch.zeros_like(full[k])  # w_k·x over the first `done` units of `order`
        done, needed = 0, test.shape[0]  # all units reach the goal by definition
        for step in steps:
            rows = order[done:step]
            partial += weights[k, rows] @ test[rows]
            done = step
            if binary_iou(partial + bias[k]) >= goal:
                needed = step
                break
        per_concept[names[k - 1]] = {"iou": base[number], "units_for_90pct": needed}
    return {"held_out_mean_iou": float(np.mean(list(base.values()))) if base else None, "concepts": per_concept}
