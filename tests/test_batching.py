"""The one batching helper: ranges cover every index once, in order, and a bad size is one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.batching import batch_count, batch_ranges, batched
from unitscope.errors import UsageError


@pytest.mark.parametrize(("total", "size", "start"), [(0, 4, 0), (1, 4, 0), (8, 4, 0), (9, 4, 0), (9, 4, 5), (3, 1, 1)])
def test_ranges_cover_each_index_once_in_order(total: int, size: int, start: int) -> None:
    parts = list(batch_ranges(total, size, start))
    assert [i for part in parts for i in part] == list(range(start, total))
    assert all(len(part) == size for part in parts[:-1]) and all(0 < len(part) <= size for part in parts)
    assert len(parts) == (batch_count(total - start, size) if total > start else 0)


def test_batched_keeps_the_container_type() -> None:
    array = np.arange(10)
    pieces = list(batched(array, 4))
    assert [p.tolist() for p in pieces] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(isinstance(p, np.ndarray) for p in pieces)
    assert list(batched(["a", "b", "c"], 2)) == [["a", "b"], ["c"]]


@pytest.mark.parametrize("size", [0, -3])
def test_a_bad_batch_size_is_a_usage_error(size: int) -> None:
    with pytest.raises(UsageError, match="batch size must be positive"):
        list(batch_ranges(5, size))
    with pytest.raises(UsageError, match="batch size must be positive"):
        batch_count(5, size)
