"""How many intra-op threads torch uses beside the loader workers, so the cores are not oversubscribed.

A DataLoader worker decoding images is a busy process; with torch's default (one thread per core) beside it,
OpenMP threads spin waiting for a core the worker holds, and CPU time grows with nothing done. During pass 1
(and, through ``dissect()``, the whole run) one core is left per worker (never raising torch's own setting).
Pass 2 is thousands of small, memory-bound operations (a few milliseconds each), where every OpenMP fork/join
costs about as much as the work it splits and a descheduled thread stalls the others: it uses a quarter of the
cores (at least one); so does drawing the report's regions (small upsampling products per batch of tiles;
on 2 cores one thread spent ~4x less CPU on them than two). Measured on a shared 2-core machine (AlexNet
conv5 maps, pass 2 alone): one thread took 5x less CPU *and* 5x less wall time than two. An explicit
``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is the user's choice and is never overridden. Results do not
depend on the thread count (every count is an integer).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

USER_THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_beside(workers: int, cores: int) -> int | None:
    """Intra-op threads to use next to ``workers`` busy processes on ``cores`` (None: the user chose)."""
    if any(os.environ.get(name) for name in USER_THREAD_VARIABLES):
        return None
    return max(1, min(torch.get_num_threads(), cores - workers))


def threads_per_lane(lanes: int, cores: int) -> int | None:
    """Intra-op threads of each of ``lanes`` threads that run the network at once (None: the user chose)."""
    if any(os.environ.get(name) for name in USER_THREAD_VARIABLES):
        return None
    return max(1, min(torch.get_num_threads(), cores // max(1, lanes)))


def threads_for_small_ops(cores: int) -> int | None:
    """Intra-op threads for small operations: pass 2, the report's regions (None: the user chose)."""
    if any(os.environ.get(name) for name in USER_THREAD_VARIABLES):
        return None
    return max(1, min(torch.get_num_threads(), cores // 4))


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block and restored after (None: unchanged)."""
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
