"""Fills and segmentations: exact reconstructions, hand-computed backgrounds, refused inputs."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.errors import UsageError
from unitscope.minimal.fills import make_fill
from unitscope.minimal.poisson import PoissonSolver, adjacent_pairs
from unitscope.minimal.segments import EDGE, SUPERPIXEL, TooFewRegionsError, from_labels, segment_image


def random_case(seed: int, height: int = 9, width: int = 7, regions: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, regions, size=(height, width))
    labels.ravel()[:regions] = np.arange(regions)  # every region used
    return image, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_fill_with_nothing_removed_is_the_image(seed: int) -> None:
    image, labels = random_case(seed)
    seg = from_labels(labels)
    rendered = make_fill("gradient", image, seg).render(np.ones((1, seg.num_regions), dtype=bool))
    np.testing.assert_array_equal(rendered[0], image)


def test_gradient_fill_with_nothing_kept_is_the_mean_colour() -> None:
    image, labels = random_case(3)
    seg = from_labels(labels)
    rendered = make_fill("gradient", image, seg).render(np.zeros((1, seg.num_regions), dtype=bool))
    expected = np.rint(image.reshape(-1, 3).mean(axis=0))
    np.testing.assert_array_equal(rendered[0], np.broadcast_to(expected, image.shape))


def direct_solution(image: np.ndarray, labels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The documented least-squares problem solved densely: min |D u - w * D f|^2 with mean(u) = mean(f)."""
    height, width = labels.shape
    first, second = adjacent_pairs(height, width)
    diff = np.zeros((len(first), height * width))
    diff[np.arange(len(first)), first] = -1
    diff[np.arange(len(first)), second] = 1
    flat = labels.ravel()
    weight = (kept[flat[first]] & kept[flat[second]]).astype(float)
    pixels = image.reshape(-1, 3).astype(float)
    u = np.linalg.lstsq(diff, weight[:, None] * (diff @ pixels), rcond=None)[0]  # minimum norm: zero mean
    u = u - u.mean(axis=0) + pixels.mean(axis=0)
    return np.clip(np.rint(u), 0, 255).reshape(image.shape)


def test_gradient_fill_matches_a_dense_least_squares_solve_for_any_kept_set() -> None:
    image, labels = random_case(4, regions=4)
    seg = from_labels(labels)
    fill = make_fill("gradient", image, seg, PoissonSolver(*labels.shape))
    kept = np.array([[a, b, c, d] for a in (0, 1) for b in (0, 1) for c in (0, 1) for d in (0, 1)], dtype=bool)
    rendered = fill.render(kept)
    for row, flags in enumerate(kept):
        expected = direct_solution(image, seg.labels, flags)
        assert np.abs(rendered[row].astype(int) - expected).max() <= 1  # rounding at .5 may differ
        assert (rendered[row].astype(int) != expected).mean() < 0.02


def test_mean_and_blur_fill_keep_kept_regions_and_fill_the_rest() -> None:
    image = np.zeros((2, 4, 3), dtype=np.uint8)
    image[:, :2] = [200, 100, 0]
    image[:, 2:] = [0, 50, 101]
    seg = from_labels(np.array([[0, 0, 1, 1], [0, 0, 1, 1]]))
    mean = make_fill("mean", image, seg).render(np.array([[True, False]]))[0]
    np.testing.assert_array_equal(mean[:, :2], image[:, :2])
    np.testing.assert_array_equal(mean[:, 2:], np.broadcast_to([100, 75, 50], (2, 2, 3)))  # 50.5 rounds to 50


def test_blur_fill_is_a_heavy_blur_of_the_removed_part() -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[:, :10] = [200, 0, 0]
    image[:, 10:] = [0, 0, 200]
    seg = from_labels(np.repeat([[0] * 10 + [1] * 10], 20, axis=0))
    blur = make_fill("blur", image, seg).render(np.array([[False, True]]))[0]
    np.testing.assert_array_equal(blur[:, 10:], image[:, 10:])
    red = blur[0, :10, 0].astype(int)
    assert np.all(np.diff(red) <= 0)  # fades towards the blue half...
    assert 90 < red[-1] < 130 and red[0] > 180  # ...to about half-way at the boundary (sigma 1.6 px)
    assert blur[0, 9, 2] > 70  # and blue has bled in


def test_unknown_fill_is_refused() -> None:
    image, labels = random_case(5)
    with pytest.raises(UsageError, match="unknown fill 'paint'; choose one of mean, blur, gradient"):
        make_fill("paint", image, from_labels(labels))


def test_one_region_is_refused() -> None:
    with pytest.raises(TooFewRegionsError, match="has 1 region"):
        from_labels(np.zeros((4, 4), dtype=np.int64))
    flat = np.full((16, 16, 3), 100, dtype=np.uint8)
    with pytest.raises(TooFewRegionsError):
        segment_image(flat, n_segments=2)


def test_labels_are_relabelled_densely() -> None:
    seg = from_labels(np.array([[7, 7, 3], [3, 9, 9]]))
    np.testing.assert_array_equal(seg.labels, [[1, 1, 0], [0, 2, 2]])
    assert seg.sizes().tolist() == [2, 2, 2]


def test_edges_become_their_own_regions() -> None:
    image = np.full((40, 40, 3), 30, dtype=np.uint8)
    image[:, 20:] = 220  # one long vertical edge at x = 20
    plain = segment_image(image, n_segments=8)
    with_edges = segment_image(image, n_segments=8, edges=True)
    assert set(plain.kinds) == {SUPERPIXEL}
    assert with_edges.kinds.count(EDGE) == 1
    edge_pixels = with_edges.labels == with_edges.kinds.index(EDGE)
    columns = np.flatnonzero(edge_pixels.any(axis=0))
    assert columns.min() >= 17 and columns.max() <= 22  # thin, around the step
    assert edge_pixels.sum() >= 40  # runs the whole height


def test_bad_images_are_refused() -> None:
    with pytest.raises(UsageError, match="uint8 RGB image"):
        segment_image(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(UsageError, match="at least 2"):
        segment_image(np.zeros((8, 8, 3), dtype=np.uint8), n_segments=1)
