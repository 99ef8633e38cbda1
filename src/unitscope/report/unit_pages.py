"""A page per unit (``RUN/units/<layer>/<unit>.html``): every top image with its region (one JPEG per unit).

The page answers "why this label?": the top 5 concepts with IoU and the margin to the next one (a label that
contradicts its images, boat 0.113 over stove 0.101, shows its runner-up), the threshold, the top
activations, the unit's activation histogram over the whole probe set with the threshold marked (when the run
counted it; also written as ``<unit>/histogram.svg``), and the empirical field size when the report was given
an ``rf --empirical`` run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from unitscope.data.probe import Concept
from unitscope.dissection.result import DissectionResult, layer_dirname
from unitscope.errors import UsageError
from unitscope.report.histogram import histogram_svg
from unitscope.report.html import report_environment, write_html
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
    ranked = _ConceptRanking.of(result, layer, np.array([unit]), k)
    return [] if ranked is None else ranked.scores(0)


@dataclass(frozen=True)
class _ConceptRanking:
    """Each unit's ``k + 1`` best concepts, ranked for many units in one stable sort (not one sort a page)."""

    concepts: list[Concept]  # by label number
    values: np.ndarray  # [U, k + 1] float64: the IoU of each ranked concept
    order: np.ndarray  # [U, k + 1] concept positions, best first
    k: int

    @classmethod
    def of(cls, result: DissectionResult, layer: str, units: np.ndarray | slice, k: int) -> _ConceptRanking | None:
        """The ranking of ``units`` (rows of the layer's IoU), or None without an IoU matrix or concepts."""
        iou = result.layers[layer].iou
        if iou is None or not result.concepts.concepts:
            return None
        concepts = sorted(result.concepts.concepts, key=lambda c: c.number)
        values = np.asarray(iou[units, :][:, [c.number for c in concepts]], dtype=np.float64)
        order = np.argsort(-values, axis=1, kind="stable")[:, : k + 1]
        return cls(concepts, np.take_along_axis(values, order, axis=1), order, k)

    def scores(self, row: int) -> list[ConceptScore]:
        """The concept table of ranking row ``row``: IoU and margin to the next concept (0 after the last)."""
        values = self.values[row].tolist()
        order = self.order[row].tolist()
        rows = []
        for position, index in enumerate(order[: self.k]):
            following = values[position + 1] if position + 1 < len(order) else 0.0
            concept = self.concepts[index]
            rows.append(ConceptScore(concept.name, concept.category, values[position], values[position] - following))
        return rows


def unit_histogram(result: DissectionResult, layer: str, unit: int, row: pd.Series | None = None) -> str:
    """The unit's activation histogram as SVG markup, or "" when the run did not count one (older runs).

    ``row``: the unit's row of ``units.csv`` when the caller has it.
    """
    found = result.layers[layer]
    if found.histogram is None or unit >= len(found.histogram):
        return ""
    row = found.units.set_index("unit").loc[unit] if row is None else row
    return _histogram_markup(found.histogram[unit], bin_edges(), row, result.record.setting("quantile", 0.005))


def _histogram_markup(counts: np.ndarray, edges: np.ndarray, row: Mapping[str, object] | pd.Series,
                      quantile: object) -> str:
    """One unit's histogram SVG from its counts and its ``units.csv`` row (peak left out when unreadable)."""
    try:
        peak: float | None = float(row["max_activation"])  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        peak = None
    return histogram_svg(counts, edges, float(row["threshold"]), peak, quantile)  # type: ignore[arg-type]


def _finite(row: Mapping[str, object] | pd.Series, column: str) -> float | None:
    """A number from a units table cell, None when absent or empty (units.csv keeps NaN as "")."""
    try:
        number = float(row.get(column))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def confidence_texts(row: Mapping[str, object] | pd.Series) -> tuple[str, str]:
    """The q-value and label stability of a unit as the report's card and the unit's page both show them
    ("" where the run recorded none)."""
    q_value, stability = _finite(row, "q_value"), _finite(row, "stability")
    return ("" if q_value is None else f"{q_value:.2g}", "" if stability is None else f"{100 * stability:.0f}%")


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


def _from_page(path: str) -> str:
    """A path relative to the run (``units/<layer>/…``) as a unit page links it (pages sit in ``units/<layer>/``)."""
    return path.split("/", 2)[2]


class TopImage(NamedTuple):
    """One of a unit's top images, as its page lists it."""

    image: int
    score: float


class LayerPages:
    """Writes a layer's unit pages from data gathered once per layer.

    Per unit, filtering ``top_images.csv`` and indexing ``units.csv`` with pandas, ranking the concepts and
    looking the template up cost ~2 of a page's ~3 CPU ms (ResNet-18 layer4); here the units' rows become
    plain dicts, the top images one stable group-by, the concepts one sort over all ``units`` (default: every
    unit of the layer; pages of others rank theirs alone), so a page costs its histogram, its render and its
    two files. Pages are byte-identical to those of the per-unit path (``tests/test_unit_pages.py``).
    """

    def __init__(self, result: DissectionResult, layer: str, environment: jinja2.Environment | None = None,
                 units: Sequence[int] | None = None) -> None:
        found = result.layers[layer]
        self.result, self.layer = result, layer
        self.model, self.data = result.record.model, result.record.data
        self.quantile = result.record.setting("quantile", 0.005)
        self.template = (environment or report_environment()).get_template(TEMPLATE)
        indexed = found.units.set_index("unit")
        # to_numpy widens each row to the one dtype that .loc[unit] gives a row (floats stay floats, ints in
        # an all-number table become floats): the page shows the same str() of every value
        columns = list(indexed.columns)
        self.rows: dict[int, dict[str, object]] = {
            unit: dict(zip(columns, values, strict=True))
            for unit, values in zip(indexed.index.tolist(), indexed.to_numpy().tolist(), strict=True)
        }
        top = found.top_images
        of_unit = top["unit"].to_numpy()
        grouped = np.argsort(of_unit, kind="stable")  # each unit's rows in file order, as a boolean mask keeps them
        keys, starts, counts = np.unique(of_unit[grouped], return_index=True, return_counts=True)
        self.top_rows = {key: grouped[s:s + n] for key, s, n in zip(keys.tolist(), starts, counts, strict=True)}
        self.ranks = top["rank"].to_numpy()
        self.missing_rank = np.asarray(pd.isna(self.ranks))
        self.images, self.scores = top["image"].to_numpy(), top["score"].to_numpy()
        self.histogram = found.histogram
        self.edges = bin_edges() if found.histogram is not None else None
        ranked = slice(None) if units is None else np.asarray(units, dtype=np.int64)
        self.ranking = _ConceptRanking.of(result, layer, ranked, TOP_CONCEPTS)
        self.ranking_row = None if units is None else {int(u): i for i, u in enumerate(units)}

    def top_images(self, unit: int) -> list[TopImage]:
        """The unit's top images by rank, as ``sort_values("rank")`` orders them (quicksort, missing last)."""
        rows = self.top_rows.get(unit)
        if rows is None:
            return []
        ranks, missing = self.ranks[rows], self.missing_rank[rows]
        if missing.any():
            kept = np.flatnonzero(~missing)
            order = np.concatenate([kept[np.argsort(ranks[kept], kind="quicksort")], np.flatnonzero(missing)])
        else:
            order = np.argsort(ranks, kind="quicksort")
        rows = rows[order]
        return [TopImage(i, s) for i, s in zip(self.images[rows].tolist(), self.scores[rows].tolist(), strict=True)]

    def histogram_markup(self, unit: int, row: Mapping[str, object]) -> str:
        """The unit's histogram SVG, "" when the run counted none (see :func:`unit_histogram`)."""
        if self.histogram is None or self.edges is None or unit >= len(self.histogram):
            return ""
        return _histogram_markup(self.histogram[unit], self.edges, row, self.quantile)

    def write(self, directory: Path, unit: int, shown: int, field_text: str = "",
              cell: tuple[int, int] = (128, 128), png: bool = False) -> Path:
        """Write the unit's page under ``directory/units/<layer>/``, showing its first ``shown`` top images
        (see :func:`write_unit_page`)."""
        page = directory / unit_page_path(self.layer, unit)
        images_dir = page.with_suffix("")
        images_dir.mkdir(parents=True, exist_ok=True)
        rows = self.top_images(unit)
        sprite = _from_page(unit_sprite_path(self.layer, unit))
        images = [{"src": sprite, "href": _from_page(unit_png_path(self.layer, unit, rank)) if png else sprite,
                   "image": int(row.image), "score": f"{row.score:.3g}", **cell_style(rank, shown, cell)}
                  for rank, row in enumerate(rows[:shown])]
        row = self.rows[unit]
        histogram = self.histogram_markup(unit, row)
        if histogram:
            (images_dir / "histogram.svg").write_text(histogram, encoding="utf-8")
        scores = [float(top.score) for top in rows]
        label = str(row.get("label", "") or "")
        q_text, stability_text = confidence_texts(row) if label else ("", "")
        iou = _finite(row, "iou") if label else None
        context = {
            "layer": self.layer,
            "unit": unit,
            "label": label,
            "category": str(row.get("category", "") or ""),
            "detector": bool(row.get("detector", False)),
            "not_significant": bool(row.get("iou_detector", False)) and not bool(row.get("detector", False)),
            "iou": "" if iou is None else f"{iou:.3f}",
            "q_text": q_text,
            "stability_text": stability_text,
            "threshold": f"{float(row['threshold']):.4g}",  # type: ignore[arg-type]
            "quantile": self.quantile,
            "concepts": [{"name": c.name, "category": c.category, "iou": f"{c.iou:.3f}", "margin": f"{c.margin:.3f}"}
                         for c in self.concepts(unit)],
            "scores": [f"{s:.3g}" for s in scores],
            "field": field_text,
            "histogram": Markup(histogram),  # our own markup: numbers and escaped text only
            "histogram_src": f"{images_dir.name}/histogram.svg" if histogram else "",
            "images": images,
            "model": self.model,
            "data": self.data,
        }
        return write_html(self.template.render(**context), page)

    def concepts(self, unit: int) -> list[ConceptScore]:
        """The unit's top concepts (see :func:`top_concepts`)."""
        if self.ranking is None:
            return []
        row = unit if self.ranking_row is None else self.ranking_row.get(unit)
        return top_concepts(self.result, self.layer, unit) if row is None else self.ranking.scores(row)


def write_unit_page(result: DissectionResult, directory: Path, layer: str, unit: int, shown: int,
                    field_text: str = "", environment: jinja2.Environment | None = None,
                    cell: tuple[int, int] = (128, 128), png: bool = False) -> Path:
    """Write one unit's page under ``directory/units/<layer>/``, showing its first ``shown`` top images.

    The images are the cells (of size ``cell``, h × w) of the unit's sprite (:func:`unit_sprite_path`),
    which the report writes as it draws them; with ``png`` each figure links its PNG file. ``environment``:
    one jinja environment for all pages (see :func:`~unitscope.report.html.render_template`). Gathers the whole
    layer's data for one page: to write many, make one :class:`LayerPages` per layer.
    """
    return LayerPages(result, layer, environment).write(directory, unit, shown, field_text, cell, png)
