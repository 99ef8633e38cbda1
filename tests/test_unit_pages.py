"""Unit pages written from one layer's gathered data are byte for byte the pages of the per-unit path.

The reference below is the per-unit implementation as it was before :class:`LayerPages` (pandas filtering
per unit, one concept sort per unit, the histogram's bars from numpy scalars), kept here verbatim.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from html import escape
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup
from planted import PlantedProbe

from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.report import histogram as hist
from unitscope.report.html import render_template, report_environment, write_html
from unitscope.report.unit_pages import (
    ConceptScore,
    LayerPages,
    cell_style,
    top_concepts,
    unit_histogram,
    unit_page_path,
    write_unit_page,
)
from unitscope.stats.histogram import bin_edges

SOURCE = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1))
"""
K = 6


# --- the reference: the per-unit path as it was --------------------------------------------------------------

def reference_histogram_svg(counts: np.ndarray, edges: np.ndarray, threshold: float, peak: float | None = None,
                            quantile: object = "") -> str:
    shown = hist.display_bins(counts, edges, threshold, peak)
    if shown is None:
        return ""
    left, right, top_margin, bottom = hist.LEFT, hist.RIGHT, hist.TOP, hist.BOTTOM
    plot_w, plot_h = hist.WIDTH - left - right, hist.HEIGHT - top_margin - bottom
    top = math.log10(1.0 + float(shown.counts.max()))

    def x(value: float) -> float:
        return left + (value - shown.low) / (shown.high - shown.low) * plot_w

    def y(count: float) -> float:
        return top_margin + plot_h * (1.0 - math.log10(1.0 + count) / top if top > 0 else 1.0)

    step = plot_w / len(shown.counts)
    bars = "".join(
        f'<rect x="{left + i * step:.1f}" y="{y(c):.1f}" width="{step:.2f}" height="{top_margin + plot_h - y(c):.1f}"/>'
        for i, c in enumerate(shown.counts) if c > 0
    )
    ticks = "".join(
        f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top_margin + plot_h}" y2="{top_margin + plot_h + 4}"/>'
        f'<text x="{x(t):.1f}" y="{top_margin + plot_h + 16}" text-anchor="middle">{t:.3g}</text>'
        for t in hist._ticks(shown.low, shown.high)
    )
    decades = "".join(
        f'<text x="{left - 6}" y="{y(10.0 ** d - 1) + 4:.1f}" text-anchor="end">10{hist._superscript(d)}</text>'
        f'<line x1="{left - 3}" x2="{left}" y1="{y(10.0 ** d - 1):.1f}" y2="{y(10.0 ** d - 1):.1f}"/>'
        for d in range(0, int(top) + 1, max(1, int(top) // 4 or 1))
    )
    tx = x(threshold) if math.isfinite(threshold) else None
    share = 100.0 * shown.above / shown.total if shown.total else 0.0
    label = f"threshold {threshold:.3g}" + (f" (top {quantile})" if quantile != "" else "")
    marker = "" if tx is None else (
        f'<line class="thr" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top_margin}" y2="{top_margin + plot_h}"/>'
        f'<text class="thr" x="{min(tx + 4, hist.WIDTH - right - 4):.1f}" y="{top_margin + 10}" '
        f'text-anchor="{"start" if tx < left + plot_w * 0.7 else "end"}">{escape(label)}</text>'
    )
    title = (f"{shown.total} activations from {shown.low:.3g} to {shown.high:.3g}; at least {share:.2f}% "
             f"at or above the threshold")
    width, height = hist.WIDTH, hist.HEIGHT
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11" role="img">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{left}" y="{top_margin}" width="{plot_w}" height="{plot_h}" fill="#f7f8fa"/>'
        f'<g fill="#4a6fa5">{bars}</g>'
        f'<g stroke="#556" fill="#556">{ticks}{decades}</g>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top_margin + plot_h}" y2="{top_margin + plot_h}" stroke="#556"/>'
        f'<g stroke="#c8463d" fill="#c8463d" stroke-dasharray="4 3">{marker}</g>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" fill="#556">activation</text>'
        f'<text x="12" y="{top_margin + plot_h / 2}" text-anchor="middle" fill="#556" '
        f'transform="rotate(-90 12 {top_margin + plot_h / 2})">pixels (log)</text>'
        "</svg>"
    )


def reference_top_concepts(result: DissectionResult, layer: str, unit: int, k: int = 5) -> list[ConceptScore]:
    iou = result.layers[layer].iou
    if iou is None or not result.concepts.concepts:
        return []
    concepts = sorted(result.concepts.concepts, key=lambda c: c.number)
    values = np.array([float(iou[unit, c.number]) for c in concepts])
    order = np.argsort(-values, kind="stable")[: k + 1]
    rows = []
    for position, index in enumerate(order[:k]):
        following = float(values[order[position + 1]]) if position + 1 < len(order) else 0.0
        concept = concepts[int(index)]
        rows.append(ConceptScore(concept.name, concept.category, float(values[index]),
                                 float(values[index]) - following))
    return rows


def reference_unit_histogram(result: DissectionResult, layer: str, unit: int, row: pd.Series) -> str:
    found = result.layers[layer]
    if found.histogram is None or unit >= len(found.histogram):
        return ""
    try:
        peak: float | None = float(row["max_activation"])
    except (KeyError, TypeError, ValueError):
        peak = None
    return reference_histogram_svg(found.histogram[unit], bin_edges(), float(row["threshold"]), peak,
                                   result.record.setting("quantile", 0.005))


def reference_number(row: pd.Series, column: str, form: str) -> str:
    value = pd.to_numeric(row.get(column), errors="coerce")
    return "" if pd.isna(value) or not np.isfinite(value) else form.format(float(value))


def reference_write_unit_page(result: DissectionResult, directory: Path, layer: str, unit: int, shown: int,
                              field_text: str = "", environment: jinja2.Environment | None = None,
                              cell: tuple[int, int] = (128, 128), png: bool = False) -> Path:
    page = directory / unit_page_path(layer, unit)
    images_dir = page.with_suffix("")
    images_dir.mkdir(parents=True, exist_ok=True)
    top = result.layers[layer].top_images
    rows = top[top["unit"] == unit].sort_values("rank")
    sprite = f"{images_dir.name}/top.jpg"
    images = [{"src": sprite, "href": f"{images_dir.name}/{rank}.png" if png else sprite, "image": int(row.image),
               "score": f"{row.score:.3g}", **cell_style(rank, shown, cell)}
              for rank, row in enumerate(rows.head(shown).itertuples())]
    units = result.layers[layer].units.set_index("unit")
    row = units.loc[unit]
    histogram = reference_unit_histogram(result, layer, unit, row)
    if histogram:
        (images_dir / "histogram.svg").write_text(histogram, encoding="utf-8")
    scores = [float(s) for s in rows["score"]]
    label = str(row.get("label", "") or "")
    context = {
        "layer": layer,
        "unit": unit,
        "label": label,
        "category": str(row.get("category", "") or ""),
        "detector": bool(row.get("detector", False)),
        "not_significant": bool(row.get("iou_detector", False)) and not bool(row.get("detector", False)),
        "iou": reference_number(row, "iou", "{:.3f}") if label else "",
        "q_text": reference_number(row, "q_value", "{:.2g}") if label else "",
        "stability_text": reference_number(row, "stability", "{:.0%}") if label else "",
        "threshold": f"{float(row['threshold']):.4g}",
        "quantile": result.record.setting("quantile", 0.005),
        "concepts": [{"name": c.name, "category": c.category, "iou": f"{c.iou:.3f}", "margin": f"{c.margin:.3f}"}
                     for c in reference_top_concepts(result, layer, unit)],
        "scores": [f"{s:.3g}" for s in scores],
        "field": field_text,
        "histogram": Markup(histogram),
        "histogram_src": f"{images_dir.name}/histogram.svg" if histogram else "",
        "images": images,
        "model": result.record.model,
        "data": result.record.data,
    }
    return write_html(render_template("unit.html", environment, **context), page)


# --- the comparison ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DissectionResult:
    folder = tmp_path_factory.mktemp("pages")
    (folder / "net.py").write_text(SOURCE)
    dissect(f"{folder / 'net.py'}:build", ["1", "2"], PlantedProbe(20), folder / "run", progress=False,
            settings=DissectSettings(quantile=0.2, topk=K, bootstrap=0),
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return DissectionResult.load(folder / "run")  # as a report reads it: from the files


def variants(result: DissectionResult) -> dict[str, DissectionResult]:
    """The run as written, and edited copies that reach the corners: missing labels and rows, shuffled top
    images, tied IoUs, no histogram or IoU, a units table without label columns."""
    def each(change: Callable[[LayerResult], LayerResult]) -> DissectionResult:
        return dataclasses.replace(result, layers={name: change(layer) for name, layer in result.layers.items()})

    def messy(layer: LayerResult) -> LayerResult:
        units = layer.units.copy()
        units["label"] = units["label"].astype(object)
        units.loc[0, "label"] = np.nan  # shows as "nan", as the per-unit path shows it
        units.loc[1, "category"] = ""
        units.loc[2, "max_activation"] = np.nan
        units = units.iloc[::-1].reset_index(drop=True)  # rows out of unit order
        top = layer.top_images.sample(frac=1.0, random_state=0)  # rows out of (unit, rank) order
        top = top[~((top["unit"] == 3) & (top["rank"] >= 2))]  # unit 3 keeps two top images
        iou = None if layer.iou is None else layer.iou.copy()
        if iou is not None:
            iou[1, :] = 0.25  # every concept ties: lower label numbers first
            iou[2, 3:] = iou[2, 2]
        return dataclasses.replace(layer, units=units, top_images=top, iou=iou)

    def bare(layer: LayerResult) -> LayerResult:
        units = layer.units[["unit", "threshold", "detector"]].copy()
        return dataclasses.replace(layer, units=units, iou=None, histogram=None)

    def numeric(layer: LayerResult) -> LayerResult:  # a row of numbers only: .loc widens it to float
        units = layer.units[["unit", "threshold", "iou"]].assign(label=7)
        histogram = None if layer.histogram is None else layer.histogram[:2]  # counts for units 0 and 1 only
        return dataclasses.replace(layer, units=units, histogram=histogram)

    return {"as written": result, "messy": each(messy), "bare": each(bare), "numeric": each(numeric)}


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("variant", ["as written", "messy", "bare", "numeric"])
def test_layer_pages_write_the_per_unit_paths_bytes(run: DissectionResult, variant: str, tmp_path: Path) -> None:
    result = variants(run)[variant]
    environment = report_environment()
    for name, layer in result.layers.items():
        pages = LayerPages(result, name, environment)
        some = LayerPages(result, name, environment, units=[2, 0])  # concepts of other units ranked one by one
        for unit in range(layer.shape[0]):
            for shown, field, cell, png in ((K, "", (128, 128), False), (2, "empirical field 31 px", (96, 128), True),
                                            (0, "", (128, 128), False)):
                old, new = tmp_path / f"old-{shown}", tmp_path / f"new-{shown}"
                reference_write_unit_page(result, old, name, unit, shown, field, environment, cell, png)
                written = pages.write(new, unit, shown, field, cell, png)
                assert written == new / unit_page_path(name, unit)
                write_unit_page(result, tmp_path / f"wrapper-{shown}", name, unit, shown, field, cell=cell, png=png)
                some.write(tmp_path / f"some-{shown}", unit, shown, field, cell, png)
    for shown in (K, 2, 0):
        old = files(tmp_path / f"old-{shown}")
        assert old and any(p.endswith(".html") for p in old)
        for way in ("new", "wrapper", "some"):
            assert files(tmp_path / f"{way}-{shown}") == old, way
    has_svg = any(p.endswith("histogram.svg") for p in files(tmp_path / f"old-{K}"))
    assert has_svg == (variant != "bare")


def test_the_public_helpers_agree_with_the_reference(run: DissectionResult) -> None:
    for result in variants(run).values():
        for name, layer in result.layers.items():
            indexed = layer.units.set_index("unit")
            for unit in range(layer.shape[0]):
                for k in (1, 5, 20):
                    assert top_concepts(result, name, unit, k) == reference_top_concepts(result, name, unit, k)
                row = indexed.loc[unit]
                assert unit_histogram(result, name, unit) == reference_unit_histogram(result, name, unit, row)
    tied = variants(run)["messy"]
    assert [c.name for c in top_concepts(tied, "1", 1, 3)] == [c.name for c in sorted(
        tied.concepts.concepts, key=lambda c: c.number)][:3]


def test_histogram_svg_matches_the_reference_on_varied_counts() -> None:
    edges = bin_edges()
    rng = np.random.default_rng(0)
    middle = len(edges) // 2
    for case in range(60):
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        start = middle + int(rng.integers(-400, 400))
        width = int(rng.integers(1, 300))
        filled = counts[start:start + width]
        filled[:] = rng.integers(0, 10 ** int(rng.integers(1, 9)), size=len(filled))
        threshold = [float(edges[start + width // 2]), math.inf, math.nan, -3.0, 1e6][case % 5]
        peak = [None, float(edges[start + width]) * 0.9, math.nan][case % 3]
        quantile = ["", 0.005][case % 2]
        assert hist.histogram_svg(counts, edges, threshold, peak, quantile) == reference_histogram_svg(
            counts, edges, threshold, peak, quantile)
    assert hist.histogram_svg(np.zeros(len(edges) - 1), edges, 1.0) == ""


def test_a_unit_page_shows_the_q_value_and_stability_of_its_card(run: DissectionResult, tmp_path: Path) -> None:
    """The report's card showed q and stability; the unit's own page did not (#25)."""
    layer = next(iter(run.layers))
    units = run.layers[layer].units.copy()
    units["stability"] = 0.875  # the fixture ran without a bootstrap: give every unit a stability to show
    found = dataclasses.replace(run, layers={**run.layers, layer: dataclasses.replace(run.layers[layer], units=units)})
    row = units[units["label"].astype(str) != ""].iloc[0]
    page = LayerPages(found, layer).write(tmp_path, int(row["unit"]), shown=2).read_text()
    assert f'id="q-value">{float(row["q_value"]):.2g}<' in page
    assert 'id="stability">stable in 88% of resamples<' in page
    assert '<meta name="generator" content="unitscope">' in page and 'href="../../report.html"' in page
