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


# Each (image, unit) gets its own 2x2 map, so a kept map can be traced to its image.
MAPS = torch.arange(5 * 2 * 4, dtype=torch.float32).view(5, 2, 4)


def fed_maps(k: int, batch: int, order: list[int] | None = None) -> TopImages:
    """A TopImages keeping maps, fed the fixture rows in ``order``, ``batch`` rows at a time."""
    rows = torch.tensor(order if order is not None else range(len(INDICES)))
    stat = TopImages(2, k, map_pixels=4)
    for start in range(0, len(rows), batch):
        pick = rows[start : start + batch]
        stat.update(SCORES[pick], INDICES[pick], PEAKS[pick], MAPS[pick])
    return stat


def expected_maps(stat: TopImages) -> torch.Tensor:
    """The fixture maps of the images ``stat`` ranks first, unit by unit."""
    indices = stat.result()[0]
    return torch.stack([MAPS[indices[u] - 10, u] for u in range(2)])


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_kept_maps_are_those_of_the_kept_images_whatever_the_batching(batch: int) -> None:
    whole = fed_maps(3, 5)
    maps = whole.maps()
    assert maps is not None and maps.shape == (2, 3, 4)
    assert torch.equal(maps, expected_maps(whole))
    assert torch.equal(whole.result()[0], fed(3, 5).result()[0])  # maps change nothing of the ranking
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        assert torch.equal(fed_maps(3, batch, order).maps(), maps)  # type: ignore[arg-type]


def test_maps_merge_and_resume_like_one_pass() -> None:
    whole = fed_maps(3, 5).maps()
    first, second = fed_maps(3, 1, [2, 3, 4]), fed_maps(3, 2, [0, 1])
    first.merge(second)
    assert torch.equal(first.maps(), whole)  # type: ignore[arg-type]
    buffer = io.BytesIO()
    torch.save(fed_maps(3, 2, [0, 1]).state_dict(), buffer)
    buffer.seek(0)
    resumed = TopImages(2, 3, map_pixels=4)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.update(SCORES[2:], INDICES[2:], PEAKS[2:], MAPS[2:])
    assert torch.equal(resumed.maps(), whole)  # type: ignore[arg-type]


def test_maps_are_required_exactly_when_kept() -> None:
    keeping = TopImages(2, 3, map_pixels=4)
    with pytest.raises(StatsError, match="float maps"):
        keeping.update(SCORES, INDICES, PEAKS)
    with pytest.raises(StatsError, match="float maps"):
        keeping.update(SCORES, INDICES, PEAKS, MAPS[:, :, :3])
    with pytest.raises(StatsError, match="without map_pixels"):
        TopImages(2, 3).update(SCORES, INDICES, PEAKS, MAPS)
    with pytest.raises(StatsError, match="map_pixels"):
        keeping.merge(fed(3, 5))
    with pytest.raises(StatsError, match="map_pixels"):
        keeping.load_state_dict(fed(3, 5).state_dict())  # a state without maps cannot fill them
    assert keeping.count == 0 and TopImages(2, 3).maps() is None
