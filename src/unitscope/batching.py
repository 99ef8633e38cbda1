"""The one batching helper: consecutive index ranges of at most ``batch_size``.

Every loop over images, candidates or positions in batches goes through here, so the last short batch,
an empty input and a bad batch size behave the same everywhere (results never depend on the batch size:
each caller computes item by item inside a batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from unitscope.errors import UsageError

T = TypeVar("T")


def batch_ranges(total: int, batch_size: int, start: int = 0) -> Iterator[range]:
    """``range(start, total)`` cut into consecutive ranges of ``batch_size`` (the last may be shorter)."""
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    for low in range(start, total, batch_size):
        yield range(low, min(low + batch_size, total))


def batch_count(total: int, batch_size: int) -> int:
    """How many batches ``batch_ranges(total, batch_size)`` yields."""
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, got {batch_size}")
    return -(-max(total, 0) // batch_size)


def batched(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    """``items`` cut into consecutive slices of ``batch_size`` (lists stay lists, arrays stay arrays)."""
    for part in batch_ranges(len(items), batch_size):
        yield items[part.start:part.stop]
