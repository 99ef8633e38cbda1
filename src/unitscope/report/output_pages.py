"""``report.html`` of the commands that write pictures and tables only: ``segment``, ``cam``, ``minimal``, ``rf``.

Each page is built from the files its command already wrote (JSON, CSV, PNG), on the shared base template and
stylesheet, so it can be (re)written for any finished output directory and needs no model. The pictures are
linked, not embedded: the page sits beside them in the output directory, which holds them anyway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from unitscope.report.html import render_template, write_html

PAGE = "report.html"
MAX_FIGURES = 48  # pictures shown per section; the rest are listed as files


@dataclass(frozen=True)
class Column:
    name: str
    num: bool = False


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: list[list[str]]
    title: str = ""
    note: str = ""
    role: str = ""


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the page
    caption: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    size: str = ""  # "", "wide" or "small": the width of a figure cell
    more: str = ""


@dataclass(frozen=True)
class Verdict:
    text: str
    negative: bool


@dataclass(frozen=True)
class OutputPage:
    kind: str
    title: str
    sub: str
    files: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def write_page(page: OutputPage, out: Path) -> Path:
    """Render ``page`` into ``out/report.html``."""
    return write_html(render_template("output.html", page=page), Path(out) / PAGE)


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` decimals, missing values as "–"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _verdict(text: object) -> Verdict | None:
    return Verdict(str(text), "does not" in str(text) or "not measured" in str(text)) if text else None


def _figures(out: Path, paths: Sequence[Path], caption: Mapping[str, str] | None = None) -> tuple[list[Figure], str]:
    """Figures for ``paths`` (relative to ``out``), at most :data:`MAX_FIGURES`, and a note on the rest."""
    shown = [Figure(p.relative_to(out).as_posix(), (caption or {}).get(p.stem, p.stem)) for p in paths[:MAX_FIGURES]]
    rest = len(paths) - len(shown)
    return shown, (f"{rest} more picture{'s' if rest != 1 else ''} in the folder." if rest > 0 else "")


def _read_json(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}


def _difference(found: object) -> str:
    if not isinstance(found, dict) or found.get("difference") is None:
        return "–"
    return f"{found['difference']:+.3f} [{found['low']:+.3f}, {found['high']:+.3f}]"


def cam_page(out: Path) -> Path:
    """``out/report.html`` of a ``cam`` output: the verdict against the random twin, the localisation table
    (pointing game, hit rate, lift) trained beside random, every image's scores and its heatmap picture."""
    out = Path(out)
    found = _read_json(out / "cam.json")
    scores = found.get("localisation") or {}
    baseline = found.get("baseline") or {}
    theirs = baseline.get("localisation") or {}
    differences = baseline.get("differences") or {}
    verdicts = [v for v in (_verdict(baseline.get("verdict")),) if v]
    sections = []
    if scores:
        measures = (("pointing game", "pointing"), (f"top {scores.get('top_fraction', 0.2):.0%} hit rate", "hit_rate"),
                    ("lift over the object share", "lift"), ("heat mass on objects", "mass_on_objects"),
                    ("object share (chance)", "object_share"))
        rows = [[name, fmt(scores.get(key)), fmt(theirs.get(key)) if theirs else "–", _difference(differences.get(key))]
                for name, key in measures]
        note = (f"Over {scores.get('n_images')} images ({scores.get('excluded', 0)} excluded: objects cover "
                f"≥ {100 * float(scores.get('max_mask_share', 0.9)):.0f}%; {scores.get('skipped', 0)} without a "
                f"foreground object). Foreground: {(found.get('foreground') or {}).get('foreground', 'objects')}.")
        table = Table((Column("measure"), Column("trained", True), Column("random twin", True),
                       Column("trained − random [95% interval]", True)), rows, note=note, role="pointing")
        sections.append(Section("Pointing game and hit rate", "scores", tables=[table]))
    images = found.get("images") or []
    if images:
        columns = (Column("image"), Column("class"), Column("probability", True), Column("mask"),
                   Column("object share", True), Column("hit rate", True), Column("pointing", True),
                   Column("random hit rate", True), Column("random pointing", True))
        rows = [[fmt(r.get("image")), fmt(r.get("class")), fmt(r.get("probability")), fmt(r.get("mask")),
                 fmt(r.get("object_share")), fmt(r.get("top_hit_rate")), fmt(r.get("pointing"), 0),
                 fmt(r.get("random_top_hit_rate")), fmt(r.get("random_pointing"), 0)] for r in images]
        sections.append(Section("Every image", "images", tables=[Table(columns, rows, role="images")]))
    captions = {f"cam_{r.get('image')}": f"{r.get('image')}: {r.get('class')}" for r in images}
    figures, more = _figures(out, sorted(out.glob("cam_*.png")), captions)
    sections.append(Section("Heatmaps", "heatmaps", "The image, the class's heatmap, the foreground objects it is "
                            "scored on and the random twin's heatmap for the same class.", figures=figures,
                            size="wide", more=more))
    method = f"{found.get('method', 'CAM')} at {found.get('layer', '?')}"
    page = OutputPage("cam", f"Where does {found.get('model', 'the model')} look?",
                      f"Class activation maps ({method}) over {_count(len(images), 'image')}", "cam.json",
                      [("Model", fmt(found.get("model"))), ("Method", method), ("Images", str(len(images))),
                       ("Random twin", fmt(baseline.get("model")) if baseline else "none (--baseline none)")],
                      verdicts, sections)
    return write_page(page, out)


def segment_page(out: Path) -> Path:
    """``out/report.html`` of a ``segment`` output: the metric table with the random twin's column, the
    per-class IoU, each image's top-3 classes and its segmentation picture."""
    out = Path(out)
    metrics = _read_json(out / "metrics.json")
    sections = []
    twin = metrics.get("random_verdict")
    verdicts = [v for v in (_verdict(f"Random twin: {twin}" if twin else None),) if v]
    if metrics:
        rows = [[name, fmt(metrics.get(key)), fmt(metrics.get(f"random_{key}")), fmt(metrics.get(f"baseline_{key}")),
                 fmt(metrics.get(f"majority_{key}"))]
                for name, key in (("mean IoU", "mean_iou"), ("pixel accuracy", "pixel_accuracy"))]
        rows[0][2] += "" if metrics.get("mean_iou_vs_random") is None else \
            f" (difference {_difference(metrics.get('mean_iou_vs_random'))})"
        table = Table((Column("measure"), Column("trained", True), Column("random twin", True),
                       Column(f"one class everywhere ({metrics.get('baseline_class', '?')})", True),
                       Column("majority class per pixel", True)), rows, role="metrics",
                      note=f"{metrics.get('classes', '?')} {metrics.get('category', '')} classes, "
                           f"{metrics.get('classes_detected', '?')} of them segmented; "
                           f"{metrics.get('labelled_pixels', '?')} labelled pixels in {metrics.get('images', '?')} "
                           "images.")
        per_class = metrics.get("per_class") or {}
        class_rows = sorted(per_class.items(), key=lambda kv: -(kv[1].get("iou") or 0.0))
        names = [k for k in ("truth_pixels", "predicted_pixels", "units", "detected") if any(
            k in v for _, v in class_rows)]
        classes = Table((Column("class"), Column("IoU", True), Column("random twin IoU", True),
                         *(Column(k.replace("_", " "), True) for k in names)),
                        [[name, fmt(v.get("iou")), fmt(v.get("random_iou")), *(fmt(v.get(k)) for k in names)]
                         for name, v in class_rows], title="per class", role="classes")
        sections.append(Section("Segmentation against its random twin", "metrics", tables=[table, classes]))
    predictions = out / "predictions.csv"
    if predictions.is_file():
        frame = pd.read_csv(predictions, dtype={"image": str}, keep_default_na=False)
        ranks = [k for k in (1, 2, 3) if f"class{k}" in frame.columns and f"p{k}" in frame.columns]
        rows = [[str(r["image"]), *(f"{r[f'class{k}']} ({fmt(r[f'p{k}'], 2)})" for k in ranks),
                 fmt(r.get("segmented_share")), fmt(r.get("random_segmented_share") or None)]
                for r in frame.to_dict(orient="records")]
        table = Table((Column("image"), *(Column(f"top-{k}") for k in ranks),
                       Column("segmented share", True), Column("random twin's", True)), rows, role="predictions")
        sections.append(Section("Scene classes, from the same forward pass", "predictions", tables=[table]))
    figures, more = _figures(out, sorted(out.glob("segment_*.png")))
    sections.append(Section("Segmentations", "pictures", figures=figures, size="wide", more=more))
    layer = metrics.get("layer") or ", ".join(metrics.get("layers") or []) or "?"
    page = OutputPage("segment", f"Segmenting {metrics.get('category', 'concept')} concepts with {layer}",
                      f"{_count(metrics.get('images', '?'), 'image')}", "metrics.json and predictions.csv",
                      [("Layer", str(layer)), ("Category", fmt(metrics.get("category"))),
                       ("Images", fmt(metrics.get("images"))), ("Detector units", fmt(metrics.get("detector_units")))],
                      verdicts, sections)
    return write_page(page, out)


def minimal_page(out: Path) -> Path:
    """``out/report.html`` of a ``minimal`` output: per class what is kept, every image's removal strip and the
    minimal images themselves."""
    out = Path(out)
    summary = _read_json(out / "summary.json")
    sections = []
    per_class = summary.get("per_class") or {}
    if per_class:
        rows = [[name, fmt(v.get("images")), fmt(v.get("mean_regions"), 1), fmt(v.get("mean_regions_kept"), 1),
                 f"{100 * float(v.get('mean_pixel_fraction') or 0):.1f}%"] for name, v in per_class.items()]
        table = Table((Column("class"), Column("images", True), Column("regions", True), Column("regions kept", True),
                       Column("pixels kept", True)), rows, role="classes")
        sections.append(Section("What each class keeps", "classes", tables=[table]))
    retention = out / "retention.csv"
    if retention.is_file():
        frame = pd.read_csv(retention, keep_default_na=False)
        table = Table(tuple(Column(str(c).replace("_", " "), frame[c].dtype.kind in "if") for c in frame.columns),
                      [[fmt(v) for v in row] for row in frame.itertuples(index=False)], role="retention")
        sections.append(Section("Objects kept", "retention", "Share of pixels on ground-truth objects, in the "
                                "original images and in what the minimal images keep.", tables=[table]))
    strips, more = _figures(out, sorted((out / "strips").glob("*.png")))
    sections.append(Section("Removal steps", "strips", "Regions are removed greedily while the prediction stays "
                            "right (Zhou et al. §3.1).", figures=strips, size="full", more=more))
    images = sorted((out / "images").glob("*/*.png"))
    minimal, more = _figures(out, images, {p.stem: f"{p.parent.name} · {p.stem}" for p in images})
    sections.append(Section("Minimal images", "minimal", figures=minimal, size="small", more=more))
    page = OutputPage("minimal", f"Minimal images of {summary.get('model', 'the model')}",
                      f"{_count(summary.get('processed'), 'image')} of {summary.get('data', '?')}",
                      "summary.csv and summary.json",
                      [("Model", fmt(summary.get("model"))), ("Images", fmt(summary.get("processed"))),
                       ("Regions per image", fmt(summary.get("mean_regions"), 1)),
                       ("Regions kept", fmt(summary.get("mean_regions_kept"), 1)),
                       ("Pixels kept", f"{100 * float(summary.get('mean_pixel_fraction') or 0):.1f}%"),
                       ("Fill", fmt(summary.get("fill")))], [], sections)
    return write_page(page, out)


def rf_page(out: Path) -> Path:
    """``out/report.html`` of an ``rf --empirical`` run: theoretical against empirical size per layer, the size
    chart and every unit's averaged discrepancy map."""
    out = Path(out)
    found = _read_json(out / "rf.json")
    layers: dict[str, Any] = found.get("layers") or {}
    rows = []
    for name, layer in layers.items():
        theory, empirical = layer.get("theoretical") or {}, layer.get("empirical") or {}
        rows.append([name, fmt(theory.get("size")), fmt(theory.get("stride")), fmt(empirical.get("mean"), 1),
                     fmt(empirical.get("std"), 1), fmt(empirical.get("units")), fmt(empirical.get("dead_units"))])
    table = Table((Column("layer"), Column("theoretical size (px)", True), Column("stride", True),
                   Column("empirical size (px)", True), Column("std", True), Column("units", True),
                   Column("dead units", True)), rows, role="fields")
    chart = [Figure("rf.png", "theoretical against empirical size")] if (out / "rf.png").is_file() else []
    sections = [Section("Theoretical and empirical fields", "fields", "Empirical size: the side of the square "
                        "with the area where a unit's averaged discrepancy map reaches its threshold share of the "
                        "maximum (Zhou et al. §3.2).", tables=[table], figures=chart, size="wide")]
    for name, layer in layers.items():
        sizes = layer.get("units") or {}
        maps = sorted((out / name).glob("unit_*.png"), key=lambda p: int(p.stem.split("_")[1]))
        captions = {p.stem: f"unit {p.stem.split('_')[1]} · {fmt(sizes.get(p.stem.split('_')[1]), 1)} px"
                    for p in maps}
        figures, more = _figures(out, maps, captions)
        sections.append(Section(f"{name}: averaged discrepancy maps", f"layer-{name}",
                                "Re-centred on each unit's peak and averaged over its top images (brighter = a "
                                "larger change of the activation when that spot is occluded).", figures=figures,
                                size="small", more=more))
    settings = found.get("settings") or {}
    page = OutputPage("rf", f"Receptive fields of {found.get('model', 'the model')}",
                      f"Measured by occlusion on {found.get('n_images', '?')} images of {found.get('data', '?')}",
                      "rf.json and rf.csv",
                      [("Model", fmt(found.get("model"))), ("Probe images", fmt(found.get("n_images"))),
                       ("Occluder", f"{settings.get('patch', '?')} px, stride {settings.get('stride', '?')}, "
                                    f"{settings.get('fill', '?')}"),
                       ("Top images per unit", fmt(settings.get("topk")))], [], sections)
    return write_page(page, out)
