"""Bounded work: a thread pool of one or two workers and a fixed number of places in its queue.

A request reserves a place before it reads its upload; when all are taken it is answered 503 with a
Retry-After at once, so work never piles up and memory stays bounded (places × upload limit). A place is
given back when its work finishes, not when the client leaves.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """Every place is taken; try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class PoolCounts:
    """What the pool has done: accepted, refused (503), finished, the most places taken at once."""

    accepted: int = 0
    refused: int = 0
    finished: int = 0
    peak: int = 0
    seconds: float = 0.0


class WorkPool:
    """``workers`` threads and ``workers + waiting`` places."""

    def __init__(self, workers: int = 1, waiting: int = 2) -> None:
        self.workers = workers
        self.places = workers + waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unitscope-serve")
        self._lock = threading.Lock()
        self._taken = 0
        self.counts = PoolCounts()

    def reserve(self) -> Place:
        """A place in the queue, or :class:`Busy`."""
        with self._lock:
            if self._taken >= self.places:
                self.counts.refused += 1
                raise Busy(self.retry_after())
            self._taken += 1
            self.counts.accepted += 1
            self.counts.peak = max(self.counts.peak, self._taken)
        return Place(self)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the mean work time times the queue ahead, per worker."""
        done = self.counts.finished
        mean = self.counts.seconds / done if done else 1.0
        return max(1, min(60, math.ceil(mean * self.places / self.workers)))

    def _release(self, seconds: float | None) -> None:
        with self._lock:
            self._taken -= 1
            if seconds is not None:
                self.counts.finished += 1
                self.counts.seconds += seconds

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        def timed() -> T:
            start = time.perf_counter()
            try:
                return fn()
            finally:
                self._release(time.perf_counter() - start)

        return self._executor.submit(timed)

    def snapshot(self) -> dict[str, float | int]:
        with self._lock:
            return {"workers": self.workers, "places": self.places, "taken": self._taken, **vars(self.counts)}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Place:
    """A reserved place: :meth:`submit` its work once, or :meth:`close` it unused (an early refusal)."""

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._open = True

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        if not self._open:
            raise RuntimeError("this place was used or closed")
        self._open = False
        return self._pool._submit(fn)

    def close(self) -> None:
        """Give the place back if no work was submitted on it (idempotent)."""
        if self._open:
            self._open = False
            self._pool._release(None)
