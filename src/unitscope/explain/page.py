"""A standalone HTML page of a layer's formulas, and a snippet per unit for the dissection report.

The page is ``report/templates/explain.html`` on the shared base (one look for every page); it embeds its
style and pictures and needs no other file. It leads with the verdict (how many units' held-out
gains beat the random twin's, or that none does) and the run's warnings. ``formula_snippet`` renders one
unit's formula beside its single-concept label, for a unit card of another report; ``load_formulas``
reads an ``explain`` output directory for that.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from unitscope.errors import UsageError
from unitscope.report.html import render_template, write_html

_SNIPPET = """\
<div class="formula" title="{{ title }}">
  <span class="f">{{ formula_html }}</span> <span class="v">{{ '%.3f' % iou }}</span>
  <span class="s">{{ 'held-out · ' if heldout else '' }}single: {{ single }} {{ '%.3f' % single_iou }}
  · gain {{ '%+.3f' % gain }}{% if q_text %} · {{ 'significant' if significant else 'not significant' }}
  against the random twin (q {{ q_text }}){% endif %}</span>
</div>"""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def formula_markup(formula: str) -> str:
    """The formula as escaped HTML with its operators highlighted."""
    escaped = html.escape(formula)
    return re.sub(r"\b(AND|OR|NOT)\b", r'<span class="op">\1</span>', escaped)


def _row(row: Mapping[str, object]) -> dict[str, object]:
    """A row of ``formulas.csv`` for the templates: held-out numbers, or an older output's (one search and its
    scores on every image: iou, single_iou, gain)."""
    def number(*keys: str) -> float:
        for key in keys:
            value = str(row.get(key, ""))
            if value not in ("", "nan"):
                return float(value)
        return float("nan")

    def text(value: float) -> str:
        return f"{value:.3g}" if np.isfinite(value) else ""

    return {"unit": int(number("unit")), "formula_html": markupsafe.Markup(formula_markup(str(row["formula"]))),
            "heldout": "heldout_iou" in row, "fit_iou": number("fit_iou", "iou"),
            "iou": number("heldout_iou", "iou"), "single": str(row["single_label"]),
            "single_iou": number("heldout_single_iou", "single_iou"), "gain": number("heldout_gain", "gain"),
            "p_text": text(number("p_value")), "q_text": text(number("q_value")),
            "significant": str(row.get("significant", "")).lower() in ("true", "1")}


def formula_snippet(row: Mapping[str, object]) -> str:
    """An HTML fragment for one unit (a row of ``formulas.csv``), to place in a unit card of a report."""
    values = _row(row)
    title = ("best formula by IoU (beam search, chosen on the fit images, scored on the held-out ones), against "
             "the best single concept" if values["heldout"] else
             "best formula by IoU (beam search), against the best single concept")
    return _environment().from_string(_SNIPPET).render(title=title, **values)


def render_explain_page(formulas: pd.DataFrame, summary: Mapping[str, object],
                        pictures: Mapping[int, str] | None = None) -> str:
    """The standalone page: the verdict, the summary and the null, then every unit, largest held-out gain first
    (``pictures``: unit → data URI)."""
    ordered = formulas.sort_values(["heldout_gain", "unit"], ascending=[False, True])
    pictures = pictures or {}
    rows = [{**_row(r), "picture": pictures.get(int(str(r["unit"])), "")} for r in ordered.to_dict(orient="records")]
    return render_template("explain.html", s=summary, rows=rows)


def write_explain_page(formulas: pd.DataFrame, summary: Mapping[str, object], path: Path,
                       pictures: Mapping[int, str] | None = None) -> Path:
    return write_html(render_explain_page(formulas, summary, pictures), path)


def load_formulas(directory: str | Path) -> pd.DataFrame:
    """``formulas.csv`` of an ``explain`` output directory, for a report to show beside each unit."""
    path = Path(directory) / "formulas.csv"
    if not path.is_file():
        raise UsageError(f"{directory} holds no formulas.csv; run unitscope explain first")
    return pd.read_csv(path, keep_default_na=False)
