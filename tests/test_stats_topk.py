"""TopImages: ranking, tie breaking, batching and merging."""

from __future__ import annotations

import io

import pytest
import torch

from unitscope.stats import StatsError, TopImages

# 5 images x 2 units. Unit 0 has a three-way tie at 3.0 (images 4, 1, 2); unit 1 ties at 0.0.
SCORES = torch.tensor([[1.0, 0.0], [3.0, 5.0], [3.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
INDICES = torch.tensor([10, 11, 12, 13, 14])
PEAKS = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])


def fed(k: int, batch: int, order: list[int] | None = None) -> TopImages:
    """A TopImages fed the fixture rows in ``order`` (default as listed), ``batch`` rows at a time."""
    rows = torch.tensor(order if order is not None else range(len(INDICES)))
    stat = TopImages(2, k)
    for start in range(0, len(rows), batch):
        pick = rows[start : start + batch]
        stat.update(SCORES[pick], INDICES[pick], PEAKS[pick])
    return stat


def test_hand_ranked_with_ties_to_lower_image_index() -> None:
    indices, scores, peaks = fed(k=3, batch=5).result()
    assert indices.tolist() == [[11, 12, 14], [11, 10, 12]]
    assert scores.tolist() == [[3.0, 3.0, 3.0], [5.0, 0.0, 0.0]]
    assert peaks.tolist() == [[2, 4, 8], [3, 1, 5]]


def test_result_width_is_images_seen_when_fewer_than_k() -> None:
    stat = TopImages(2, 4)
    stat.update(SCORES[:2], INDICES[:2], PEAKS[:2])
    indices, scores, peaks = stat.result()
    assert indices.shape == scores.shape == peaks.shape == (2, 2)
    assert indices.tolist() == [[11, 10], [11, 10]]


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_batch_size_and_arrival_order_do_not_matter(batch: int) -> None:
    reference = fed(k=3, batch=5).state_dict()
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        state = fed(k=3, batch=batch, order=order).state_dict()
        for key in ("scores", "indices", "peaks"):
            assert torch.equal(state[key], reference[key]), key
        assert state["count"] == 5


def test_merged_halves_equal_whole_in_either_order() -> None:
    whole = fed(k=3, batch=5).state_dict()
    for first_rows, second_rows in (([0, 1], [2, 3, 4]), ([2, 3, 4], [0, 1])):
        first, second = fed(3, 1, first_rows), fed(3, 1, second_rows)
        first.merge(second)
        merged = first.state_dict()
        for key in ("scores", "indices", "peaks"):
            assert torch.equal(merged[key], whole[key]), key
        assert merged["count"] == 5


def test_state_dict_round_trip_through_torch_save() -> None:
    partial = fed(3, 2, [0, 1])
    buffer = io.BytesIO()
    torch.save(partial.state_dict(), buffer)
    buffer.seek(0)
    resumed = TopImages(2, 3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.update(SCORES[2:], INDICES[2:], PEAKS[2:])
    for got, want in zip(resumed.result(), fed(3, 5).result(), strict=True):
        assert torch.equal(got, want)


def test_mismatches_and_bad_batches_are_refused() -> None:
    stat = TopImages(2, 3)
    with pytest.raises(StatsError, match="k"):
        stat.merge(TopImages(2, 4))
    with pytest.raises(StatsError, match="num_units"):
        stat.load_state_dict(TopImages(3, 3).state_dict())
    with pytest.raises(StatsError, match=r"scores \[B, 2\]"):
        stat.update(SCORES.T, INDICES[:2], PEAKS.T)
    with pytest.raises(StatsError, match="same image index twice"):
        stat.update(SCORES[:2], torch.tensor([7, 7]), PEAKS[:2])
    with pytest.raises(StatsError, match="merge two TopImages"):
        stat.merge(object())  # type: ignore[arg-type]
    assert stat.count == 0


def test_merging_into_itself_is_refused() -> None:
    stat = fed(3, 5)
    with pytest.raises(StatsError, match="into itself"):
        stat.merge(stat)
    assert stat.count == 5
