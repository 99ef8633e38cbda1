"""A standalone HTML page of a layer's formulas, and a snippet per unit for the dissection report.

The page embeds its style and needs no other file. ``formula_snippet`` renders one unit's formula
beside its single-concept label, for a unit card of another report; ``load_formulas`` reads an
``explain`` output directory for that.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

from unitscope.errors import UsageError

_SNIPPET = """\
<div class="formula" title="best formula by IoU (beam search), against the best single concept">
  <span class="f">{{ formula_html }}</span> <span class="v">{{ '%.3f' % iou }}</span>
  <span class="s">single: {{ single }} {{ '%.3f' % single_iou }} · gain {{ '%+.3f' % gain }}</span>
</div>"""

_PAGE = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>unitscope explain: {{ s.layer }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .25em .6em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; position: sticky; top: 0; } td.n { text-align: right; }
.op { color: #8a2be2; font-weight: 600; } .bar { display: inline-block; height: .7em; background: #4a90d9; }
.bar.s { background: #bbb; } .gain { color: #2a7; } .small { color: #666; }
</style></head><body>
<h1>Compositional explanations — {{ s.layer }}</h1>
<p>{{ s.units }} units of <code>{{ s.run }}</code>, formulas of up to {{ s.length }} concepts
(beam {{ s.beam }}, ops {{ s.ops | join(', ') }}), {{ s.images }} probe images, {{ s.concepts }} concepts.
<b>{{ s.units_gaining }}</b> units gain more than {{ s.gain_threshold }} IoU from composition;
mean IoU {{ '%.3f' % s.mean_single_iou }} (single concept) → {{ '%.3f' % s.mean_iou }} (formula).
{{ s.candidates_scored }} formulas scored in {{ s.seconds }} s.</p>
<p class="small">IoU with Broden's annotated-category rule: a formula covers its concepts' pixels
(NOT c: the pixels without c in images where c's category is annotated), and a unit's active pixels
count only in images where one of the formula's categories is annotated.</p>
<p class="small">Pictures: each unit's most active probe images, twice: where the unit fires
(<span style="color:#b8960a">yellow</span>) and where its formula holds (<span style="color:#1ab">cyan</span>),
at the label resolution the IoU used.</p>
<table><tr><th>unit</th><th>formula</th><th>IoU</th><th>single concept</th><th>IoU</th><th>gain</th>
<th>unit | formula</th></tr>
{% for r in rows %}
<tr><td class="n">{{ r.unit }}</td><td>{{ r.formula_html }}</td>
<td class="n">{{ '%.3f' % r.iou }} <span class="bar" style="width:{{ (r.iou * 200) | round(1) }}px"></span></td>
<td>{{ r.single }}</td>
<td class="n">{{ '%.3f' % r.single_iou }}
<span class="bar s" style="width:{{ (r.single_iou * 200) | round(1) }}px"></span></td>
<td class="n{{ ' gain' if r.gain > s.gain_threshold else '' }}">{{ '%+.3f' % r.gain }}</td>
<td>{% if r.picture %}<img src="{{ r.picture }}" alt="unit {{ r.unit }}">{% endif %}</td></tr>
{% endfor %}
</table></body></html>
"""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def formula_markup(formula: str) -> str:
    """The formula as escaped HTML with its operators highlighted."""
    escaped = html.escape(formula)
    return re.sub(r"\b(AND|OR|NOT)\b", r'<span class="op">\1</span>', escaped)


def _row(row: Mapping[str, object]) -> dict[str, object]:
    def number(key: str) -> float:
        return float(str(row[key]))

    return {"unit": int(number("unit")), "formula_html": markupsafe.Markup(formula_markup(str(row["formula"]))),
            "iou": number("iou"), "single": str(row["single_label"]), "single_iou": number("single_iou"),
            "gain": number("gain")}


def formula_snippet(row: Mapping[str, object]) -> str:
    """An HTML fragment for one unit (a row of ``formulas.csv``), to place in a unit card of a report."""
    return _environment().from_string(_SNIPPET).render(**_row(row))


def render_explain_page(formulas: pd.DataFrame, summary: Mapping[str, object],
                        pictures: Mapping[int, str] | None = None) -> str:
    """The standalone page: the summary, then every unit, largest gain first (``pictures``: unit → data URI)."""
    ordered = formulas.sort_values(["gain", "unit"], ascending=[False, True])
    pictures = pictures or {}
    rows = [{**_row(r), "picture": pictures.get(int(str(r["unit"])), "")} for r in ordered.to_dict(orient="records")]
    return _environment().from_string(_PAGE).render(s=summary, rows=rows)


def write_explain_page(formulas: pd.DataFrame, summary: Mapping[str, object], path: Path,
                       pictures: Mapping[int, str] | None = None) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_explain_page(formulas, summary, pictures), encoding="utf-8")
    tmp.replace(path)
    return path


def load_formulas(directory: str | Path) -> pd.DataFrame:
    """``formulas.csv`` of an ``explain`` output directory, for a report to show beside each unit."""
    path = Path(directory) / "formulas.csv"
    if not path.is_file():
        raise UsageError(f"{directory} holds no formulas.csv; run unitscope explain first")
    return pd.read_csv(path, keep_default_na=False)
