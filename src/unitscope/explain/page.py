"""A standalone HTML page of a layer's formulas, and a snippet per unit for the dissection report.

The page embeds its style and needs no other file. It leads with the verdict (how many units' held-out
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

_SNIPPET = """\
<div class="formula" title="{{ title }}">
  <span class="f">{{ formula_html }}</span> <span class="v">{{ '%.3f' % iou }}</span>
  <span class="s">{{ 'held-out · ' if heldout else '' }}single: {{ single }} {{ '%.3f' % single_iou }}
  · gain {{ '%+.3f' % gain }}{% if q_text %} · {{ 'significant' if significant else 'not significant' }}
  against the random twin (q {{ q_text }}){% endif %}</span>
</div>"""

_PAGE = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>unitscope explain: {{ s.layer }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 76em; color: #222; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .25em .6em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; position: sticky; top: 0; } td.n { text-align: right; }
.op { color: #8a2be2; font-weight: 600; } .bar { display: inline-block; height: .7em; background: #4a90d9; }
.bar.s { background: #bbb; } .gain { color: #2a7; } .small { color: #666; } .sig { color: #2a7; font-weight: 600; }
.verdict { font-size: 1.1em; padding: .5em .8em; background: #f3f7fb; border-left: 4px solid #4a90d9; }
.warn { color: #a60; }
</style></head><body>
<h1>Compositional explanations — {{ s.layer }}</h1>
<p class="verdict">{{ s.verdict }}</p>
{% for w in s.warnings %}
<p class="warn">{{ w }}</p>
{% endfor %}
<p>{{ s.units }} units of <code>{{ s.run }}</code>, formulas of up to {{ s.length }} concepts
(beam {{ s.beam }}, ops {{ s.ops | join(', ') }}), {{ s.concepts }} concepts, {{ s.images }} probe images:
formulas and the best single concept are chosen on {{ s.images_fit }} <b>fit</b> images and scored on the other
{{ s.images_heldout }} (<b>held-out</b>, --holdout {{ s.holdout }}).
Held-out mean IoU {{ '%.3f' % s.mean_heldout_single_iou }} (single concept) → {{ '%.3f' % s.mean_heldout_iou }}
(formula), mean gain {{ '%+.3f' % s.mean_heldout_gain }}; <b>{{ s.units_gaining_heldout }}</b> units gain more than
{{ s.gain_threshold }} IoU on the held-out images ({{ s.units_gaining_fit }} on the fit images they were chosen on).
{{ s.candidates_scored }} formulas scored in {{ s.seconds }} s.</p>
{% if s.null.kind == 'random' %}
<p><b>Null: {{ s.null.twins }} random twin{{ 's' if s.null.twins != 1 else '' }}</b> (the same architecture
re-initialised, seed{{ 's' if s.null.twins != 1 else '' }} {{ s.null.seeds | join(', ') }}; thresholds at the run's
quantile; searched and scored the same way, on the same split): {{ s.null.units }} units that gain
{{ '%+.3f' % s.null.mean_gain }} on average on the held-out images (median {{ '%+.3f' % s.null.median_gain }},
95th percentile {{ '%+.3f' % s.null.p95_gain }}, largest {{ '%+.3f' % s.null.max_gain }});
{{ s.null.units_gaining }} gain more than {{ s.gain_threshold }}. A unit's p-value is the share of twin units that
gain at least as much (1 + count) / (1 + {{ s.null.units }}); q-values by Benjamini–Hochberg across these
{{ s.units }} units; <span class="sig">significant</span>: q ≤ {{ s.fdr }} and gain > {{ s.gain_threshold }}.
<b>{{ s.units_significant }}</b> of {{ s.units }} units are significant.</p>
{% if s.get('gain_vs_random') %}
<p class="verdict">{{ s.gain_vs_random.verdict }}</p>
{% endif %}
{% else %}
<p><b>No null</b> (--null none): no unit is tested against the random twin.</p>
{% endif %}
<p class="small">IoU with Broden's annotated-category rule: a formula covers its concepts' pixels
(NOT c: the pixels without c in images where c's category is annotated), and a unit's active pixels
count only in images where one of the formula's categories is annotated.</p>
<p class="small">Pictures: each unit's most active probe images, twice: where the unit fires
(<span style="color:#b8960a">yellow</span>) and where its formula holds (<span style="color:#1ab">cyan</span>),
at the label resolution the IoU used.</p>
<table><tr><th>unit</th><th>formula</th><th>fit IoU</th><th>held-out IoU</th><th>single concept</th>
<th>held-out IoU</th><th>held-out gain</th><th>p</th><th>q</th><th>vs twin</th><th>unit | formula</th></tr>
{% for r in rows %}
<tr><td class="n">{{ r.unit }}</td><td>{{ r.formula_html }}</td>
<td class="n small">{{ '%.3f' % r.fit_iou }}</td>
<td class="n">{{ '%.3f' % r.iou }} <span class="bar" style="width:{{ (r.iou * 200) | round(1) }}px"></span></td>
<td>{{ r.single }}</td>
<td class="n">{{ '%.3f' % r.single_iou }}
<span class="bar s" style="width:{{ (r.single_iou * 200) | round(1) }}px"></span></td>
<td class="n{{ ' gain' if r.gain > s.gain_threshold else '' }}">{{ '%+.3f' % r.gain }}</td>
<td class="n small">{{ r.p_text }}</td><td class="n small">{{ r.q_text }}</td>
<td>{% if r.significant %}<span class="sig">significant</span>{% elif r.q_text %}—{% endif %}</td>
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
