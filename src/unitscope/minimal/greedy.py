"""The greedy loop of Zhou et al. 2015 §2: remove regions while the image is still classified correctly.

At each step every region still kept is a candidate; all candidates are rendered and scored in batched
forward passes, and the one whose removal leaves the highest softmax probability of the true class goes
(ties: the lowest region number). The loop stops at the first removal after which the top-1 prediction
is no longer the true class; the *minimal image* is the one just before it. If even the fully removed
image is classified correctly, the loop stops there, with nothing kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np
import torch
from torch import nn

from unitscope.batching import batch_ranges
from unitscope.errors import UsageError
from unitscope.minimal.choice import WindowedSteps
from unitscope.minimal.fills import CompositeFill, Fill, make_fill
from unitscope.minimal.poisson import PoissonSolver
from unitscope.minimal.segments import Segmentation, check_image, from_labels, segment_image
from unitscope.minimal.split import Split, split_model
from unitscope.models.preprocessing import Preprocessing

LOG = logging.getLogger(__name__)

MISCLASSIFIED = "misclassified"
EXHAUSTED = "exhausted"


class MisclassifiedImageError(UsageError):
    """The unmodified image is not classified as the target, so it has no minimal image."""

    def __init__(self, message: str, predicted: int, score: float) -> None:
        super().__init__(message)
        self.predicted = predicted
        self.score = score


class BatchPreprocess(Protocol):
    """Anything with ``batch(images, device)``, like :class:`unitscope.models.preprocessing.Preprocessing`."""

    def batch(self, images: Sequence[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor: ...


@dataclass(frozen=True)
class RemovalStep:
    """One greedy removal: the region removed and what the network said afterwards."""

    region: int
    score: float  # softmax probability of the true class after the removal
    predicted: int  # top-1 class after the removal
    correct: bool


@dataclass(frozen=True)
class MinimalResult:
    """The outcome for one image.

    ``steps`` lists every removal in order; when ``stopped`` is ``"misclassified"`` the last step is
    the one that broke the classification and is *not* applied to ``kept`` / ``image``.
    """

    segmentation: Segmentation
    target: int
    initial_score: float
    steps: tuple[RemovalStep, ...]
    kept: np.ndarray  # bool [K]: regions of the minimal image
    image: np.ndarray  # uint8 [H, W, 3]: the minimal image
    stopped: str  # "misclassified" or "exhausted"
    fill: Fill = field(repr=False, compare=False)

    def images_at(self, num_removed: Sequence[int]) -> np.ndarray:
        """uint8 [C, H, W, 3]: the image after the first t removals of ``steps``, for each t given."""
        flags = np.ones((len(num_removed), self.segmentation.num_regions), dtype=bool)
        for row, t in enumerate(num_removed):
            flags[row, [s.region for s in self.steps[:t]]] = False
        return self.fill.render(flags)

    @property
    def removed(self) -> list[int]:
        """Regions removed to reach the minimal image, in order."""
        return [s.region for s in self.steps if s.correct]

    @property
    def final_score(self) -> float:
        """Probability of the true class on the minimal image."""
        applied = [s for s in self.steps if s.correct]
        return applied[-1].score if applied else self.initial_score

    @property
    def kept_pixels(self) -> np.ndarray:
        """bool [H, W]: pixels of the minimal image that are the original's."""
        kept: np.ndarray = self.kept[self.segmentation.labels]
        return kept

    @property
    def pixel_fraction(self) -> float:
        """Share of the image's pixels that the minimal image keeps."""
        return float(self.kept_pixels.mean())


class TargetScorer:
    """Softmax probability of one class and the top-1 prediction, in batches (eval mode, no grad)."""

    def __init__(
        self,
        model: nn.Module,
        preprocess: BatchPreprocess,
        target: int,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {batch_size}")
        self.model = model.eval()
        self.preprocess = preprocess
        self.target = target
        self.batch_size = batch_size
        self.device = device
        self.forward_passes = 0

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        """The network input for uint8 images [C, H, W, 3]."""
        return self.preprocess.batch(list(images), self.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's scores [C, classes] for one batch of inputs, checked."""
        with torch.no_grad():
            logits: torch.Tensor = self.model(x).float()
        self.forward_passes += 1
        if logits.ndim != 2 or not 0 <= self.target < logits.shape[1]:
            raise UsageError(
                f"the model gives {tuple(logits.shape)} scores per batch, so class index {self.target} "
                "does not exist; pick a class the model has (--label) or the matching --model"
            )
        if not torch.isfinite(logits).all():
            raise UsageError("the model produced NaN or infinite scores; check the weights and --mean/--std")
        return logits

    def probabilities(self, logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(probability of the target float64 [C], top-1 class int64 [C])."""
        probs = torch.softmax(logits.double(), dim=1)[:, self.target].cpu().numpy()
        return probs, logits.argmax(dim=1).cpu().numpy().astype(np.int64)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability of the target float64 [C], top-1 class int64 [C]) for uint8 images [C, H, W, 3]."""
        probs, preds = [], []
        for part in batch_ranges(len(images), self.batch_size):
            p, c = self.probabilities(self.logits(self.inputs(images[part.start : part.stop])))
            probs.append(p)
            preds.append(c)
        return np.concatenate(probs), np.concatenate(preds)


def greedy_removal(fill: Fill, scorer: TargetScorer, segmentation: Segmentation,
                   windows: WindowedSteps | None = None) -> MinimalResult:
    """Run the greedy loop on an image already split into regions and given a fill.

    With ``windows``, candidates are scored from the current image's cached activations and the near
    best again by whole passes (:mod:`unitscope.minimal.choice`): the removals and scores of
    ``batch_size=1`` without it.
    """
    num_regions = segmentation.num_regions
    kept = np.ones(num_regions, dtype=bool)
    original = scorer.inputs(fill.render(kept[None]))
    logits = scorer.logits(original)
    probs, preds = scorer.probabilities(logits)
    if preds[0] != scorer.target:
        raise MisclassifiedImageError(
            f"the model classifies the image as class {int(preds[0])}, not {scorer.target}; minimal images "
            "start from a correctly classified image (check --class, the image, or the model)",
            int(preds[0]),
            float(probs[0]),
        )
    initial = float(probs[0])
    steps: list[RemovalStep] = []
    stopped = EXHAUSTED
    if windows is not None:
        windows.start(original, logits)
    while kept.any():
        candidates = np.flatnonzero(kept)
        flags = np.repeat(kept[None], len(candidates), axis=0)
        flags[np.arange(len(candidates)), candidates] = False
        choice = None
        if windows is not None:
            choice = windows.choose(candidates, partial(_input, scorer, fill, flags))
            if choice is None:
                LOG.warning("window scores strayed beyond their tolerance; scoring this image whole from here")
                windows = None
        if choice is None:
            probs = np.empty(len(candidates))
            preds = np.empty(len(candidates), dtype=np.int64)
            for indices in batch_ranges(len(candidates), scorer.batch_size):
                part = slice(indices.start, indices.stop)
                probs[part], preds[part] = scorer(fill.render(flags[part]))
            best = int(np.argmax(probs))  # first maximum: lowest region number on ties
            choice = best, float(probs[best]), int(preds[best])
        best, prob, predicted = choice
        step = RemovalStep(int(candidates[best]), prob, predicted, predicted == scorer.target)
        steps.append(step)
        if not step.correct:
            stopped = MISCLASSIFIED
            break
        kept[step.region] = False
    image = fill.render(kept[None])[0]
    return MinimalResult(segmentation, scorer.target, initial, tuple(steps), kept, image, stopped, fill)


def _input(scorer: TargetScorer, fill: Fill, flags: np.ndarray, row: int) -> torch.Tensor:
    """Candidate ``row``'s network input, made as the per-candidate loop makes it."""
    return scorer.inputs(fill.render(flags[row : row + 1]))


def windowed_steps(fill: Fill, scorer: TargetScorer, image: np.ndarray, split: Split | None
                   ) -> WindowedSteps | None:
    """The window engine for this image, or None when its candidates must be scored whole: no split, a
    fill that changes more than the removed region, or preprocessing that is not per pixel."""
    if split is None or not isinstance(fill, CompositeFill) or not isinstance(scorer.preprocess, Preprocessing):
        return None
    pixels = scorer.inputs(fill.background[None])
    if tuple(pixels.shape[-2:]) != tuple(image.shape[:2]):  # resized: a pixel's value depends on its neighbours
        return None
    return WindowedSteps(split, fill.labels, pixels[0], scorer.target, scorer.logits, scorer.probabilities)


def minimal_image(
    model: nn.Module,
    image: np.ndarray,
    target: int,
    preprocess: BatchPreprocess,
    segments: int | np.ndarray = 40,
    fill: str = "mean",
    batch_size: int = 64,
    edges: bool = False,
    device: torch.device | str = "cpu",
    solver: PoissonSolver | None = None,
    incremental: bool = True,
    split: Split | None = None,
) -> MinimalResult:
    """The minimal image of ``image`` for class ``target``.

    ``segments`` is either about how many SLIC superpixels to make or a ready integer label map [H, W].
    ``solver`` lets many same-sized images share one Poisson factorisation (``fill="gradient"``).
    ``incremental`` scores candidates from cached activations where the model, fill and preprocessing
    allow (:mod:`unitscope.minimal.windows`), with results equal to one whole pass per candidate;
    ``split`` (from :func:`~unitscope.minimal.windows.split_model`) saves tracing the model per image.
    """
    image = check_image(image)
    if isinstance(segments, np.ndarray):
        if segments.shape != image.shape[:2]:
            raise UsageError(f"the segmentation is {segments.shape}, the image {image.shape[:2]}; they must match")
        segmentation = from_labels(segments)
    else:
        segmentation = segment_image(image, int(segments), edges=edges)
    scorer = TargetScorer(model, preprocess, target, batch_size, device)
    filled = make_fill(fill, image, segmentation, solver)
    windows = None
    if incremental:
        if split is None:
            split, reason = split_model(scorer.model, image.shape[:2])
            LOG.debug("minimal images of %s: %s", type(model).__name__, reason)
        windows = windowed_steps(filled, scorer, image, split)
    return greedy_removal(filled, scorer, segmentation, windows)
