"""Wall and CPU seconds of each phase of a dissection, kept in its ``summary.json``.

A run's total seconds cannot say where a slow run spends its time, and a profiler changes what it measures.
The phases (pass 1, the thresholds between the passes, pass 2, the result tables and nulls) are timed from
outside their work: wall on a monotonic clock, CPU as the user + system seconds of the whole process (every
thread: loading lanes, pass 2's lanes) and of the loader worker processes it has waited for. A resumed run
reports the phases of the command that finished it; under torchrun, those of rank 0's process.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and of its finished child processes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class PhaseTimes:
    """Seconds per named phase, in the order first measured; a phase measured twice adds up."""

    def __init__(self) -> None:
        self._seconds: dict[str, dict[str, float]] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Times the block as phase ``name`` (also when it raises)."""
        wall, cpu = time.perf_counter(), process_cpu_seconds()
        try:
            yield
        finally:
            spent = self._seconds.setdefault(name, {"wall": 0.0, "cpu": 0.0})
            spent["wall"] += time.perf_counter() - wall
            spent["cpu"] += process_cpu_seconds() - cpu

    def record(self) -> dict[str, dict[str, float]]:
        """``{phase: {"wall": s, "cpu": s}}`` rounded to 10 ms, as ``summary.json`` keeps it."""
        return {name: {key: round(value, 2) for key, value in spent.items()} for name, spent in self._seconds.items()}


def _seconds(value: object) -> float | None:
    """``value`` as seconds if it is a finite, non-negative number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        return None
    return float(value)


def phase_lines(phases: object) -> list[str]:
    """``["pass 1 17.1 s (CPU 33.0 s)", …]`` for a report: the phases that took at least 0.05 s of wall.

    ``phases`` comes from a ``summary.json`` that may have been edited: entries that are not a name with
    finite, non-negative ``wall`` and ``cpu`` seconds are left out rather than trusted.
    """
    if not isinstance(phases, dict):
        return []
    shown = []
    for name, spent in phases.items():
        if not isinstance(name, str) or not isinstance(spent, dict):
            continue
        wall, cpu = _seconds(spent.get("wall")), _seconds(spent.get("cpu"))
        if wall is not None and cpu is not None and wall >= 0.05:
            shown.append(f"{name[:40]} {wall:.1f} s (CPU {cpu:.1f} s)")
    return shown
