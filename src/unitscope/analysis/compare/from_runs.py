"""``unitscope compare`` from run folders to written pages: the one path the CLI and ``serve`` share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unitscope.analysis.compare.runs import Comparison
from unitscope.errors import UsageError


def foreground_classes(data: str) -> tuple[str, ...] | None:
    """SceneWorld's objects proper (its background regions are object concepts too); None elsewhere."""
    from unitscope.data import SCENEWORLD_SPECS

    if data not in SCENEWORLD_SPECS:
        return None
    from unitscope.data.sceneworld import OBJECT_CLASSES

    return tuple(OBJECT_CLASSES)


def compare_run_folders(runs: Sequence[Path], out: Path, *, pairs: Sequence[str] = (), force: bool = False,
                        data: str | None = None, max_images: int | None = None, category: str = "object",
                        progress: bool = True) -> Comparison:
    """Load the runs, check they can be compared (probe set, category, layer pairs) before the probe pass,
    compare them and write the pages into ``out`` (staged: complete or absent)."""
    from unitscope.analysis.compare.output import write_comparison
    from unitscope.analysis.compare.pairing import pair_layers
    from unitscope.analysis.compare.probe_reopen import run_statistics
    from unitscope.analysis.compare.runs import check_same_probe, compare_many, display_names, side_keys
    from unitscope.dissection.result import DissectionResult
    from unitscope.staging import staged

    side_keys(len(runs))
    results = tuple(DissectionResult.load(run) for run in runs)
    names = display_names(*results)
    check_same_probe(*results, force=force, names=names)
    known = tuple(results[0].concepts.categories)
    if category not in known:
        raise UsageError(f"--category {category!r} is not a category of {runs[0]}; choose one of {', '.join(known)}")
    pair_layers(results, names, tuple(pairs))  # a wrong --pair or unknown depth: before the probe pass
    stats, source = run_statistics(results[0], data, category, max_images, progress=progress)
    foreground = foreground_classes(data or results[0].record.spec.data.data)
    comparison = compare_many(results, stats, force, category, foreground, tuple(pairs))
    comparison.notes.insert(0, f"Probe statistics from {source}.")
    with staged(out) as stage:
        write_comparison(comparison, stage)
    return comparison
