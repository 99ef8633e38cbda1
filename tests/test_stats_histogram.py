"""ActivationHistogram: bins read off float32 bits, exact under batching, merging and resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitscope.stats import StatsError
from unitscope.stats import histogram as hist
from unitscope.stats.histogram import LEVELS, NUM_BINS, ActivationHistogram, bin_edges, bin_keys

VALUES = torch.randn(6, 3, 20, generator=torch.Generator().manual_seed(0)) * 4.0
VALUES[0, 0, :4] = torch.tensor([0.0, -0.0, 1e-9, -1e-9])  # all in the bin around zero


def by_hand(values: torch.Tensor) -> torch.Tensor:
    """Per-unit counts through np.searchsorted on the edges (negative bins are (-b, -a], positive [a, b))."""
    edges = bin_edges()
    out = torch.zeros(values.shape[1], NUM_BINS, dtype=torch.int64)
    for unit in range(values.shape[1]):
        x = values[:, unit].reshape(-1).double().numpy()
        keys = np.where(x >= 0, np.searchsorted(edges, x, side="right"), np.searchsorted(edges, x, side="left")) - 1
        keys[np.abs(x) < 2.0 ** -hist.OCTAVES] = LEVELS
        out[unit] = torch.from_numpy(np.bincount(keys, minlength=NUM_BINS))
    return out


def test_bins_by_hand() -> None:
    keys = bin_keys(torch.tensor([0.0, 1.0, 1.0625, -1.0, 2.0 ** 30, -(2.0 ** 30)])).tolist()
    edges = bin_edges()
    assert keys[0] == LEVELS and edges[LEVELS] < 0 < edges[LEVELS + 1]
    assert edges[keys[1]] == 1.0 and edges[keys[1] + 1] == 1.0625 and keys[2] == keys[1] + 1  # 16 bins per octave
    assert edges[keys[3] + 1] == -1.0  # (-1.0625, -1.0]
    assert keys[4] == NUM_BINS - 1 and keys[5] == 0  # overflow bins
    assert np.all(np.diff(edges) > 0) and len(edges) == NUM_BINS + 1


def test_counts_match_the_edges_and_every_value_is_counted() -> None:
    stat = ActivationHistogram(3)
    stat.update(VALUES)
    assert torch.equal(stat.counts, by_hand(VALUES))
    assert stat.counts.sum(dim=1).tolist() == [6 * 20] * 3


@pytest.mark.parametrize("batch", [1, 4])
def test_batching_merging_and_resuming_give_one_pass(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = ActivationHistogram(3)
    whole.update(VALUES)
    monkeypatch.setattr(hist, "_INT32_ROOM", 50)  # fold the int32 counts often
    batched, first, second = ActivationHistogram(3), ActivationHistogram(3), ActivationHistogram(3)
    for start in range(0, 6, batch):
        batched.update(VALUES[start: start + batch])
    first.update(VALUES[:2])
    second.update(VALUES[2:])
    first.merge(second)
    resumed = ActivationHistogram(3)
    resumed.load_state_dict(batched.state_dict())
    resumed.update(VALUES[:1])
    for got in (batched.counts, first.counts):
        assert torch.equal(got, whole.counts)
    assert torch.equal(resumed.counts - by_hand(VALUES[:1]), whole.counts)


def test_mismatches_are_refused() -> None:
    stat = ActivationHistogram(3)
    with pytest.raises(StatsError, match="num_units"):
        stat.merge(ActivationHistogram(2))
    with pytest.raises(StatsError, match=r"values \[B, 3"):
        stat.update(VALUES[:, :2])
    with pytest.raises(StatsError, match="floating point"):
        stat.update(torch.zeros(2, 3, 4, dtype=torch.int64))
    with pytest.raises(StatsError, match="lacks"):
        stat.load_state_dict({"num_units": 3})
    assert int(stat.counts.sum()) == 0
