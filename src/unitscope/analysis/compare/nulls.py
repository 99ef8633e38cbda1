"""Each run's detectors beside its nulls: its random twin's and those that survive the colour control.

- The random twin (the same architecture re-initialised, dissected on the same probe set with the same
  rules): ``dissect --baseline random`` records its detector counts per layer and category, and the
  bootstrap interval of its total, in the run's record (``RunRecord.baseline``). A run without them says so.
- The colour control: a ``survives_control`` column of ``units.csv`` (True where a detector's label holds on
  the recoloured twin of the probe set) counts the detectors that are not colour filters. Optional.

The verdict uses the paired difference where the run's record has it (``dissect --baseline random`` records,
per layer and category, the run's detectors minus the twin's and the 95 % interval of that difference over
the same bootstrap resamples of the probe images): the trained network *beats* its twin only where the
interval lies wholly above 0. Runs recorded before that keep only each total's own interval, so their
verdict compares intervals, and says so: *beats* only where the total's 95 % interval lies wholly above the
twin's; per category (no intervals) a count at or below the twin's *does not beat* it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from unitscope.dissection.colour_control import CONTROLLED
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run_files import corrupt

NOT_MEASURED_RANDOM = "not measured: dissect with --baseline random"
NOT_MEASURED_CONTROL = "not measured: dissect with --control recolored"
NOT_TESTED_CONTROL = f"not tested: the colour control re-measures {' and '.join(CONTROLLED)} detectors only"
CONTROL_COLUMN = "survives_control"


@dataclass(frozen=True)
class RandomCounts:
    """The random twin's detectors and unique concepts per category (and ``total``) at one layer."""

    detectors: dict[str, int]
    unique: dict[str, int]
    interval: tuple[float, float] | None  # the total's 95 % bootstrap interval, when recorded
    seed: int | None
    survive: dict[str, int] | None = None  # the twin's detectors surviving the colour control (object, part, total)
    # per category (and total): (run's detectors − twin's, 2.5th, 97.5th percentile over paired resamples)
    difference: dict[str, tuple[float, float, float]] | None = None


def _count(value: Any, where: str, path: Path | str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise corrupt(path, f"the random baseline's {where} is {value!r}, expected a count")
    return int(value)


def random_counts(run: DissectionResult, layer: str) -> RandomCounts | None:
    """The counts ``dissect --baseline random`` recorded for ``layer``; None when the run has none.

    The record is untrusted input: a malformed entry is one error naming ``summary.json``.
    """
    recorded = run.record.baseline
    path = (run.run_dir / "summary.json") if run.run_dir is not None else "summary.json"
    if recorded is None:
        return None
    layers = recorded.get("layers") if isinstance(recorded, dict) else None
    if not isinstance(layers, dict):
        raise corrupt(path, "its random baseline has no layers")
    entry = layers.get(layer)
    if entry is None:
        return None
    table = entry.get("table") if isinstance(entry, dict) else None
    if not isinstance(table, list) or not all(isinstance(row, dict) for row in table):
        raise corrupt(path, f"the random baseline of layer {layer} has no table of counts")
    detectors, unique = {}, {}
    for row in table:
        category = row.get("category")
        if not isinstance(category, str):
            raise corrupt(path, f"a row of layer {layer}'s random baseline has no category")
        detectors[category] = _count(row.get("detectors"), f"{layer} {category} detectors", path)
        unique[category] = _count(row.get("unique"), f"{layer} {category} unique concepts", path)
    intervals = entry.get("intervals")
    ci = intervals.get("detectors_ci") if isinstance(intervals, dict) else None
    interval = None
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                      for v in ci):
        interval = (float(ci[0]), float(ci[1]))
    seed = recorded.get("seed")
    return RandomCounts(detectors, unique, interval, seed if isinstance(seed, int) else None,
                        control_counts(recorded.get("control"), layer, path),
                        difference_counts(entry.get("difference"), layer, path))


def difference_counts(recorded: Any, layer: str, path: Path | str) -> dict[str, tuple[float, float, float]] | None:
    """The recorded paired differences of one layer (category -> (difference, low, high)); None for runs
    recorded without them."""
    if recorded is None:
        return None
    if not isinstance(recorded, dict):
        raise corrupt(path, f"the random baseline's difference of layer {layer} is not a table")
    out = {}
    for category, value in recorded.items():
        if not (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise corrupt(path, f"the random baseline's {layer} {category} difference is {value!r}, "
                                "expected [difference, low, high]")
        out[str(category)] = (float(value[0]), float(value[1]), float(value[2]))
    return out


def difference_cell(random: RandomCounts | None, category: str) -> str:
    """The paired difference for a table cell ("+12 [5–19]"); "" where not recorded."""
    value = random.difference.get(category) if random is not None and random.difference else None
    return f"{value[0]:+.0f} [{value[1]:+.0f}–{value[2]:+.0f}]" if value else ""


def control_counts(recorded: Any, layer: str, path: Path | str) -> dict[str, int] | None:
    """Detectors surviving the colour control per tested category and in all (``total``), as
    ``dissect --control recolored`` records them (``RunRecord.control``, or the random baseline's); None
    when not recorded for ``layer``."""
    layers = recorded.get("layers") if isinstance(recorded, dict) else None
    entry = layers.get(layer) if isinstance(layers, dict) else None
    if not isinstance(entry, dict):
        return None
    counts = {"total": _count(entry.get("survive_control"), f"{layer} survivors of the colour control", path)}
    categories = entry.get("categories")
    for category, row in (categories.items() if isinstance(categories, dict) else ()):
        value = row.get("survive_control") if isinstance(row, dict) else None
        counts[str(category)] = _count(value, f"{layer} {category} survivors of the colour control", path)
    return counts


def control_cell(counts: dict[str, int] | None, category: str) -> int | str:
    """A count of survivors for a table cell, or the words saying why there is none."""
    if counts is None:
        return NOT_MEASURED_CONTROL
    if category not in counts:
        return NOT_TESTED_CONTROL
    return counts[category]


def surviving_detectors(units: pd.DataFrame, category: str) -> int | str:
    """Detectors of ``category`` (``total``: all) whose label survives the colour control; words when the table
    has no ``survives_control`` column, or for a category the control does not test."""
    if CONTROL_COLUMN not in units:
        return NOT_MEASURED_CONTROL
    if category not in (*CONTROLLED, "total"):
        return NOT_TESTED_CONTROL
    survives = units[CONTROL_COLUMN].astype(str).str.strip().str.lower().isin(("true", "1"))
    chosen = units["detector"].astype(bool) & survives
    if category != "total":
        chosen &= units["category"] == category
    return int(chosen.sum())


def versus_random(detectors: int, interval: list[float] | None, random: RandomCounts | None, category: str) -> str:
    """Whether a run's detector count beats its random twin's, in words (see the module docstring)."""
    if random is None:
        return NOT_MEASURED_RANDOM
    theirs = random.detectors.get(category, 0)
    paired = random.difference.get(category) if random.difference else None
    if paired is not None:
        d, low, high = paired
        numbers = (f"{detectors} against {theirs}, difference {d:+.0f} [95% CI {low:+.0f}–{high:+.0f}] "
                   "over the same image resamples")
        if low > 0:
            return f"beats its random twin: {numbers}"
        if d <= 0:
            return f"does not beat its random twin: {numbers}"
        return f"does not clearly beat its random twin: {numbers}"
    old = " (recorded without a paired difference: intervals compared)"
    if category == "total" and isinstance(interval, list) and random.interval is not None:
        low, high = random.interval
        if interval[0] > high:
            return (f"beats its random twin: {detectors} [{interval[0]:.0f}–{interval[1]:.0f}] against {theirs} "
                    f"[{low:.0f}–{high:.0f}], 95% intervals apart{old}")
        if detectors <= theirs:
            return f"does not beat its random twin: {detectors} against {theirs}"
        return (f"does not clearly beat its random twin: {detectors} [{interval[0]:.0f}–{interval[1]:.0f}] "
                f"against {theirs} [{low:.0f}–{high:.0f}], 95% intervals overlap{old}")
    if detectors <= theirs:
        return f"does not beat its random twin: {detectors} against {theirs}"
    return f"more than its random twin: {detectors} against {theirs} (no interval per category)"
