"""TopQuantile against numpy's quantile: exact, for any batching and merge order."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from unitscope.errors import UsageError
from unitscope.stats import StatsError, TopQuantile

QUANTILES = (0.0, 0.005, 0.01, 0.05, 0.2, 0.37, 0.5, 0.9, 1.0)


def random_values(seed: int, units: int, n: int, ties: bool) -> np.ndarray:
    """float32 activations: many exact ties (small integers, ReLU zeros) or continuous values."""
    rng = np.random.default_rng(seed)
    if ties:
        values = rng.integers(-3, 6, size=(units, n)).astype(np.float32)
        return np.maximum(values, 0)
    return rng.standard_normal((units, n)).astype(np.float32)


def feed(stat: TopQuantile, values: np.ndarray, sizes: list[int]) -> None:
    """Feed the columns of ``values`` in consecutive batches of the given sizes."""
    start = 0
    for size in sizes:
        stat.update(torch.from_numpy(values[:, start : start + size]))
        start += size
    if start != values.shape[1]:
        raise RuntimeError("test batches do not cover the values")


def random_sizes(seed: int, n: int) -> list[int]:
    """Random batch sizes (some empty) summing to n."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(int(rng.integers(0, 97)), n - sum(sizes)))
    return sizes


def test_hand_computed_threshold() -> None:
    # 1..10 at level 0.75: virtual rank 9 * 0.75 = 6.75 -> 7 + 0.75 * (8 - 7) = 7.75.
    stat = TopQuantile(1, 0.25, 10)
    stat.update(torch.arange(1.0, 11.0).reshape(1, 10))
    assert stat.thresholds().tolist() == [7.75]
    assert stat.thresholds().dtype == torch.float64


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("q", QUANTILES)
def test_threshold_equals_numpy_quantile(q: float, ties: bool) -> None:
    n = 1237
    values = random_values(seed=int(q * 1000) + ties, units=4, n=n, ties=ties)
    stat = TopQuantile(4, q, n)
    feed(stat, values, random_sizes(seed=7, n=n))
    expected = np.quantile(values.astype(np.float64), 1 - q, axis=1)
    np.testing.assert_array_equal(stat.thresholds().numpy(), expected)


def test_keeps_only_ceil_qn_plus_two_values() -> None:
    n, q = 2000, 0.005
    stat = TopQuantile(3, q, n)
    feed(stat, random_values(1, 3, n, ties=False), [n])
    assert stat.state_dict()["values"].shape == (3, math.ceil(q * n) + 2)


def test_batch_size_does_not_change_state() -> None:
    n = 301
    values = random_values(3, 5, n, ties=True)
    states = []
    for size in (1, 3, n):
        stat = TopQuantile(5, 0.05, n)
        feed(stat, values, [size] * (n // size) + ([n % size] if n % size else []))
        states.append(stat.state_dict())
    for state in states[1:]:
        assert torch.equal(state["values"], states[0]["values"])
        assert state["count"] == states[0]["count"] == n


def test_merged_halves_equal_whole_in_either_order() -> None:
    n, q = 640, 0.02
    values = random_values(4, 3, n, ties=True)
    whole = TopQuantile(3, q, n)
    feed(whole, values, [n])
    first, second = TopQuantile(3, q, n), TopQuantile(3, q, n)
    feed(first, values[:, :250], random_sizes(5, 250))
    feed(second, values[:, 250:], random_sizes(6, n - 250))
    reverse = TopQuantile(3, q, n)
    reverse.load_state_dict(second.state_dict())
    reverse.merge(first)
    first.merge(second)
    for merged in (first, reverse):
        assert torch.equal(merged.state_dict()["values"], whole.state_dict()["values"])
        assert torch.equal(merged.thresholds(), whole.thresholds())


def test_state_dict_round_trip_through_torch_save() -> None:
    n = 500
    values = random_values(8, 2, n, ties=False)
    stat = TopQuantile(2, 0.01, n)
    feed(stat, values[:, :200], [200])
    buffer = io.BytesIO()
    torch.save(stat.state_dict(), buffer)
    buffer.seek(0)
    resumed = TopQuantile(2, 0.01, n)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    feed(resumed, values[:, 200:], [300])
    expected = np.quantile(values.astype(np.float64), 0.99, axis=1)
    np.testing.assert_array_equal(resumed.thresholds().numpy(), expected)


def test_mismatched_arguments_are_refused() -> None:
    stat = TopQuantile(2, 0.01, 100)
    with pytest.raises(StatsError, match="quantile"):
        stat.merge(TopQuantile(2, 0.02, 100))
    with pytest.raises(StatsError, match="total_per_unit"):
        stat.load_state_dict(TopQuantile(2, 0.01, 99).state_dict())
    with pytest.raises(StatsError, match="num_units"):
        stat.merge(TopQuantile(3, 0.01, 100))
    with pytest.raises(StatsError, match="dtype"):
        stat.merge(TopQuantile(2, 0.01, 100, dtype=torch.float64))


def test_incomplete_or_overfull_counts_are_refused() -> None:
    stat = TopQuantile(1, 0.1, 10)
    stat.update(torch.zeros(1, 6))
    with pytest.raises(StatsError, match="seen 6 values per unit, expected 10"):
        stat.thresholds()
    with pytest.raises(StatsError, match="total_per_unit"):
        stat.update(torch.zeros(1, 5))
    other = TopQuantile(1, 0.1, 10)
    other.update(torch.zeros(1, 5))
    with pytest.raises(StatsError, match="disjoint"):
        stat.merge(other)


def test_bad_inputs_are_refused() -> None:
    stat = TopQuantile(2, 0.1, 10)
    with pytest.raises(StatsError, match=r"\[2, n\]"):
        stat.update(torch.zeros(3, 4))
    with pytest.raises(StatsError, match="NaN"):
        stat.update(torch.tensor([[float("nan")], [0.0]]))
    with pytest.raises(StatsError, match="quantile"):
        TopQuantile(2, 1.5, 10)
    assert stat.count == 0


def test_memory_limit_raises_value_error_with_usage_message() -> None:
    with pytest.raises(ValueError, match="max_bytes") as info:
        TopQuantile(512, 0.005, 10**9)
    assert isinstance(info.value, UsageError)
    TopQuantile(4, 0.5, 100, max_bytes=4 * 52 * 4)  # exactly at the limit is fine
    with pytest.raises(ValueError, match="max_bytes"):
        TopQuantile(4, 0.5, 100, max_bytes=4 * 52 * 4 - 1)


@pytest.mark.parametrize("q", (0.005, 0.05, 0.5))
def test_fewer_values_than_planned_when_count_is_given(q: float) -> None:
    # Skipped (unreadable) images leave fewer values than total_per_unit; the quantile is then over
    # the values fed, still exact.
    planned, fed = 1000, 873
    values = random_values(9, 3, fed, ties=True)
    stat = TopQuantile(3, q, planned)
    feed(stat, values, random_sizes(10, fed))
    with pytest.raises(StatsError, match="expected 1000"):
        stat.thresholds()
    with pytest.raises(StatsError, match="expected 872"):
        stat.thresholds(count=872)
    expected = np.quantile(values.astype(np.float64), 1 - q, axis=1)
    np.testing.assert_array_equal(stat.thresholds(count=fed).numpy(), expected)


@pytest.mark.parametrize("ties", [True, False])
def test_reducing_a_few_units_at_a_time_keeps_the_same_values(ties: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2000
    values = random_values(seed=3 + ties, units=5, n=n, ties=ties)
    whole = TopQuantile(5, 0.05, n)
    feed(whole, values, random_sizes(seed=1, n=n))
    from unitscope.stats import quantile

    monkeypatch.setattr(quantile, "REDUCE_BYTES", 1)  # one unit per block
    rows: list[int] = []
    topk = torch.Tensor.topk

    def counted(self: torch.Tensor, *args: object, **kwargs: object) -> object:
        rows.append(self.shape[0])
        return topk(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "topk", counted)
    blocked = TopQuantile(5, 0.05, n)
    feed(blocked, values, random_sizes(seed=1, n=n))
    assert len(rows) >= 2 * 5 and set(rows) == {1}  # reduced several times, a unit at a time
    assert torch.equal(blocked.state_dict()["values"], whole.state_dict()["values"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(blocked.thresholds().numpy(), np.quantile(values.astype(np.float64), 0.95, axis=1))
