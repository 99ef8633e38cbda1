"""Finding the probe statistics of a run: reopen its probe set, or read what the run stored."""

from __future__ import annotations

import pandas as pd

from unitscope.analysis.compare.label_stats import probe_label_stats, run_label_stats
from unitscope.dissection.result import DissectionResult, layer_dirname
from unitscope.errors import UsageError


def run_statistics(
    run: DissectionResult, data: str | None = None, category: str = "object", max_images: int | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, str]:
    """Label statistics for the probe set a run was dissected on, and where they came from.

    The probe named in the run is reopened (``dissection.reopen``: checked against the run's digest), or
    ``data`` in its place.
    When that fails, per-label areas stored in the run (``label_stats.csv``) serve for frequency alone.
    """
    from unitscope.dissection.reopen import reopen_probe

    try:
        probe = reopen_probe(run, data)
    except UsageError:
        if run.run_dir is not None:
            for layer in run.layers:
                stored = run_label_stats(run.run_dir, layer_dirname(layer), run.concepts, category)
                if stored is not None:
                    return stored, f"{run.run_dir / layer_dirname(layer) / 'label_stats.csv'}"
        raise
    if max_images is not None and max_images <= 0:
        raise UsageError(f"--max-images must be positive, got {max_images}")
    stats = probe_label_stats(probe, category, max_images=max_images, progress=progress)
    used = len(probe) if max_images is None else min(max_images, len(probe))
    return stats, f"{probe.name} ({used} images)"
