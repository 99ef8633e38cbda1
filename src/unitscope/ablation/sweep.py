"""The ablation sweep: remove (or keep only) a concept's detector units, against random units.

For every unit set (the detectors of each detected concept of a layer, or the units a user names) two
conditions are scored on fresh labelled images: *remove* the set, and *keep* only the set (remove every
other unit of the layer). Each is compared with ``seeds`` random sets of the same number of units of the
same layer, drawn uniformly without replacement (a random set may share units with the concept's), so
the table says whether a concept's detectors matter more than any units would. Two intervals say how sure:
``random_drop_low``–``random_drop_high``, the 2.5–97.5 percentile range of the random sets' drops (which
units were drawn), and ``excess_low``–``excess_high``, a paired bootstrap over the images (within each class,
:func:`unitscope.stats.paired.paired_bootstrap`) of the excess drop, the concept's drop minus the random
sets' mean drop on the same images. ``beats_random`` is True only where that interval lies above 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from unitscope.ablation.measure import Outcomes, measure_conditions, unit_means
from unitscope.data.classification import ClassificationData, open_classification
from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError
from unitscope.layout import layer_layout
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import LoadedModel
from unitscope.stats.paired import mean_of, paired_bootstrap

MODES: tuple[str, ...] = ("zero", "mean")
KINDS: tuple[str, ...] = ("remove", "keep")
ALL = "(all)"
RESAMPLES = 2000  # bootstrap resamples of the images for the interval of the excess drop (as cam's)
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class UnitSet:
    """Units of one layer that are ablated together, named after the concept they detect."""

    name: str
    category: str
    units: tuple[int, ...]


@dataclass
class AblationResult:
    """The ``ablation.csv`` table (one row per unit set × kind × class, plus ``(all)``) and its context."""

    table: pd.DataFrame
    layer: str
    mode: str
    class_names: list[str]
    clean_accuracy: dict[str, float]
    info: dict[str, object] = field(default_factory=dict)

    def top_drops(self, k: int = 10, kind: str = "remove") -> pd.DataFrame:
        """The ``k`` largest concept → class accuracy drops (ties: larger excess over random first)."""
        rows = self.table[(self.table["kind"] == kind) & (self.table["scene"] != ALL)]
        return rows.sort_values(["drop", "excess_drop"], ascending=False, kind="stable").head(k)


def concept_unit_sets(run: DissectionResult, layer: str, category: str = "object",
                      concept: str | None = None) -> list[UnitSet]:
    """The detector units of each concept of ``category`` in ``layer`` (only ``concept`` when given)."""
    if layer not in run.layers:
        raise UsageError(f"the run has no layer {layer!r}; its layers are {', '.join(run.layers)}")
    units = run.layers[layer].units
    chosen = units[units["detector"].astype(bool) & (units["category"] == category)]
    if concept is not None:
        chosen = chosen[chosen["label"].astype(str) == concept]
        if chosen.empty:
            found = sorted(set(units.loc[units["detector"].astype(bool), "label"].astype(str)))
            raise UsageError(f"no {category} detectors for {concept!r} in layer {layer}; detected concepts: "
                             f"{', '.join(found) or 'none'}")
    if chosen.empty:
        raise UsageError(f"layer {layer} of the run has no {category} detectors; pass --units or dissect more images")
    groups = chosen.groupby(chosen["label"].astype(str), sort=True)["unit"]
    sets = [UnitSet(str(name), category, tuple(sorted(int(u) for u in us))) for name, us in groups]
    return sorted(sets, key=lambda s: (-len(s.units), s.name))


def parse_units(text: str, num_units: int) -> UnitSet:
    """``--units 3,17,40`` → a unit set; numbers must be distinct units of the layer."""
    try:
        units = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise UsageError(f"--units takes comma-separated unit numbers like 3,17,40; got {text!r}") from err
    bad = [u for u in units if not 0 <= u < num_units]
    if not units or bad or len(set(units)) != len(units):
        raise UsageError(f"--units must list distinct units between 0 and {num_units - 1}; got {text!r}")
    return UnitSet("units " + ",".join(str(u) for u in units), "", tuple(sorted(units)))


def random_sets(num_units: int, size: int, seeds: int, seed: int) -> list[tuple[int, ...]]:
    """``seeds`` random sets of ``size`` units; set s depends only on (seed, size, s)."""
    return [tuple(sorted(int(u) for u in np.random.default_rng([seed, size, s]).choice(num_units, size, replace=False)))
            for s in range(seeds)]


def ablate(
    model: LoadedModel,
    layer: str,
    data: str | ClassificationData = "sceneworld",
    run: DissectionResult | None = None,
    concept: str | None = None,
    units: str | tuple[int, ...] | None = None,
    category: str = "object",
    mode: str = "zero",
    n: int = 500,
    seed: int = 12345,
    seeds: int = 10,
    batch_size: int = 32,
    progress: bool = False,
) -> AblationResult:
    """Remove / keep each unit set of ``layer`` and measure per-class accuracy against random unit sets.

    Unit sets: ``units`` (a ``"3,17"`` string or a tuple), else the detectors of ``concept`` in ``run``,
    else every detected concept of ``category`` in ``run``. ``data`` is an ``evaluate --data`` spec (fresh
    SceneWorld images by default: seed 12345, not the dissection's 0) or ready classification data.
    """
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if seeds < 2:
        raise UsageError(f"--seeds must be at least 2 for an interval, got {seeds}")
    path = resolve_layer(model.module, layer)
    if isinstance(data, str):
        size = model.preprocess.input_size[0] if model.preprocess.input_size else 112
        data = open_classification(data, model.class_names, n=n, seed=seed, size=size, command="ablate")
    num_units = _num_units(model, path, data)
    sets = _unit_sets(run, layer, concept, units, category, num_units)
    conditions = _conditions(sets, num_units, seeds, seed)
    values = unit_means(model, path, data, batch_size) if mode == "mean" else torch.zeros(num_units)
    outcomes = measure_conditions(model, path, conditions.masks, values, data, batch_size, progress=progress)
    names = list(model.class_names or [str(k) for k in range(int(outcomes.targets.max()) + 1)])
    table = _table(sets, conditions, outcomes, names)
    clean = _per_class(outcomes, 0, names, "correct")
    info = {"layer_path": path, "units": num_units, "images": len(data), "seeds": seeds, "seed": seed,
            "data": data.name, "bootstrap": {"resamples": RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95}}
    return AblationResult(table, layer, mode, names, clean, info)


def _num_units(model: LoadedModel, path: str, data: ClassificationData) -> int:
    x = model.preprocess.batch([data[0][0]], model.device)
    units = layer_layout(model.module, path, x).units  # along its unit axis, whatever its layout
    if units is None:
        raise UsageError(f"layer {path} gave no [batch, units, …] output; choose another layer")
    return units


def _unit_sets(run: DissectionResult | None, layer: str, concept: str | None, units: str | tuple[int, ...] | None,
               category: str, num_units: int) -> list[UnitSet]:
    if units is not None:
        if concept is not None:
            raise UsageError("give --concept or --units, not both")
        text = units if isinstance(units, str) else ",".join(str(u) for u in units)
        return [parse_units(text, num_units)]
    if run is None:
        raise UsageError("without --units, ablate needs a dissection run (--run RUN) to find the detectors")
    sets = concept_unit_sets(run, layer, category, concept)
    too_big = [s.name for s in sets if max(s.units) >= num_units]
    if too_big:
        raise UsageError(f"the run's units for {too_big[0]} do not exist in this model's layer {layer} "
                         f"({num_units} units); pass the model that was dissected")
    return sets


ConditionIndex = dict[tuple[str, tuple[int, ...]], int]


@dataclass(frozen=True)
class Conditions:
    """Masks [C, U] (row 0: nothing ablated), the row of each (kind, units), the random sets per size."""

    masks: torch.Tensor
    index: ConditionIndex
    random: dict[int, list[tuple[int, ...]]]


def _conditions(sets: list[UnitSet], num_units: int, seeds: int, seed: int) -> Conditions:
    index: ConditionIndex = {("none", ()): 0}
    rows = [np.zeros(num_units, dtype=bool)]
    wanted = [s.units for s in sets]
    random = {size: random_sets(num_units, size, seeds, seed) for size in sorted({len(s.units) for s in sets})}
    for drawn in random.values():
        wanted += drawn
    for units in wanted:
        chosen = np.zeros(num_units, dtype=bool)
        chosen[list(units)] = True
        for kind, mask in (("remove", chosen), ("keep", ~chosen)):
            if (kind, units) not in index:
                index[(kind, units)] = len(rows)
                rows.append(mask)
    return Conditions(torch.from_numpy(np.stack(rows)), index, random)


def _per_class(outcomes: Outcomes, row: int, names: list[str], what: str) -> dict[str, float]:
    values = getattr(outcomes, what)[row].astype(np.float64)
    result = {ALL: float(values.mean())}
    for k, name in enumerate(names):
        where = outcomes.targets == k
        if where.any():
            result[name] = float(values[where].mean())
    return result


def _table(sets: list[UnitSet], conditions: Conditions, outcomes: Outcomes, names: list[str]) -> pd.DataFrame:
    clean_acc = _per_class(outcomes, 0, names, "correct")
    clean_score = _per_class(outcomes, 0, names, "score")
    groups = {ALL: np.arange(len(outcomes.targets)),
              **{name: np.flatnonzero(outcomes.targets == k) for k, name in enumerate(names)}}
    correct = outcomes.correct.astype(np.float64)
    rows: list[dict[str, object]] = []
    index = conditions.index
    for unit_set in sets:
        size = len(unit_set.units)
        for kind in KINDS:
            acc = _per_class(outcomes, index[(kind, unit_set.units)], names, "correct")
            score = _per_class(outcomes, index[(kind, unit_set.units)], names, "score")
            randoms = [index[(kind, units)] for units in conditions.random[size]]
            rand_acc = [_per_class(outcomes, r, names, "correct") for r in randoms]
            rand_score = [_per_class(outcomes, r, names, "score") for r in randoms]
            own_drop = correct[0] - correct[index[(kind, unit_set.units)]]  # [N] per image
            random_drop = (correct[0][None] - correct[randoms]).mean(axis=0)  # [N] mean over the random sets
            for cls in acc:
                drops = np.array([clean_acc[cls] - r[cls] for r in rand_acc])
                drop = clean_acc[cls] - acc[cls]
                images = groups[cls]
                excess = paired_bootstrap([own_drop[images]], [random_drop[images]], mean_of, RESAMPLES,
                                          BOOTSTRAP_SEED)
                rows.append({
                    "concept": unit_set.name, "category": unit_set.category, "kind": kind, "n_units": size,
                    "units": " ".join(str(u) for u in unit_set.units), "scene": cls,
                    "images": len(images),
                    "clean_accuracy": clean_acc[cls], "accuracy": acc[cls], "drop": drop,
                    "random_drop_mean": float(drops.mean()), "random_drop_low": float(np.percentile(drops, 2.5)),
                    "random_drop_high": float(np.percentile(drops, 97.5)),
                    "excess_drop": drop - float(drops.mean()),
                    "excess_low": excess.low, "excess_high": excess.high, "beats_random": excess.beats_baseline,
                    "score_drop": clean_score[cls] - score[cls],
                    "random_score_drop_mean": float(np.mean([clean_score[cls] - r[cls] for r in rand_score])),
                })
    return pd.DataFrame(rows)
