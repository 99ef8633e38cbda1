"""The dissection report: one self-contained HTML page per run (``RUN/report.html``).

Header with the run's settings, an overview of all layers, then per layer Network Dissection's
category table, the detectors-per-concept chart and a gallery of unit cards (detectors first, by IoU;
by peak activation when the probe set has no labels), each showing where the unit fires in its top images:
by default the paper's unit segmentation (the union of receptive-field squares around the positions above
the unit's threshold), or on request the thresholded activation map itself (``ReportOptions.regions``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import SupportsFloat

import numpy as np
import pandas as pd

from unitscope.data.probe import ProbeSet
from unitscope.dissection.confidence import NO_INTERVAL, interval_text
from unitscope.dissection.phases import phase_lines
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.dissection.threads import available_cores, intra_op_threads, threads_for_small_ops
from unitscope.errors import UsageError
from unitscope.report.figures import UNKNOWN_COLOR, category_colors, plot_detector_counts
from unitscope.report.html import (
    figure_css_width,
    figure_data_uri,
    image_data_uri,
    render_template,
    report_environment,
    write_html,
)
from unitscope.report.image_files import ImageWriter
from unitscope.report.outlines import OutlineStyle, tile_images
from unitscope.report.regions import check_field_sizes, check_region_rule
from unitscope.report.sprites import SpriteWriter, unit_rounds
from unitscope.report.unit_images import (
    LayerRequest,
    ModelSource,
    RegionRenderer,
    ThumbnailCache,
    UnitKey,
    layer_request,
    renderer_for,
)
from unitscope.report.unit_pages import LayerPages, confidence_texts, unit_page_path

TEMPLATE = "dissection.html"
TILES_PER_ROUND = 768  # tiles held at once while drawing a report on disk (~50 MB at 128 px)
THUMBNAILS_KEPT = 1024  # decoded images kept between rounds (~130 MB at 128 px, if that many are shown)
MAX_SKIPPED_LISTED = 20


@dataclass(frozen=True)
class ReportOptions:
    """How much the page shows and how: units per layer, images per unit, thumbnail side, chart concepts.

    ``regions``: ``"activation"`` (default: the upsampled map cut at the threshold, the region that entered
    the IoU) or ``"field"`` (the paper's unit segmentation through receptive fields: each layer's empirical
    side from ``field_sizes`` — see ``unitscope rf --empirical`` — or, without it, the theoretical one,
    which at deep layers covers most of the image). ``unit_field_sizes``: each unit's empirical side per layer
    (shown on its page), from the same ``rf --empirical`` run.
    """

    max_units: int | None = None  # None: every unit
    images_per_unit: int = 4
    thumbnail: int = 128
    max_concepts: int = 40
    batch_size: int = 32
    regions: str = "activation"
    field_sizes: Mapping[str, float] | None = None
    unit_field_sizes: Mapping[str, Mapping[int, float]] | None = None
    image_threads: int | None = None  # None: image_files.default_threads()
    png: bool = False  # also every top image as a lossless PNG file (for papers), beside the page's JPEG sprite

    def validate(self) -> None:
        for name in ("max_units", "images_per_unit", "max_concepts", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"report option {name} must be at least 1, got {getattr(self, name)}")
        if self.thumbnail < 8:
            raise UsageError(f"report thumbnail must be at least 8 pixels, got {self.thumbnail}")
        check_region_rule(self.regions)
        check_field_sizes(self.field_sizes)


def is_labelled(units: pd.DataFrame) -> bool:
    """Whether units carry concept labels (a run on a plain image folder has none)."""
    if "iou" not in units or "label" not in units:
        return False
    return bool(units["iou"].notna().any() and (units["label"].astype(str) != "").any())


def peak_activations(layer: LayerResult) -> pd.Series:
    """Each unit's largest activation over the probe set (``max_activation``, else its best top image)."""
    if "max_activation" in layer.units:
        return pd.Series(layer.units["max_activation"].to_numpy(float), index=layer.units["unit"])
    best = layer.top_images[layer.top_images["rank"] == 0].set_index("unit")["score"]
    return best.reindex(layer.units["unit"]).fillna(0.0)


def gallery_units(layer: LayerResult, max_units: int | None) -> list[int]:
    """Units to show: detectors first by IoU, then the rest by IoU; by peak activation when unlabelled."""
    units = layer.units
    if is_labelled(units):
        frame = pd.DataFrame({"unit": units["unit"], "detector": units["detector"].astype(bool),
                              "iou": units["iou"].fillna(-1.0)})
        frame = frame.sort_values(["detector", "iou", "unit"], ascending=[False, False, True], kind="stable")
    else:
        peaks = peak_activations(layer)
        frame = pd.DataFrame({"unit": peaks.index, "peak": peaks.to_numpy()})
        frame = frame.sort_values(["peak", "unit"], ascending=[False, True], kind="stable")
    return [int(u) for u in (frame["unit"] if max_units is None else frame["unit"].head(max_units))]


def _finite(row: pd.Series, column: str) -> float | None:
    """A number from a units table cell, None when absent or empty (units.csv keeps NaN as "")."""
    value = row.get(column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _number(value: SupportsFloat | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _card(row: pd.Series, unit: int, image: str, colors: dict[str, str], categories: tuple[str, ...],
          peak: float, labelled: bool) -> dict[str, object]:
    label = str(row.get("label", "") or "")
    category = str(row.get("category", "") or "")
    found = _finite(row, "iou") if labelled else None
    iou = float("nan") if found is None else found
    q_text, stability_text = confidence_texts(row) if labelled else ("", "")
    alternatives = [
        f"{c}: {row[f'{c}_label']} ({float(row[f'{c}_iou']):.3f})"
        for c in categories if f"{c}_label" in row.index and str(row[f"{c}_label"])
    ]
    return {
        "unit": unit,
        "label": label if labelled else "",
        "category": category if labelled else "",
        "color": colors.get(category, UNKNOWN_COLOR),
        "iou": iou if math.isfinite(iou) else -1.0,
        "iou_text": _number(iou),
        "detector": bool(row.get("detector", False)) and labelled,
        # NetDissect would call it a detector, but its label is not significant at --fdr: marked on the card.
        "not_significant": bool(row.get("iou_detector", False)) and not bool(row.get("detector", False)),
        "q_text": q_text,
        "stability_text": stability_text,
        "peak": peak,
        "peak_text": f"{peak:.3g}",
        "threshold_text": f"{float(row['threshold']):.3g}",
        "alternatives": "\n".join(alternatives),
        "image": image,
        "link": "",
    }


def _field_text(renderer: RegionRenderer, name: str) -> str:
    """How one layer's regions were drawn, for its heading ("" under the activation rule)."""
    if name in renderer.fallbacks:
        return "regions: activation map (receptive field unknown)"
    used = renderer.fields_used.get(name)
    return f"{used.source} field {used.side:.3g} px" if used is not None else ""


def region_sentence(renderer: RegionRenderer, quantile: object) -> str:
    """One sentence stating the rule behind every outlined region on the page."""
    if renderer.regions == "activation":
        return (f"Outlined: where the unit's activation, upsampled as in the run ({renderer.upsample}), exceeds "
                f"its top-{quantile} threshold; the rest of each image is dimmed.")
    sources = sorted({u.source for u in renderer.fields_used.values()}) or ["theoretical"]
    sentence = (f"Outlined: the unit segmentation of Zhou et al. (2015) — the union of {' or '.join(sources)} "
                f"receptive-field squares centred on the positions where the unit's activation exceeds its "
                f"top-{quantile} threshold; the rest of each image is dimmed.")
    if "theoretical" in sources:
        sentence += (" Theoretical fields are far larger than where units actually respond (Zhou et al., §3.2); "
                     "empirical sizes measured by \"unitscope rf --empirical\" give tighter regions.")
    if renderer.fallbacks:
        sentence += (f" Layers {', '.join(renderer.fallbacks)} show the upsampled activation instead: "
                     f"{next(iter(renderer.fallbacks.values()))}.")
    if renderer.oversized:
        sentence += (f" The receptive fields of {', '.join(renderer.oversized)} are larger than the image, so "
                     "their regions cover most or all of it.")
    return sentence


def _layer_section(result: DissectionResult, name: str, cards: list[dict[str, object]],
                   options: ReportOptions, field_text: str = "") -> dict[str, object]:
    layer = result.layers[name]
    labelled = is_labelled(layer.units)
    rows = layer.table.to_dict(orient="records") if labelled else []
    chart = None
    if labelled:
        figure = plot_detector_counts(result, name, max_concepts=options.max_concepts, titles=False)
        chart = {"uri": figure_data_uri(figure), "width": figure_css_width(figure)}
    detectors = int(layer.units["detector"].astype(bool).sum()) if labelled else 0
    iou_only = int(layer.units["iou_detector"].astype(bool).sum()) if labelled and "iou_detector" in layer.units \
        else None
    recorded = result.record.baseline
    baseline = recorded.get("layers", {}).get(name) if isinstance(recorded, dict) else None
    return {
        "control": control_summary(result, name),
        "iou_detectors": iou_only,
        "detectors_ci": interval_text(layer.intervals.get("detectors_ci"))
        or (NO_INTERVAL if layer.intervals.get("resamples") == 0 else ""),
        "baseline": baseline["table"][-1] if baseline else None,
        "name": name,
        "anchor": "layer-" + "".join(ch if ch.isalnum() else "-" for ch in name),
        "path": layer.path,
        "units": layer.shape[0],
        "map_size": f"{layer.shape[1]}×{layer.shape[2]}",
        "field": field_text,
        "labelled": labelled,
        "detectors": detectors,
        "unique": int(layer.units.loc[layer.units["detector"].astype(bool), "label"].nunique()) if labelled else 0,
        "table": [{"category": str(r["category"]), "detectors": int(r["detectors"]), "unique": int(r["unique"]),
                   "total": r["category"] == "total"} for r in rows],
        "chart": chart,
        "cards": cards,
        "shown": len(cards),
        "categories": sorted({str(c["category"]) for c in cards if c["category"]}),
    }


def control_summary(result: DissectionResult, name: str) -> dict[str, object] | None:
    """One layer's colour control for the page: survivors beside detectors, and a sentence saying how many
    object detectors are colour filters (None when the run had no control)."""
    recorded = result.record.control
    counts = recorded.get("layers", {}).get(name) if isinstance(recorded, dict) else None
    if not isinstance(counts, dict):
        return None
    objects = counts.get("categories", {}).get("object", {})
    found, kept = int(objects.get("detectors", 0)), int(objects.get("survive_control", 0))
    iou = result.record.setting("iou_threshold", 0.04)
    if found:
        lost = found - kept
        sentence = (f"Colour control: of {found} object detector{'s' if found != 1 else ''}, {kept} still "
                    f"detect{'s' if kept == 1 else ''} {'its' if kept == 1 else 'their'} object when every class is "
                    f"painted from one palette; {lost} {'is a colour filter' if lost == 1 else 'are colour filters'} "
                    f"by this test (IoU below {iou} or no longer significant on the recoloured twin).")
    else:
        sentence = "Colour control: this layer has no object detectors to test."
    baseline = result.record.baseline
    theirs = baseline.get("control", {}).get("layers", {}).get(name) if isinstance(baseline, dict) else None
    if isinstance(theirs, dict):
        random_objects = theirs.get("categories", {}).get("object", {})
        sentence += (f" Random weights: {random_objects.get('survive_control', 0)} of "
                     f"{random_objects.get('detectors', 0)} object detectors survive.")
    return {
        "detectors": int(counts.get("detectors", 0)),
        "survive": int(counts.get("survive_control", 0)),
        "ci": interval_text(counts.get("survive_ci")),
        "random": theirs.get("survive_control") if isinstance(theirs, dict) else None,
        "sentence": sentence,
    }


def _header(result: DissectionResult, probe: ProbeSet) -> dict[str, object]:
    record = result.record
    settings = record.settings
    skipped = record.skipped
    return {
        "model": record.model,
        "data": record.data,
        "n_images": record.n_images,
        "image_size": "×".join(str(s) for s in record.image_size),
        "label_size": "×".join(str(s) for s in record.label_size),
        "input_size": "×".join(str(s) for s in record.input_size),
        "quantile": settings.get("quantile", "–"),
        "iou_threshold": settings.get("iou_threshold", "–"),
        "fdr": settings.get("fdr"),
        "warnings": list(record.warnings),
        "upsample": settings.get("upsample", "–"),
        "topk": settings.get("topk", "–"),
        "seconds": record.seconds,
        "phases": phase_lines(record.phases),
        "skipped_count": len(skipped),
        "skipped": [{"index": k, "message": v} for k, v in list(skipped.items())[:MAX_SKIPPED_LISTED]],
        "skipped_more": max(0, len(skipped) - MAX_SKIPPED_LISTED),
    }


def _unit_field_text(renderer: RegionRenderer, options: ReportOptions, name: str, unit: int) -> str:
    """A unit page's field line: its own empirical field size when known, and how its regions were drawn."""
    parts = []
    own = (options.unit_field_sizes or {}).get(name, {}).get(unit)
    if own is not None:
        parts.append(f"empirical field {own:.3g} px")
    layer_mean = (options.field_sizes or {}).get(name)
    if layer_mean is not None:
        parts.append(f"layer mean empirical field {layer_mean:.3g} px")
    drawn = _field_text(renderer, name)
    if drawn and not drawn.startswith("empirical"):
        parts.append(drawn)
    return " · ".join(parts)


def build_report(result: DissectionResult, probe: ProbeSet, model: ModelSource,
                 options: ReportOptions | None = None, directory: Path | None = None) -> str:
    """The whole page as an HTML string; with ``directory``, also a page and PNG files per unit there.

    ``model`` may be a loader: runs that stored their top maps draw without it unless a layer lacks them.
    """
    started = time.perf_counter()
    options = options or ReportOptions()
    options.validate()
    if not result.layers:
        raise UsageError("the dissection holds no layers; nothing to report")
    categories = tuple(result.concepts.categories)
    colors = category_colors(categories)
    shown = {name: gallery_units(layer, options.max_units) for name, layer in result.layers.items()}
    requests: dict[str, LayerRequest] = {
        name: layer_request(result, name, units, _kept_images(result, name, options, directory))
        for name, units in shown.items()
    }
    style = OutlineStyle(max_side=options.thumbnail)
    renderer = renderer_for(result, model, probe, options.batch_size, style, options.regions, options.field_sizes)
    sections = []
    environment = report_environment()
    with ImageWriter(options.image_threads) as files:
        with intra_op_threads(threads_for_small_ops(available_cores())):
            tiles = _draw(renderer, requests, options.images_per_unit, directory, files, options.png)
        for name, units in shown.items():
            layer = result.layers[name]
            labelled = is_labelled(layer.units)
            peaks = peak_activations(layer)
            rows = layer.units.set_index("unit")
            pages: LayerPages | None = None  # made for the layer's first page
            cards = []
            for u in units:
                strip = tiles.cards.get((name, u))
                if strip is None:  # no top images
                    continue
                card = _card(rows.loc[u], u, strip, colors, categories, float(peaks.loc[u]), labelled)
                if isinstance(tiles, SpriteWriter):  # a report on disk: a page per unit
                    pages = pages or LayerPages(result, name, environment, units)
                    pages.write(tiles.directory, u, len(requests[name].images[u]),
                                _unit_field_text(renderer, options, name, u), tiles.cells[(name, u)], options.png)
                    card["link"] = unit_page_path(name, u)
                cards.append(card)
            sections.append(_layer_section(result, name, cards, options, _field_text(renderer, name)))
    legend = [{"name": c, "color": colors[c]} for c in categories]
    header = _header(result, probe)
    header["regions"] = region_sentence(renderer, header["quantile"])
    return render_template(
        TEMPLATE,
        environment,
        header=header,
        layers=sections,
        legend=legend,
        colors=colors,
        options=options,
        written=datetime.now().strftime("%Y-%m-%d %H:%M"),
        report_seconds=f"{time.perf_counter() - started:.1f}",
    )


def _draw(renderer: RegionRenderer, requests: Mapping[str, LayerRequest], per_card: int, directory: Path | None,
          files: ImageWriter, png: bool = False) -> _CardStrips | SpriteWriter:
    """Draw every requested tile; the sink that holds what the cards show.

    On disk: each unit's sprite and card strip, units drawn in rounds of about ``TILES_PER_ROUND`` tiles
    (what a round holds in memory) with the images' thumbnails kept between rounds, so each image is
    decoded once when ``THUMBNAILS_KEPT`` covers them. In memory only: the cards' strips, embedded.
    """
    if directory is None:
        cards = _CardStrips(requests, per_card)
        renderer.render_each(requests, cards)
        return cards
    sprites = SpriteWriter(requests, per_card, directory, files, png)
    renderer.thumbnails = ThumbnailCache(THUMBNAILS_KEPT)
    for chunk in unit_rounds(requests, TILES_PER_ROUND):
        renderer.render_each(chunk, sprites, packed=True)
    return sprites


class _CardStrips:
    """The renderer's tile sink for a page without files: each card's first few tiles, as an embedded JPEG."""

    def __init__(self, requests: Mapping[str, LayerRequest], per_card: int) -> None:
        self.need = {(name, int(u)): min(len(images), per_card)
                     for name, request in requests.items() for u, images in request.images.items()}
        self.partial: dict[UnitKey, dict[int, np.ndarray]] = {}
        self.cards: dict[UnitKey, str] = {}

    def __call__(self, key: UnitKey, slot: int, tile: np.ndarray) -> None:
        need = self.need[key]
        if slot >= need:
            return
        parts = self.partial.setdefault(key, {})
        parts[slot] = tile.copy()  # not a view that keeps the renderer's whole stack alive
        if len(parts) == need:
            del self.partial[key]
            self.cards[key] = image_data_uri(tile_images([parts[i] for i in range(need)]), "jpeg")


def _kept_images(result: DissectionResult, layer: str, options: ReportOptions, directory: Path | None) -> int:
    """Images to draw per unit: every kept top image when unit pages are written, else the card's few."""
    if directory is None:
        return options.images_per_unit
    top = result.layers[layer].top_images
    kept = int(top["rank"].max()) + 1 if len(top) else 1
    return max(kept, options.images_per_unit)


def write_dissection_report(result: DissectionResult, probe: ProbeSet, directory: Path, model: ModelSource,
                            options: ReportOptions | None = None) -> Path:
    """Write ``directory/report.html`` for a finished dissection and return its path."""
    return write_html(build_report(result, probe, model, options, Path(directory)), Path(directory) / "report.html")
