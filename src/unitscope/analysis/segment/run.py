"""``segment`` end to end: a run's detectors + the dissected model → predictions, overlays, metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import pandas as pd
from PIL import Image

from unitscope.analysis.inputs import InputImage, InputSource
from unitscope.analysis.overlay import blend_labels, colour_labels, concept_colours, save_panels
from unitscope.analysis.segment.metrics import SegmentationMeter
from unitscope.analysis.segment.segmenter import DetectorSet, UnitSegmenter, detector_set
from unitscope.analysis.segment.twin import NOT_MEASURED_NONE, NOT_MEASURED_UNITS, check_baseline, random_column
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.upsample import Upsampler
from unitscope.distributed import Group, batches_in_order
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.palette import RGB
from unitscope.report.output_pages import segment_page

TOP_K = 3


@dataclass(frozen=True)
class SegmentSummary:
    """Per-image predictions and, on a labelled probe set, the metrics."""

    predictions: pd.DataFrame
    metrics: dict[str, object] | None


def _sizes(run: DissectionResult) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    record = run.record
    return record.image_size, record.label_size, record.input_size


def prepare_model(model: LoadedModel, run: DissectionResult) -> LoadedModel:
    """``model`` checked to be the dissected one (``dissection.reopen``: by its weights' digest, not its name),
    with the run's preprocessing and precision."""
    from unitscope.dissection.reopen import reopen_model

    if run.record.spec.model.digest is None and run.record.model != model.name:  # an older run: names only
        raise UsageError(f"the run dissected {run.record.model}, not {model.name}; pass the same --model as dissect")
    return reopen_model(run, model=model)


def build_segmenter(model: LoadedModel, run: DissectionResult, layer: str | None, category: str) -> UnitSegmenter:
    """The segmenter for ``layer`` of ``run``, upsampling as the dissection did."""
    detectors: DetectorSet = detector_set(run, layer, category)
    _, label_size, input_size = _sizes(run)
    mode = str(run.record.setting("upsample", "rf"))
    stride = start = None
    if mode == "rf":
        from unitscope.receptive.theory import alignment_geometry

        field = alignment_geometry(model.module, input_size).get(detectors.path)
        stride, start = field if field is not None else (None, None)
    upsampler = Upsampler.build(mode, detectors.shape[1:], label_size, input_size, stride, start)
    return UnitSegmenter(model, detectors, upsampler)


def run_segment(
    model: LoadedModel,
    run: DissectionResult,
    source: InputSource,
    out: Path | None,
    layer: str | None = None,
    category: str = "object",
    batch_size: int = 8,
    pictures: int | None = 16,
    group: Group | None = None,
    baseline: str = "random",
) -> SegmentSummary:
    """Write ``predictions.csv``, ``labels_<key>.png``, (if labelled) ``metrics.json``, and for the first
    ``pictures`` images (all when None) ``segment_<key>.png`` overlays, the slow part. Under torchrun
    (``group``) only rank 0 writes (``out`` None elsewhere; its summary is empty).

    ``baseline``: the random column of ``metrics.json`` says why the units method has no random twin
    (:data:`~unitscope.analysis.segment.twin.NOT_MEASURED_UNITS`), or that none was asked for.
    """
    check_baseline(baseline)
    model = prepare_model(model, run)
    segmenter = build_segmenter(model, run, layer, category)
    vocabulary = sorted(set(segmenter.detectors.numbers))
    truth_classes = [c.number for c in run.concepts.in_category(category)]
    colours = concept_colours([*vocabulary, *truth_classes])
    meter = SegmentationMeter(vocabulary) if source.labelled else None

    def segment(images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        result = segmenter(images)
        return [t.numpy() for t in result.labels], [t.numpy() for t in result.probabilities]

    predictions = segment_inputs(out, source, batch_size, model, run, category, segment, meter, colours, pictures,
                                 group=group)
    metrics = _metrics(meter, run, segmenter, category) if meter is not None and out is not None else None
    if metrics is not None and meter is not None:
        note = NOT_MEASURED_UNITS if baseline == "random" else NOT_MEASURED_NONE
        metrics.update(random_column(meter, None, baseline, None, note))
    if metrics is not None and out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if out is not None:
        segment_page(out)
    return SegmentSummary(predictions, metrics)


class _Meter(Protocol):
    def update(self, labels: np.ndarray, truth: np.ndarray) -> None: ...


Segmenter = Callable[[list[np.ndarray]], tuple[list[np.ndarray], list[np.ndarray]]]


@dataclass(frozen=True)
class TwinPass:
    """The random twin's segmentation of the same images (``segment``: labels per image), scored by ``meter``."""

    segment: Callable[[list[np.ndarray]], list[np.ndarray]]
    meter: _Meter | None


Computed = tuple[list[InputImage], list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]


def segment_inputs(out: Path | None, source: InputSource, batch_size: int, model: LoadedModel, run: DissectionResult,
                   category: str, segment: Segmenter, meter: _Meter | None, colours: dict[int, RGB],
                   pictures: int | None, caption: str = "units' segmentation", group: Group | None = None,
                   twin: TwinPass | None = None) -> pd.DataFrame:
    """The one loop of every segmentation method: batches of inputs through ``segment`` (labels and class
    probabilities per image), scored by ``meter``, written as label PNGs, pictures and ``predictions.csv``.

    ``twin``: the random twin segments the same batch and its ``meter`` scores it on the same truth, in the
    same order (``predictions.csv`` gets its ``random_segmented_share``; empty without a twin).

    Under torchrun (``group``) each rank segments every world-th batch and rank 0 (``out`` set there only)
    scores and writes them all in batch order, so its files are those of one process.
    """
    group = group or Group()
    image_size, _, _ = _sizes(run)
    if group.is_main:
        if out is None:
            raise UsageError("rank 0 needs an output directory for segment")
        out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []

    def compute(indices: range) -> Computed:
        items = [source[i] for i in indices]
        for item in items:
            _check_size(item, image_size)
        images = [item.image for item in items]
        labels, probabilities = segment(images)
        return items, list(labels), list(probabilities), list(twin.segment(images)) if twin is not None else None

    def consume(_indices: range, done: Computed) -> None:
        items, labels, probabilities, twin_labels = done
        target = cast(Path, out)
        for j, item in enumerate(items):
            rows.append(_prediction_row(model, item, probabilities[j], labels[j]))
            rows[-1]["random_segmented_share"] = float((twin_labels[j] != 0).mean()) if twin_labels else None
            truth = item.sample.pixel_labels.get(category) if item.sample is not None else None
            if meter is not None and truth is not None:
                meter.update(labels[j], truth)
            if twin is not None and twin.meter is not None and twin_labels is not None and truth is not None:
                twin.meter.update(twin_labels[j], truth)
            _write_labels(target, item, labels[j])
            if pictures is None or len(rows) <= pictures:
                _write_pictures(target, item, labels[j], truth, colours, run, rows[-1], caption)
                _write_preview(target, item, labels[j], colours)

    batches_in_order(group, len(source), batch_size, compute, consume)
    predictions = pd.DataFrame(rows)
    if out is not None and group.is_main:
        predictions.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
    return predictions


def _check_size(item: InputImage, image_size: tuple[int, int]) -> None:
    if item.image.shape[:2] != image_size:
        raise UsageError(f"image {item.key} is {item.image.shape[1]}x{item.image.shape[0]} but the run was "
                         f"dissected at {image_size[1]}x{image_size[0]}; resize it to that size")


def _prediction_row(
    model: LoadedModel, item: InputImage, probabilities: np.ndarray, labels: np.ndarray
) -> dict[str, object]:
    names = model.class_names or [str(i) for i in range(len(probabilities))]
    order = np.argsort(-probabilities, kind="stable")[:TOP_K]
    row: dict[str, object] = {"image": item.key}
    for rank, k in enumerate(order, start=1):
        row[f"class{rank}"] = names[k] if k < len(names) else str(k)
        row[f"p{rank}"] = float(probabilities[k])
    row["segmented_share"] = float((labels != 0).mean())
    return row


def _write_labels(out: Path, item: InputImage, labels: np.ndarray) -> None:
    """The segmentation as a Broden-style label PNG (label number = R + 256·G), for programs; people
    look at ``preview_<key>.png`` beside it."""
    encoded = np.zeros((*labels.shape, 3), np.uint8)
    encoded[..., 0] = labels % 256
    encoded[..., 1] = labels // 256
    Image.fromarray(encoded).save(out / f"labels_{item.key}.png")


def _write_preview(out: Path, item: InputImage, labels: np.ndarray, colours: dict[int, RGB]) -> None:
    """``preview_<key>.png`` beside the label PNG: the image and its segmentation in the pictures' colours."""
    side = max(1, -(-224 // min(item.image.shape[:2])))  # small images are shown larger
    image = np.repeat(np.repeat(item.image, side, axis=0), side, axis=1)
    coloured = colour_labels(labels, colours, image.shape[:2])
    gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
    Image.fromarray(np.concatenate([image, gap, coloured], axis=1)).save(out / f"preview_{item.key}.png")


def _write_pictures(out: Path, item: InputImage, labels: np.ndarray, truth: np.ndarray | None,
                    colours: dict[int, RGB], run: DissectionResult, row: dict[str, object],
                    caption: str = "units' segmentation") -> None:
    panels = [("image", item.image), (caption, blend_labels(item.image, labels, colours))]
    shown = set(np.unique(labels).tolist())
    if truth is not None:
        panels.append(("ground truth", blend_labels(item.image, truth[0], colours)))
        shown |= set(np.unique(truth[0]).tolist())
    legend = [(run.concepts[n].name, colours[n]) for n in sorted(shown) if n in colours and n in run.concepts]
    top = ", ".join(f"{row[f'class{r}']} {row[f'p{r}']:.2f}" for r in range(1, TOP_K + 1) if f"class{r}" in row)
    save_panels(out / f"segment_{item.key}.png", panels, title=top, legend=legend)


def _metrics(
    meter: SegmentationMeter, run: DissectionResult, segmenter: UnitSegmenter, category: str
) -> dict[str, object]:
    scores: dict[str, object] = dict(meter.result())
    baseline = scores.get("baseline_class")
    if isinstance(baseline, int) and baseline in run.concepts:
        scores["baseline_class"] = run.concepts[baseline].name
    units_per: dict[int, int] = {}
    for number in segmenter.detectors.numbers:
        units_per[number] = units_per.get(number, 0) + 1
    scores["per_class"] = {
        run.concepts[c].name if c in run.concepts else str(c): {
            "iou": iou, "random_iou": None, "truth_pixels": meter.truth[c],
            "predicted_pixels": meter.predicted.get(c, 0), "units": units_per.get(c, 0)}
        for c, iou in meter.class_iou().items()
    }
    scores.update({"layer": segmenter.detectors.layer, "category": category,
                   "detector_units": len(segmenter.detectors.units)})
    return scores
