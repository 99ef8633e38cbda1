"""``compare`` between two of the served runs, computed on request into the server's own temporary folder.

Each pair is computed once (concurrent requests for it share one computation) and its pages are served
through their own allow-list. A pair that cannot be compared keeps its one-line reason.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from unitscope.errors import UsageError
from unitscope.serve.files import FileList, list_files
from unitscope.serve.pool import WorkPool


@dataclass(frozen=True)
class Compared:
    """A finished comparison's pages, or why there is none."""

    files: FileList | None
    refusal: str | None = None


class CompareCache:
    """Comparisons keyed by the ordered pair of run names."""

    def __init__(self, runs: dict[str, Path], pool: WorkPool) -> None:
        self.runs = runs
        self.pool = pool
        self.folder = Path(tempfile.mkdtemp(prefix="unitscope-serve-compare-"))
        self._done: dict[tuple[str, str], Compared] = {}
        self._pending: dict[tuple[str, str], Future[Compared]] = {}
        self._lock = threading.Lock()

    def get(self, pair: tuple[str, str]) -> Compared | None:
        with self._lock:
            return self._done.get(pair)

    async def compute(self, pair: tuple[str, str]) -> Compared:
        """The pair's comparison, computed in the pool when not cached (``Busy`` when the pool is full)."""
        with self._lock:
            if pair in self._done:
                return self._done[pair]
            future = self._pending.get(pair)
            if future is None:
                place = self.pool.reserve()
                future = place.submit(lambda: self._compare(pair))
                self._pending[pair] = future
        return await asyncio.wrap_future(future)

    def _compare(self, pair: tuple[str, str]) -> Compared:
        out = Path(tempfile.mkdtemp(prefix=f"{pair[0]}--{pair[1]}-", dir=self.folder)) / "compare"
        try:
            try:
                write_comparison_pages(self.runs[pair[0]], self.runs[pair[1]], out)
                found = Compared(list_files(out))
            except UsageError as err:
                found = Compared(None, str(err))
            with self._lock:
                self._done[pair] = found
            return found
        finally:  # a failure that is not the user's (a bug, a full disk) is not cached: the next request retries
            with self._lock:
                self._pending.pop(pair, None)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_comparison_pages(a: Path, b: Path, out: Path) -> None:
    """What ``unitscope compare A B --out OUT`` writes (object category, the runs' own probe set)."""
    from unitscope.analysis.compare.from_runs import compare_run_folders

    compare_run_folders((a, b), out, progress=False)
