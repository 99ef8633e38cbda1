"""Worker processes that never outlive the process that started them.

A DataLoader worker whose parent is killed (kill -9, OOM killer) would otherwise keep running until
PyTorch's own watchdog notices, seconds later, or forever if it is busy. On Linux each worker asks the
kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill it the moment its parent dies; elsewhere, and for a
parent that died before the request, it checks the parent's pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from functools import partial

PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int, _worker_id: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def die_with_parent() -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` that ties each worker's life to the current process."""
    return partial(_die_with, os.getpid())
