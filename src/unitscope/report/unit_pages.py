"""A page per unit (``RUN/units/<layer>/<unit>.html``): every top image with its region, as PNG files too.

The page answers "why this label?": the top 5 concepts with IoU and the margin to the next one (a label that
contradicts its images, boat 0.113 over stove 0.101, shows its runner-up), the threshold, the top
activations, the unit's activation histogram over the whole probe set with the threshold marked (when the run
counted it; also written as ``<unit>/histogram.svg``), and the empirical field size when the report was given
an ``rf --empirical`` run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from unitscope.dissection.result import DissectionResult, layer_dirname
from unitscope.errors import UsageError
from unitscope.report.histogram import histogram_svg
from unitscope.report.html import render_template, write_html
from unitscope.stats.histogram import bin_edges

TEMPLATE = "unit.html"
TOP_CONCEPTS = 5


@dataclass(frozen=True)
class ConceptScore:
    """One row of a unit's concept table."""

    name: str
    category: str
    iou: float
    margin: float  # IoU minus the next concept's IoU


def unit_page_path(layer: str, unit: int) -> str:
    """Where a unit's page lives, relative to the run directory (the report's cards link here)."""
    return f"units/{layer_dirname(layer)}/{unit}.html"


def top_concepts(result: DissectionResult, layer: str, unit: int, k: int = TOP_CONCEPTS) -> list[ConceptScore]:
    """The ``k`` concepts of highest IoU for ``unit`` (ties → lower label number), with margins."""
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


def unit_histogram(result: DissectionResult, layer: str, unit: int, row: pd.Series | None = None) -> str:
    """The unit's activation histogram as SVG markup, or "" when the run did not count one (older runs).

    ``row``: the unit's row of ``units.csv`` when the caller has it.
    """
    found = result.layers[layer]
    if found.histogram is None or unit >= len(found.histogram):
        return ""
    row = found.units.set_index("unit").loc[unit] if row is None else row
    try:
        peak: float | None = float(row["max_activation"])
    except (KeyError, TypeError, ValueError):
        peak = None
    return histogram_svg(found.histogram[unit], bin_edges(), float(row["threshold"]), peak,
                         result.record.setting("quantile", 0.005))


def unit_sprite_path(layer: str, unit: int) -> str:
    """Where a unit's top images (outlined, side by side in one JPEG, see :mod:`unitscope.report.sprites`)
    live, relative to the run directory."""
    return f"units/{layer_dirname(layer)}/{unit}/top.jpg"


def unit_png_path(layer: str, unit: int, rank: int) -> str:
    """Where ``report --png`` puts a unit's ``rank``-th top image (outlined, lossless), relative to the run."""
    return f"units/{layer_dirname(layer)}/{unit}/{rank}.png"


def cell_style(slot: int, count: int, cell: tuple[int, int]) -> dict[str, str]:
    """CSS that shows cell ``slot`` of a ``count``-cell sprite with cells ``cell`` (h, w), at any width."""
    if not 0 <= slot < count:
        raise UsageError(f"cell {slot} is outside a sprite of {count}")
    x = 0.0 if count == 1 else 100 * slot / (count - 1)  # percentages align the cell's edge with the box's
    return {"size": f"{100 * count}% 100%", "position": f"{x:.4g}% 0", "ratio": f"{cell[1]} / {cell[0]}"}


def unit_strip_path(layer: str, unit: int) -> str:
    """Where a unit's card strip (its first top images side by side, JPEG) lives, relative to the run directory."""
    return f"units/{layer_dirname(layer)}/{unit}.jpg"


def write_unit_page(result: DissectionResult, directory: Path, layer: str, unit: int, shown: int,
                    field_text: str = "", environment: jinja2.Environment | None = None,
                    cell: tuple[int, int] = (128, 128), png: bool = False) -> Path:
    """Write one unit's page under ``directory/units/<layer>/``, showing its first ``shown`` top images.

    The images are the cells (of size ``cell``, h × w) of the unit's sprite (:func:`unit_sprite_path`),
    which the report writes as it draws them; with ``png`` each figure links its PNG file. ``environment``:
    one jinja environment for all pages (see :func:`render_template`).
    """
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
    histogram = unit_histogram(result, layer, unit, row)
    if histogram:
        (images_dir / "histogram.svg").write_text(histogram, encoding="utf-8")
    scores = [float(s) for s in rows["score"]]
    context = {
        "layer": layer,
        "unit": unit,
        "label": str(row.get("label", "") or ""),
        "category": str(row.get("category", "") or ""),
        "detector": bool(row.get("detector", False)),
        "threshold": f"{float(row['threshold']):.4g}",
        "quantile": result.record.setting("quantile", 0.005),
        "concepts": [{"name": c.name, "category": c.category, "iou": f"{c.iou:.3f}", "margin": f"{c.margin:.3f}"}
                     for c in top_concepts(result, layer, unit)],
        "scores": [f"{s:.3g}" for s in scores],
        "field": field_text,
        "histogram": Markup(histogram),  # our own markup: numbers and escaped text only
        "histogram_src": f"{images_dir.name}/histogram.svg" if histogram else "",
        "images": images,
        "model": result.record.model,
        "data": result.record.data,
    }
    return write_html(render_template(TEMPLATE, environment, **context), page)
