"""Dissections side by side: detectors per layer and category, objects detected, and what predicts them.

Two or more runs, one column each; networks of different widths read side by side as shares (detectors /
units in the layer) beside the raw counts, and layers of different architectures are paired by relative
depth (:mod:`unitscope.analysis.compare.pairing`).

The paper's claims, as numbers: a scene network has more object detectors (and more unique objects)
than an object network of the same architecture; and the number of units detecting an object follows
how frequent the object is in the probe set and how discriminative it is for scenes. For each run and
layer, Spearman's ρ (scipy) between units per object class and each of ``pixel_share``,
``image_frequency`` and ``scene_mi_bits`` (see :mod:`unitscope.analysis.compare.label_stats`), over every object
class that occurs in the probe set, undetected ones (0 units) included.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from unitscope.analysis.compare.nulls import (
    NOT_MEASURED_RANDOM,
    control_cell,
    difference_cell,
    random_counts,
    surviving_detectors,
    versus_random,
)
from unitscope.analysis.compare.pairing import LayerGroup, pair_layers
from unitscope.dissection.confidence import interval_text
from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError

MEASURES: tuple[str, ...] = ("pixel_share", "image_frequency", "scene_mi_bits")
SIDES: tuple[str, ...] = ("a", "b")  # the column suffixes of two runs; N runs: side_keys(N)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def side_keys(n: int) -> tuple[str, ...]:
    """Column suffixes of ``n`` runs: ``a``, ``b``, ``c`` … (one letter per run, in the order given)."""
    if not 2 <= n <= len(LETTERS):
        raise UsageError(f"compare takes 2 to {len(LETTERS)} runs, got {n}")
    return tuple(LETTERS[:n])


LayerPair = LayerGroup  # the two-run name of a layer group


@dataclass
class Comparison:
    """Tables of a comparison: ``categories``, ``objects``, ``correlations``; ``notes`` explain caveats.

    Each run's columns carry its letter (``detectors_a``, ``detectors_b``, ``detectors_c`` …: ``sides``)."""

    names: tuple[str, ...]
    runs: tuple[DissectionResult, ...]
    pairs: list[LayerGroup]
    categories: pd.DataFrame
    objects: pd.DataFrame
    correlations: pd.DataFrame
    category: str = "object"
    notes: list[str] = field(default_factory=list)
    foreground: set[str] | None = None
    verdicts: list[str] = field(default_factory=list)  # each run against its random twin, in words
    pairing: str = ""  # how the layers were paired, in one sentence

    @property
    def sides(self) -> tuple[str, ...]:
        return side_keys(len(self.runs))


RULES: tuple[str, ...] = ("quantile", "iou_threshold", "upsample")


def probe_identity(run: DissectionResult) -> dict[str, object]:
    """What makes two runs' numbers comparable: the probe set and the rules that decide detectors."""
    return {"data": run.record.spec.data, "settings": {k: run.record.settings.get(k) for k in RULES}}


def check_same_probe(*runs: DissectionResult, force: bool = False, names: Sequence[str] = ()) -> list[str]:
    """Refuse runs on different probe sets or rules than the first run's unless ``force``; then notes saying so."""
    notes = []
    first = probe_identity(runs[0])
    for k, run in enumerate(runs[1:], start=1):
        other = probe_identity(run)
        differ = [key for key in first if first[key] != other[key]]
        if not differ:
            continue
        what = " and ".join("probe sets" if key == "data" else "dissection settings" for key in differ)
        who = f"{names[0]} and {names[k]}" if len(names) == len(runs) else "the runs"
        if not force:
            raise UsageError(f"{who} used different {what} ({first[differ[0]]} vs {other[differ[0]]}); "
                             "dissect them on the same probe set, or pass --force")
        notes.append(f"{who[0].upper()}{who[1:]} used different {what}; counts are not strictly comparable "
                     "(compared with --force).")
    return notes


def display_names(*runs: DissectionResult) -> tuple[str, ...]:
    """Model names, or run directory names when models share a name, or letters (A, B …) when those do too."""
    names = tuple(run.record.model or LETTERS[k].upper() for k, run in enumerate(runs))
    if len(set(names)) < len(names):
        names = tuple(run.run_dir.name if run.run_dir else LETTERS[k].upper() for k, run in enumerate(runs))
    return names if len(set(names)) == len(names) else tuple(LETTERS[k].upper() for k in range(len(runs)))


def detector_counts(run: DissectionResult, layer: str, category: str) -> pd.Series:
    """Units of ``layer`` detecting each concept of ``category`` (label name → count)."""
    units = run.layers[layer].units
    chosen = units[units["detector"].astype(bool) & (units["category"] == category)]
    return chosen["label"].astype(str).value_counts()


def category_table(runs: Sequence[DissectionResult], pairs: list[LayerGroup]) -> pd.DataFrame:
    """Per layer group and category: each run's layer (``layer_*``) and relative depth (``depth_*``, when
    paired by it), units, detector units, their share of the layer's units (``share_*``) and unique concepts,
    plus totals; beside them each run's random twin (``random_*``; "not measured: …" for a run dissected
    without one), the detectors that survive the colour control (``survive_control_*``, when units.csv says;
    the twin's in ``random_survive_control_*``, when its record says), the paired difference from the twin
    with its 95 % interval (``random_difference_*``, "" for runs recorded without it) and the verdict
    against the random twin in words (``vs_random_*``; :mod:`unitscope.analysis.compare.nulls`)."""
    sides = side_keys(len(runs))
    categories = list(dict.fromkeys(c for run in runs for c in run.concepts.categories))
    rows = []
    for pair in pairs:
        twins = [random_counts(run, layer) for run, layer in zip(runs, pair.layers, strict=True)]
        depths = pair.depths or (None,) * len(runs)
        for category in [*categories, "total"]:
            row: dict[str, object] = {"layer": pair.label, "category": category}
            for side, layer, depth in zip(sides, pair.layers, depths, strict=True):
                row[f"layer_{side}"] = layer
                row[f"depth_{side}"] = round(depth, 4) if depth is not None else ""
            for side, run, layer, twin in zip(sides, runs, pair.layers, twins, strict=True):
                units = run.layers[layer].units
                detectors = units[units["detector"].astype(bool)]
                if category != "total":
                    detectors = detectors[detectors["category"] == category]
                size = int(run.layers[layer].shape[0])
                row[f"units_{side}"] = size
                row[f"detectors_{side}"] = len(detectors)
                row[f"share_{side}"] = round(len(detectors) / size, 6) if size else 0.0
                row[f"unique_{side}"] = int(detectors["label"].nunique())
                # Detectors are IoU AND significant (issue 12); NetDissect's IoU-only count and the
                # bootstrap interval of the total ride along ("" / equal counts for runs without them).
                iou_only = units["iou_detector"].astype(bool) if "iou_detector" in units else units["detector"]
                in_category = iou_only if category == "total" else iou_only & (units["category"] == category)
                row[f"iou_detectors_{side}"] = int(in_category.sum())
                ci = run.layers[layer].intervals.get("detectors_ci") if category == "total" else None
                row[f"detectors_ci_{side}"] = interval_text(ci)
                row[f"random_detectors_{side}"] = twin.detectors.get(category, 0) if twin else NOT_MEASURED_RANDOM
                row[f"random_unique_{side}"] = twin.unique.get(category, 0) if twin else NOT_MEASURED_RANDOM
                twin_ci = twin.interval if twin is not None and category == "total" else None
                row[f"random_detectors_ci_{side}"] = interval_text(twin_ci)
                row[f"random_difference_{side}"] = difference_cell(twin, category)
                row[f"survive_control_{side}"] = surviving_detectors(units, category)
                row[f"random_survive_control_{side}"] = control_cell(twin.survive, category) if twin \
                    else NOT_MEASURED_RANDOM
                row[f"vs_random_{side}"] = versus_random(len(detectors), ci if isinstance(ci, list) else None,
                                                         twin, category)
            rows.append(row)
    return pd.DataFrame(rows)


def verdict_sentences(categories: pd.DataFrame, names: Sequence[str], category: str) -> list[str]:
    """Per layer, each run's ``category`` detectors and all its detectors against its random twin, in words."""
    sentences = []
    for row in categories[categories["category"].isin([category, "total"])].itertuples():
        what = "all detectors" if row.category == "total" else f"{row.category} detectors"
        for side, name in zip(side_keys(len(names)), names, strict=True):
            sentences.append(f"{row.layer}, {what}: {name} {getattr(row, f'vs_random_{side}')}")
    return sentences


def object_table(runs: Sequence[DissectionResult], pairs: list[LayerGroup],
                 label_stats: pd.DataFrame | None, category: str) -> pd.DataFrame:
    """Per layer and object class: units of each run detecting it (``units_*``) and their share of the
    layer's units (``share_*``), and the class's probe statistics."""
    sides = side_keys(len(runs))
    frames = []
    stats = label_stats.set_index("name") if label_stats is not None else pd.DataFrame()
    for pair in pairs:
        counts = [detector_counts(run, layer, category) for run, layer in zip(runs, pair.layers, strict=True)]
        names = list(stats.index) + [n for c in counts for n in c.index if n not in stats.index]
        frame = pd.DataFrame({"layer": pair.label, "name": list(dict.fromkeys(names))})
        for side, count, run, layer in zip(sides, counts, runs, pair.layers, strict=True):
            frame[f"units_{side}"] = frame["name"].map(count).fillna(0).astype(int)
            frame[f"share_{side}"] = frame[f"units_{side}"] / max(int(run.layers[layer].shape[0]), 1)
        for column in ("number", "pixel_area", *MEASURES, "image_count"):
            frame[column] = frame["name"].map(stats[column]) if column in stats.columns else np.nan
        frames.append(frame)
    columns = ["layer", "name", "number", *[f"units_{s}" for s in sides], *[f"share_{s}" for s in sides],
               "pixel_area", "pixel_share", "image_count", "image_frequency", "scene_mi_bits"]
    return pd.concat(frames, ignore_index=True)[columns]


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's ρ and its p-value; NaN for fewer than 3 points or a constant input."""
    if len(x) < 3:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy_stats.ConstantInputWarning)
        result = scipy_stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def correlation_table(objects: pd.DataFrame, names: Sequence[str],
                      foreground: Collection[str] | None = None) -> pd.DataFrame:
    """ρ between units per object class and each measure, per run and layer, over classes in the probe.

    ``classes`` = ``all`` (every class occurring in the probe); with ``foreground`` names also
    ``foreground``: those classes only (SceneWorld's objects without the background regions, whose
    huge areas no unit can cover within Network Dissection's top-0.5% activation budget).
    """
    subsets: dict[str, set[str] | None] = {"all": None}
    if foreground is not None:
        subsets["foreground"] = set(foreground)
    rows = []
    for layer, frame in objects.groupby("layer", sort=False):
        occurring = frame[~(frame["image_count"] == 0)]
        for subset, keep in subsets.items():
            chosen = occurring if keep is None else occurring[occurring["name"].isin(keep)]
            for side, name in zip(side_keys(len(names)), names, strict=True):
                for measure in MEASURES:
                    valid = chosen[chosen[measure].notna()]
                    rho, p = spearman(valid[f"units_{side}"].to_numpy(float), valid[measure].to_numpy(float))
                    rows.append({"run": name, "side": side, "layer": layer, "classes": subset, "measure": measure,
                                 "rho": rho, "p_value": p, "n": len(valid)})
    return pd.DataFrame(rows, columns=["run", "side", "layer", "classes", "measure", "rho", "p_value", "n"])


def compare_many(
    runs: Sequence[DissectionResult], label_stats: pd.DataFrame | None = None, force: bool = False,
    category: str = "object", foreground: Collection[str] | None = None, pairs: Sequence[str] = (),
) -> Comparison:
    """Compare two or more finished runs, one column each; ``label_stats`` (from :mod:`label_stats`) adds
    frequency and ρ (from the first run's probe set).

    ``force`` compares runs of different probe sets or rules; ``pairs``: ``--pair`` values ("A:B", one
    layer per run) instead of pairing by name or relative depth (:mod:`unitscope.analysis.compare.pairing`).
    ``foreground``: names of the classes that are objects proper (not background regions), for a
    second set of correlations restricted to them.
    """
    side_keys(len(runs))
    names = display_names(*runs)
    notes = check_same_probe(*runs, force=force, names=names)
    pairing = pair_layers(runs, names, pairs)
    objects = object_table(runs, pairing.groups, label_stats, category)
    if label_stats is None:
        notes.append("No probe statistics: frequencies, discriminativeness and ρ are not available.")
    elif label_stats["scene_mi_bits"].isna().all():
        notes.append("The probe set has no scene labels (or none were readable): discriminativeness not computed.")
    correlations = correlation_table(objects, names, foreground)
    categories = category_table(runs, pairing.groups)
    return Comparison(names, tuple(runs), pairing.groups, categories, objects, correlations, category, notes,
                      set(foreground) if foreground is not None else None,
                      verdict_sentences(categories, names, category), pairing.sentence())


def compare_runs(
    a: DissectionResult, b: DissectionResult, label_stats: pd.DataFrame | None = None,
    force: bool = False, category: str = "object", foreground: Collection[str] | None = None,
) -> Comparison:
    """Two runs side by side (:func:`compare_many` of ``a`` and ``b``)."""
    return compare_many((a, b), label_stats, force, category, foreground)
