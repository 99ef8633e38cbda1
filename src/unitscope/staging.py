"""Output directories that are never half-written: work in ``OUT.partial``, then swap it into place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def staging_path(out: Path) -> Path:
    """Where the work for ``out`` happens until it is complete."""
    return out.with_name(out.name + ".partial")


def publish(stage: Path, out: Path) -> Path:
    """Move a complete ``stage`` to ``out``; an existing ``out`` is replaced only after the new one is in place."""
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old)
    else:
        os.replace(stage, out)
    return out
