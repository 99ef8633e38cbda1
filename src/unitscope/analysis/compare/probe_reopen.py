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

    The probe named in the run (``summary.json``: data, n, seed, size) is reopened, or ``data`` instead.
    When that fails, per-label areas stored in the run (``label_stats.csv``) serve for frequency alone.
    """
    from unitscope.data import open_probe

    spec = run.record.spec.data
    name = data or spec.data
    try:
        probe = open_probe(name, n=spec.n, seed=spec.seed, size=spec.size)
    except UsageError as err:
        if run.run_dir is not None:
            for layer in run.layers:
                stored = run_label_stats(run.run_dir, layer_dirname(layer), run.concepts, category)
                if stored is not None:
                    return stored, f"{run.run_dir / layer_dirname(layer) / 'label_stats.csv'}"
        raise UsageError(f"cannot reopen the probe set {name!r} of run {run.run_dir} ({err}); "
                         "pass --data with its location") from err
    if max_images is not None and max_images <= 0:
        raise UsageError(f"--max-images must be positive, got {max_images}")
    stats = probe_label_stats(probe, category, max_images=max_images, progress=progress)
    used = len(probe) if max_images is None else min(max_images, len(probe))
    return stats, f"{probe.name} ({used} images)"
