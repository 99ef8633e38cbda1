"""``segment --method vectors``: fit concept vectors on the run's probe set, then segment in one pass.

The forward pass that yields the scene prediction also yields the layers' maps; the concept vectors turn
them into a per-pixel argmax over concepts ("none" included). Writes what the units method writes
(``predictions.csv``, ``labels_<key>.png``, ``segment_<key>.png``, ``metrics.json``) plus the fitted
``vectors.npz``/``vectors.json``; ``metrics.json`` scores come from scikit-learn's confusion matrix
(:mod:`unitscope.analysis.segment.scores`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unitscope.analysis.inputs import InputSource
from unitscope.analysis.overlay import concept_colours
from unitscope.analysis.segment.run import (
    SegmentSummary,
    TwinPass,
    _sizes,
    prepare_model,
    segment_inputs,
)
from unitscope.analysis.segment.scores import ConfusionMeter
from unitscope.analysis.segment.twin import check_baseline, random_column, twin_seed
from unitscope.analysis.segment.vector_cache import FOLDER as CACHE_FOLDER
from unitscope.analysis.segment.vector_cache import cached_fit
from unitscope.analysis.segment.vectors import ConceptVectors, FeatureMaps
from unitscope.defaults import FIT_N
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.upsample import Upsampler
from unitscope.distributed import Group
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.report.output_pages import segment_page


def feature_maps(model: LoadedModel, run: DissectionResult, layers: tuple[str, ...]) -> FeatureMaps:
    """Upsample every layer to the run's label size as the dissection did (``rf`` or ``bilinear``), with the
    receptive-field geometry the run recorded (as ``report`` does); the model is traced, once, only for a
    layer the record has none for."""
    _, label_size, input_size = _sizes(run)
    mode = str(run.record.setting("upsample", "rf"))
    recorded = {layer.name: (layer.stride, layer.start) for layer in run.record.layers
                if layer.stride is not None and layer.start is not None}
    traced: dict[str, tuple[float, float]] | None = None
    paths, upsamplers = [], []
    for name in layers:
        if name not in run.layers:
            raise UsageError(f"the run has no layer {name!r}; its layers are {', '.join(run.layers)}")
        layer = run.layers[name]
        stride = start = None
        if mode == "rf":
            if name in recorded:
                stride, start = recorded[name]
            else:
                from unitscope.receptive.theory import alignment_geometry

                traced = traced if traced is not None else alignment_geometry(model.module, input_size)
                field = traced.get(layer.path)
                stride, start = field if field is not None else (None, None)
        paths.append(layer.path)
        upsamplers.append(Upsampler.build(mode, layer.shape[1:], label_size, input_size, stride, start))
    return FeatureMaps(model, tuple(paths), tuple(upsamplers))


def fit_for_run(model: LoadedModel, run: DissectionResult, layers: tuple[str, ...] | None, category: str = "object",
                fit_n: int = FIT_N, fit_data: str | None = None,
                group: Group | None = None) -> tuple[FeatureMaps, ConceptVectors]:
    """Fit vectors for ``layers`` (default: all the run's layers) on the probe set the run was dissected on.

    Under torchrun rank 0 fits and the others receive its vectors (the fit is deterministic, so one
    fit spares the others' cores and every rank segments with the same bits).
    """
    chosen = tuple(layers) if layers else tuple(run.layers)
    features = feature_maps(prepare_model(model, run), run, chosen)
    return features, fit_features(features, run, chosen, category, fit_n, fit_data, group)


def fit_features(features: FeatureMaps, run: DissectionResult, chosen: tuple[str, ...], category: str = "object",
                 fit_n: int = FIT_N, fit_data: str | None = None, group: Group | None = None) -> ConceptVectors:
    """Fit vectors on ``features`` (the run's model, or its random twin) as :func:`fit_for_run` does."""
    group = group or Group()
    problem: str | None = None
    vectors: ConceptVectors | None = None
    if group.is_main:
        try:
            vectors = _fit(features, run, chosen, category, fit_n, fit_data)
        except UsageError as err:
            if not group.active:
                raise
            problem = str(err)
    problem, vectors = group.broadcast((problem, vectors))
    if problem is not None or vectors is None:
        raise UsageError(problem or "rank 0 fitted no concept vectors")
    return vectors


def _fit(features: FeatureMaps, run: DissectionResult, chosen: tuple[str, ...], category: str, fit_n: int,
         fit_data: str | None) -> ConceptVectors:
    from unitscope.data import open_probe
    from unitscope.dissection.reopen import recorded_data_spec

    spec = run.record.spec.data
    name = fit_data or recorded_data_spec(run)
    try:
        probe = open_probe(name, n=fit_n, seed=spec.seed, size=spec.size)
    except UsageError as err:
        raise UsageError(f"cannot reopen the run's probe set {name!r} to fit concept vectors ({err}); "
                         "pass --fit-data with a labelled probe set") from err
    units = {layer.name: layer.units for layer in run.record.layers}
    widths = tuple(units[name] for name in chosen) if all(name in units for name in chosen) else ()
    # a layer whose folder is the cache's own name (unlikely) keeps the run folder free of the cache
    where = None if any(layer.directory == CACHE_FOLDER for layer in run.record.layers) else run.run_dir
    return cached_fit(features, where, chosen, widths, probe, category, fit_n)


def segment_labels(features: FeatureMaps, vectors: ConceptVectors,
                   images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concept numbers [B, sh, sw] (0 = none) and class probabilities [B, K], from one forward pass."""
    logits, maps = features(images)
    score = concept_scores(vectors, standardised(vectors, maps))
    labels = vectors.numbers[score.argmax(dim=-1).cpu().numpy()]
    return labels, torch.softmax(logits.double(), dim=1).cpu().numpy()


def standardised(vectors: ConceptVectors, maps: torch.Tensor) -> torch.Tensor:
    """Feature maps [B, D, sh, sw] standardised with the fit's mean and std, as the vectors read them."""
    mean = torch.from_numpy(vectors.mean).to(maps.device)[None, :, None, None]
    std = torch.from_numpy(vectors.std).to(maps.device)[None, :, None, None]
    return (maps - mean) / std


def concept_scores(vectors: ConceptVectors, x: torch.Tensor) -> torch.Tensor:
    """Every concept's score per pixel [B, sh, sw, C+1] (``w_c·x + b_c``) from standardised maps ``x``."""
    weights = torch.from_numpy(vectors.weights).to(x.device)
    return x.permute(0, 2, 3, 1) @ weights.T + torch.from_numpy(vectors.bias).to(x.device)


def run_vector_segment(model: LoadedModel, run: DissectionResult, source: InputSource, out: Path | None,
                       layers: tuple[str, ...] | None = None, category: str = "object", batch_size: int = 8,
                       pictures: int | None = 16, fit_n: int = FIT_N, fit_data: str | None = None,
                       group: Group | None = None, baseline: str = "random",
                       baseline_seed: int | None = None) -> SegmentSummary:
    """Fit, then segment every input; ``metrics.json`` when the inputs are labelled. Under torchrun
    (``group``) only rank 0 writes (``out`` None elsewhere).

    ``baseline="random"``: the random twin (the same architecture re-initialised with ``baseline_seed``, by
    default the seed of the run's own random baseline, else 0) gets its own vectors, fitted the same way, and
    segments the same images; ``metrics.json`` holds its scores, the bootstrap interval of the mean-IoU
    difference and the verdict (:mod:`unitscope.analysis.segment.twin`).
    """
    check_baseline(baseline)
    group = group or Group()
    features, vectors = fit_for_run(model, run, layers, category, fit_n, fit_data, group)
    model = features.model
    if out is not None and group.is_main:
        out.mkdir(parents=True, exist_ok=True)
        vectors.save(out)
    truth_classes = [c.number for c in run.concepts.in_category(category)]
    colours = concept_colours(truth_classes)
    meter = ConfusionMeter(truth_classes) if source.labelled else None
    # the twin is scored against labels: unlabelled inputs (one --image) get no twin, and no fit for it
    seed = twin_seed(run, baseline_seed) if baseline == "random" and meter is not None else None
    twin_meter = ConfusionMeter(truth_classes) if seed is not None else None
    twin = None if seed is None else random_twin_pass(features, vectors, run, seed, category, fit_n, fit_data,
                                                      group, twin_meter)

    def segment(images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        labels, probabilities = segment_labels(features, vectors, images)
        return list(labels), list(probabilities)

    predictions = segment_inputs(out, source, batch_size, model, run, category, segment, meter, colours, pictures,
                                 "concept vectors", group, twin)
    metrics = score_summary(meter, run, category, vectors, twin_meter) if meter is not None and out is not None \
        else None
    if metrics is not None and meter is not None:
        metrics.update(random_column(meter, twin_meter, baseline, seed))
    if metrics is not None and out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if out is not None:
        segment_page(out)
    return SegmentSummary(predictions, metrics)


def random_twin_pass(features: FeatureMaps, vectors: ConceptVectors, run: DissectionResult, seed: int, category: str,
                     fit_n: int, fit_data: str | None, group: Group | None, meter: ConfusionMeter | None) -> TwinPass:
    """The random twin of ``features.model`` (seed ``seed``), its vectors fitted as ``vectors`` were, and the
    segmentation they give, scored by ``meter``."""
    from unitscope.dissection.baseline import random_baseline

    twin = FeatureMaps(random_baseline(features.model, seed), features.paths, features.upsamplers)
    twin_vectors = fit_features(twin, run, vectors.layers, category, fit_n, fit_data, group)

    def segment(images: list[np.ndarray]) -> list[np.ndarray]:
        return list(segment_labels(twin, twin_vectors, images)[0])

    return TwinPass(segment, meter)


def detected_classes(run: DissectionResult, layers: tuple[str, ...], category: str = "object") -> list[int]:
    """Concepts of ``category`` with at least one detector unit in any of ``layers``."""
    found: set[int] = set()
    for name in layers:
        units = run.layers[name].units
        chosen = units[units["detector"].astype(bool) & (units["category"] == category)]
        found |= {run.concepts.number_of(str(label), category) for label in chosen["label"]}
    return sorted(found)


def score_summary(meter: ConfusionMeter, run: DissectionResult, category: str, vectors: ConceptVectors,
                  twin: ConfusionMeter | None = None) -> dict[str, object]:
    """The scores, with per-class IoU named (and the random twin's, None when not measured), and the mean over
    classes that have detectors."""
    detected = detected_classes(run, vectors.layers, category)
    scores: dict[str, object] = dict(meter.result(detected))
    scores["mean_iou_detected"] = scores.pop("mean_iou_subset")
    baseline = scores.get("baseline_class")
    if isinstance(baseline, int) and baseline in run.concepts:
        scores["baseline_class"] = run.concepts[baseline].name
    theirs = twin.class_iou() if twin is not None else {}
    scores["per_class"] = {run.concepts[c].name: {"iou": iou, "random_iou": theirs.get(c), "detected": c in detected}
                           for c, iou in meter.class_iou().items() if c in run.concepts}
    scores.update({"method": "vectors", "layers": list(vectors.layers), "category": category,
                   "held_out_fit": vectors.report})
    return scores
