"""The greedy loop on tiny hand-made models whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.minimal import minimal_image
from unitscope.minimal.greedy import EXHAUSTED, MISCLASSIFIED, MisclassifiedImageError
from unitscope.models.preprocessing import Preprocessing

RAW = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # network input = image / 255


class StrongRed(nn.Module):
    """Class 0 score: mean over pixels of relu(red - 0.5); class 1: a constant ``bar``."""

    def __init__(self, bar: float = 0.1) -> None:
        super().__init__()
        self.bar = bar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = torch.relu(x[:, 0] - 0.5).mean(dim=(1, 2))
        return torch.stack([score, torch.full_like(score, self.bar)], dim=1)


class RedMinusGreen(nn.Module):
    """Class 0 score: mean over pixels of relu(red - green - 0.3); class 1: a constant ``bar``."""

    def __init__(self, bar: float) -> None:
        super().__init__()
        self.bar = bar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = torch.relu(x[:, 0] - x[:, 1] - 0.3).mean(dim=(1, 2))
        return torch.stack([score, torch.full_like(score, self.bar)], dim=1)


def four_columns() -> tuple[np.ndarray, np.ndarray]:
    """2x4 image, one region per column; reds 255, 204, 0, 0 (x = 1.0, 0.8, 0, 0), no green or blue."""
    image = np.zeros((2, 4, 3), dtype=np.uint8)
    image[:, 0, 0] = 255
    image[:, 1, 0] = 204
    return image, np.tile(np.arange(4), (2, 1))


def prob(score: float, bar: float = 0.1) -> float:
    return 1.0 / (1.0 + np.exp(bar - score))


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_hand_computed_sequence(batch_size: int) -> None:
    # Mean colour is (114.75 -> 115, 0, 0): x_red 0.45 adds nothing. Column contributions of relu(x - 0.5):
    # 0.5, 0.3, 0, 0, so the score is their mean: 0.2 at the start (> bar 0.1: correct).
    # Step 1: removing column 2 or 3 keeps 0.2 (tie -> lower region 2); step 2: column 3 (0.2);
    # step 3: removing 1 leaves 0.125, removing 0 leaves 0.075 -> remove 1; step 4: removing 0 leaves 0 < 0.1.
    image, segments = four_columns()
    result = minimal_image(StrongRed(), image, 0, RAW, segments=segments, batch_size=batch_size)
    assert [s.region for s in result.steps] == [2, 3, 1, 0]
    assert result.removed == [2, 3, 1]
    assert result.stopped == MISCLASSIFIED
    np.testing.assert_allclose([s.score for s in result.steps], [prob(0.2), prob(0.2), prob(0.125), prob(0.0)])
    assert result.initial_score == pytest.approx(prob(0.2))
    assert [s.correct for s in result.steps] == [True, True, True, False]
    assert result.steps[-1].predicted == 1
    assert result.kept.tolist() == [True, False, False, False]
    expected = np.zeros_like(image)
    expected[..., 0] = 115
    expected[:, 0, 0] = 255
    np.testing.assert_array_equal(result.image, expected)
    assert result.pixel_fraction == pytest.approx(0.25)


def test_removes_everything_when_the_empty_image_is_still_right() -> None:
    image, segments = four_columns()
    result = minimal_image(StrongRed(bar=-1.0), image, 0, RAW, segments=segments)
    assert result.stopped == EXHAUSTED
    assert sorted(result.removed) == [0, 1, 2, 3]
    assert not result.kept.any()


def test_an_image_the_model_gets_wrong_has_no_minimal_image() -> None:
    image, segments = four_columns()
    with pytest.raises(MisclassifiedImageError, match="classifies the image as class 1"):
        minimal_image(StrongRed(bar=0.5), image, 0, RAW, segments=segments)


def test_target_outside_the_model_is_a_usage_error() -> None:
    image, segments = four_columns()
    with pytest.raises(UsageError, match="class index 5 does not exist"):
        minimal_image(StrongRed(), image, 5, RAW, segments=segments)


def blobs(seed: int, size: int = 32) -> np.ndarray:
    """A smooth random image with red and green blobs, so SLIC finds regions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.full((size, size, 3), [90.0, 120.0, 90.0])
    for _ in range(6):
        cy, cx, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(3, 8)]
        colour = rng.choice([[200, 60, 40], [30, 220, 40], [40, 40, 200]])
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        image[inside] = colour
    image[: size // 3, : size // 3] = [240, 20, 20]  # one guaranteed red patch
    return image.astype(np.uint8)


def score(model: nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits = model(RAW.batch(list(images)))
    return torch.softmax(logits.double(), 1)[:, 0].numpy(), logits.argmax(1).numpy()


@pytest.mark.parametrize("fill", ["mean", "blur", "gradient"])
@pytest.mark.parametrize("seed", [1, 3])
def test_minimal_image_is_right_and_one_more_greedy_removal_is_not(fill: str, seed: int) -> None:
    model = RedMinusGreen(bar=0.05)
    result = minimal_image(model, blobs(seed), 0, RAW, segments=12, fill=fill, batch_size=5)
    _, pred = score(model, result.image[None])
    assert pred[0] == 0
    assert result.stopped == MISCLASSIFIED
    # Recompute the next greedy step independently: every removal of one more kept region.
    candidates = np.flatnonzero(result.kept)
    flags = np.repeat(result.kept[None], len(candidates), axis=0)
    flags[np.arange(len(candidates)), candidates] = False
    probs, preds = score(model, result.fill.render(flags))
    best = int(np.argmax(probs))
    assert candidates[best] == result.steps[-1].region
    assert preds[best] != 0
    # Every applied step was the best choice and left the image correct.
    kept = np.ones(result.segmentation.num_regions, dtype=bool)
    for step in result.steps[:-1]:
        candidates = np.flatnonzero(kept)
        flags = np.repeat(kept[None], len(candidates), axis=0)
        flags[np.arange(len(candidates)), candidates] = False
        probs, preds = score(model, result.fill.render(flags))
        assert candidates[int(np.argmax(probs))] == step.region
        assert preds[int(np.argmax(probs))] == 0
        kept[step.region] = False


def test_results_do_not_depend_on_batch_size_or_repetition() -> None:
    model = RedMinusGreen(bar=0.05)
    runs = [minimal_image(model, blobs(3), 0, RAW, segments=12, fill="gradient", batch_size=b) for b in (1, 4, 64)]
    for other in runs[1:]:
        assert other.steps == runs[0].steps
        np.testing.assert_array_equal(other.image, runs[0].image)
        np.testing.assert_array_equal(other.segmentation.labels, runs[0].segmentation.labels)
