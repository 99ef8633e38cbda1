"""The colour control: which object and part detectors still detect their concept when colour says nothing.

``dissect --control recolored`` measures every object and part detector of the run again on the probe set's
recoloured twin (``probe.recolored()``: for SceneWorld the same scenes, masks and labels with every item
painted from one palette shared by all classes, ``data/sceneworld/recolor.py``), through the same engine and
with the run's own per-unit thresholds. A detector survives when, on the twin, its concept's IoU still
reaches ``--iou`` and the pair is still significant at ``--fdr`` (Benjamini–Hochberg over the twin's units ×
concepts). A colour filter that looked like a stove detector because stoves are grey loses its overlap once
stoves come in every colour; a unit that follows the stove's shape keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from unitscope.data.probe import ConceptTable, ProbeSet
from unitscope.dissection.confidence import concept_q_values
from unitscope.dissection.engine import DissectionEngine, LayerStatistics
from unitscope.dissection.result import LayerResult, ResampledCounts
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.stats.bootstrap import bootstrap_labels

CONTROLLED: tuple[str, ...] = ("object", "part")  # the categories whose detectors the control re-measures
Measure = Callable[[LoadedModel, dict[str, LayerResult], Path], dict[str, object]]


def control_twin(probe: ProbeSet) -> ProbeSet:
    """The recoloured twin of ``probe`` (same images, sizes and concepts), or one UsageError when it has none."""
    make = getattr(probe, "recolored", None)
    if not callable(make):
        raise UsageError(f"--control recolored needs a probe set with a recoloured twin, and {probe.name} has none; "
                         "use --data sceneworld or sceneworld-objects, or drop --control")
    twin: ProbeSet = make()
    same = (len(twin), tuple(twin.image_size), tuple(twin.label_size), twin.concepts.concepts)
    if same != (len(probe), tuple(probe.image_size), tuple(probe.label_size), probe.concepts.concepts):
        raise UsageError(f"the recoloured twin of {probe.name} differs in length, sizes or concepts; "
                         "its recolored() must return the same images repainted")
    return twin


def control_info(model: LoadedModel, paths: dict[str, str], twin: ProbeSet, settings: DissectSettings,
                 workdir: Path, geometry: dict[str, tuple[float, float]], progress: bool,
                 layers: dict[str, LayerResult]) -> dict[str, object]:
    """Dissect ``twin`` with the thresholds of ``layers`` and mark each object/part detector's survival.

    Adds ``control_iou`` and ``survives_control`` to every layer's units table; returns what the record keeps:
    per layer the detectors tested, how many survive (in all and per category) and a bootstrap interval of
    the survivors over the twin's images.
    """
    thresholds = {name: torch.tensor(layers[name].units["threshold"].to_numpy(np.float64), dtype=torch.float64)
                  for name in paths}
    if progress:
        print(f"colour control: the {', '.join(CONTROLLED)} detectors again on {twin.name}, same thresholds")
    outcome = DissectionEngine(model, paths, twin, settings, workdir, geometry.get, progress,
                               thresholds=thresholds).run()
    counts = {stats.name: survival(layers[stats.name], stats, twin.concepts, settings) for stats in outcome.layers}
    return {"kind": "recolored", "data": twin.name, "layers": counts}


def survival(layer: LayerResult, twin: LayerStatistics, concepts: ConceptTable,
             settings: DissectSettings) -> dict[str, object]:
    """Write ``control_iou`` / ``survives_control`` into ``layer.units`` from the twin's statistics; the counts."""
    units = layer.units
    tested = units["detector"].astype(bool).to_numpy() & units["category"].isin(CONTROLLED).to_numpy()
    numbers = {(c.name, c.category): c.number for c in concepts.concepts}
    concept = np.array([numbers.get((str(name), str(category)), -1) if test else -1
                        for name, category, test in zip(units["label"], units["category"], tested, strict=True)])
    control_iou = np.full(len(units), np.nan)
    significant = np.zeros(len(units), dtype=bool)
    rows = np.flatnonzero(concept >= 0)
    if twin.iou is not None and twin.overlap is not None and twin.evidence is not None and len(rows):
        iou = twin.iou.double().numpy()
        _, q, _ = concept_q_values(twin.overlap, twin.evidence, concepts, iou.shape[1])
        control_iou[rows] = iou[rows, concept[rows]]
        significant[rows] = q[rows, concept[rows]] <= settings.fdr
    survives = np.nan_to_num(control_iou, nan=-1.0) >= settings.iou_threshold
    survives &= significant
    units["control_iou"] = control_iou
    units["survives_control"] = survives
    categories = units["category"].to_numpy()
    record: dict[str, object] = {
        "detectors": int(tested.sum()), "survive_control": int(survives.sum()),
        "categories": {c: {"detectors": int((tested & (categories == c)).sum()),
                           "survive_control": int((survives & (categories == c)).sum())} for c in CONTROLLED},
    }
    if settings.bootstrap and twin.evidence is not None and twin.overlap is not None and twin.iou is not None:
        record["survive_ci"], resampled = _survivors_interval(twin, concept, significant, settings, concepts)
        if resampled is not None:
            record["resampled"] = resampled.to_record()
    return record


def _survivors_interval(twin: LayerStatistics, concept: np.ndarray, significant: np.ndarray,
                        settings: DissectSettings, concepts: ConceptTable
                        ) -> tuple[list[float], ResampledCounts | None]:
    """95% interval of the survivors when the twin's images are resampled (the run's own resamples and seed):
    each tested unit's concept is its only candidate, its significance on the twin the full-data one. Also
    the survivors per resample, per tested category and in all (``total``): two runs dissected on the same
    probe set pair them resample by resample (equal draw digests)."""
    nan = [float("nan"), float("nan")]
    if twin.evidence is None or twin.overlap is None or twin.iou is None:
        return nan, None
    units, width = twin.iou.shape
    onehot = np.zeros((units, width))
    chosen = np.zeros((units, width), dtype=bool)
    rows = np.flatnonzero(concept >= 0)
    onehot[rows, concept[rows]] = 1.0
    chosen[rows, concept[rows]] = significant[rows]
    outcome = bootstrap_labels(twin.evidence.counts, twin.overlap.label_category.cpu().numpy(), concept, onehot,
                               chosen, settings.iou_threshold, settings.bootstrap, candidates=1)
    if len(outcome.detectors) == 0:
        return nan, None
    low, high = np.percentile(outcome.detectors, [2.5, 97.5])
    counts = {name: outcome.by_category[:, c] for c, name in enumerate(concepts.categories)
              if name in CONTROLLED and c < outcome.by_category.shape[1]}
    counts["total"] = np.asarray(outcome.detectors, dtype=np.int64)
    return [float(low), float(high)], ResampledCounts(outcome.draws, counts) if outcome.draws else None
