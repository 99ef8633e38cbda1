"""Errors of probe data that a long run may choose to step over.

A missing or corrupt image, or a label map that does not fit, spoils one sample, not the whole probe
set. Raising :class:`BadSampleError` (a :class:`~unitscope.errors.UsageError`, so the CLI still
prints one line and exits 2) lets the dissection engine skip that sample under ``--skip-bad``
while every other bad input stops the run.
"""

from __future__ import annotations

from pathlib import Path

from unitscope.errors import UsageError


class BadSampleError(UsageError):
    """One probe sample cannot be read; ``path`` names the offending file when there is one."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
