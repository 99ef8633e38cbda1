"""The comparison as one self-contained HTML page (jinja2 on the shared base template and stylesheet; figures
inlined as PNG data URIs)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import pandas as pd

from unitscope.analysis.compare.nulls import NOT_TESTED_CONTROL
from unitscope.analysis.compare.plots import run_colour
from unitscope.analysis.compare.runs import Comparison
from unitscope.report.html import report_environment, write_html

TEMPLATE = """{% extends "base.html" %}
{% block title %}unitscope compare: {{ names|join(" vs ") }}{% endblock %}
{% block head %}<style>
{% for r in runs %} [data-page=compare] .{{ r.side }} { color: {{ r.colour }}; font-weight: 600; }
{% endfor %}</style>{% endblock %}
{% block page %}compare{% endblock %}
{% block kind %}comparison{% endblock %}
{% block content %}
<h1>Object detectors: {% for r in runs %}{% if not loop.first %} vs {% endif %}
<span class="{{ r.side }}">{{ r.name }}</span>{% endfor %}</h1>
<table>
<tr><th class="l">run</th><th class="l">directory</th><th class="l">model</th><th class="l">probe set</th>
<th>images</th><th class="l">layers</th></tr>
{% for r in runs %}<tr><td class="l {{ r.side }}">{{ r.name }}</td><td class="l">{{ r.dir }}</td>
<td class="l">{{ r.model }}</td><td class="l">{{ r.data }}</td><td>{{ r.n_images }}</td>
<td class="l">{{ r.layers }}</td></tr>{% endfor %}
</table>
<p class="pairing"><strong>{{ pairing }}</strong></p>
{% for note in notes %}<p class="note">{{ note }}</p>{% endfor %}

<h2>Each network against its random twin</h2>
<p>The random twin is the same architecture with its weights re-initialised, dissected on the same probe set
with the same rules (<code>dissect --baseline random</code>): a detector count means something only where it
beats the twin's.</p>
<ul>{% for v in verdicts %}<li{% if 'does not' in v or 'not measured' in v %} class="note"{% endif %}>{{ v }}</li>
{% endfor %}</ul>

<h2>Detector units and unique concepts per layer and category</h2>
<p class="note">Detectors: IoU above the threshold and label significant at the run's FDR;
[95% bootstrap interval of the total]; "IoU alone" is Network Dissection's count; "share": detectors as a share
of the layer's units, so networks of different widths read side by side; "difference": the run's
detectors minus its twin's [95% interval over the same bootstrap resamples of the probe images].</p>
<table><tr><th class="l">layer</th><th class="l">category</th>
{% for r in runs %}<th class="{{ r.side }}">{{ r.name }} detectors</th><th class="{{ r.side }}">share of units</th>
<th class="{{ r.side }}">unique</th><th class="{{ r.side }}">its random twin</th>
<th class="{{ r.side }}">survive colour control</th>{% endfor %}</tr>
{% for row in categories %}<tr{% if row.category == 'total' %} style="font-weight:600"{% endif %}>
<td class="l">{{ row.layer }}</td><td class="l">{{ row.category }}</td>
{% for s in row.sides %}
<td>{{ s.detectors }} <span class="small">{% if s.detectors_ci %}[{{ s.detectors_ci }}] {% endif %}
/ {{ s.units }} · IoU alone {{ s.iou_detectors }}</span></td><td>{{ s.share }}</td><td>{{ s.unique }}</td>
<td title="{{ s.vs_random }}">{{ s.random_detectors }}{% if s.random_detectors_ci %}
<span class="small">[{{ s.random_detectors_ci }}]</span>{% endif %}{% if s.random_difference %}
<span class="small">difference {{ s.random_difference }}</span>{% endif %}</td>
<td>{% if s.survive_control == not_tested %}<span class="small" title="{{ not_tested }}">n/a</span>
{%- else %}{{ s.survive_control }}{% endif %}{% if s.random_survive_control is number %}
<span class="small">(twin {{ s.random_survive_control }})</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
<img alt="categories per layer" src="{{ figures['categories'] }}">

{% for layer in layers %}
<h2>{{ category|capitalize }} classes at {{ layer.label }}</h2>
<img alt="objects detected" src="{{ figures[layer.objects] }}">
<h3>Frequency and discriminativeness</h3>
<table><tr><th class="l">run</th><th class="l">classes</th><th class="l">measure</th><th>Spearman ρ</th><th>p</th>
<th>n</th></tr>
{% for row in layer.correlations %}<tr><td class="l {{ row.side }}">{{ row.run }}</td>
<td class="l">{{ row.classes }}</td><td class="l">{{ row.measure }}</td>
<td>{{ row.rho }}</td><td>{{ row.p_value }}</td><td>{{ row.n }}</td></tr>
{% endfor %}</table>
<img alt="units against frequency and discriminativeness" src="{{ figures[layer.scatter] }}">
<details><summary>{{ layer.rows|length }} {{ category }} classes (most units first)</summary>
<table><tr><th class="l">class</th>{% for r in runs %}<th class="{{ r.side }}">{{ r.name }} units</th>
<th class="{{ r.side }}">share</th>{% endfor %}
<th>pixel share</th><th>images</th><th>image freq.</th><th>MI (bits)</th></tr>
{% for row in layer.rows %}<tr><td class="l">{{ row.name }}</td>{% for r in runs %}
<td>{{ row["units_" ~ r.side] }}</td><td>{{ row["share_" ~ r.side] }}</td>{% endfor %}
<td>{{ row.pixel_share }}</td><td>{{ row.image_count }}</td><td>{{ row.image_frequency }}</td>
<td>{{ row.scene_mi_bits }}</td></tr>{% endfor %}</table></details>
{% endfor %}

<h2>Definitions</h2><dl>
<dt>detector unit</dt><dd>a unit whose best Network Dissection IoU is at least the run's threshold; its
category is that of its best concept.</dd>
<dt>share of units</dt><dd>detector units over all units of the layer: the number to read across networks of
different widths.</dd>
<dt>relative depth</dt><dd>the share of the network's convolutions a layer's output has passed through (module
order; 100% for its last convolutional stage; a network with fewer than two convolutions counts its linear
layers too). Runs of different layer names are paired by it unless <code>--pair</code> says otherwise.</dd>
<dt>random twin</dt><dd>the same architecture with re-initialised weights, dissected on the same probe set with
the same rules; a run beats it only where the 95% bootstrap interval of its total lies wholly above the twin's
(the record keeps no interval per category: there a count at or below the twin's does not beat it).</dd>
<dt>survive colour control</dt><dd>detectors whose label still holds on the recoloured twin of the probe set
(every object painted from one shared palette), so they are not colour filters; n/a: the control re-measures
object and part detectors only.</dd>
<dt>pixel share</dt><dd>pixels labelled with the class over all pixels of the probe images where the category
is annotated (coverage).</dd>
<dt>image frequency</dt><dd>share of annotated probe images in which the class appears.</dd>
<dt>MI (bits)</dt><dd>mutual information between the class's presence in an image and the image's scene label:
how much knowing whether the class is present tells about the scene (0: nothing; 1 bit: it splits two equally
likely scenes).</dd>
<dt>Spearman ρ</dt><dd>rank correlation between units per class and the measure, over every class that occurs in
the probe set (classes with no detector count as 0 units): <em>all</em> of them, and, where the probe set says
which classes are objects proper (SceneWorld), the <em>foreground</em> ones without background regions
such as sky or wall, whose areas are too large for any unit's top-0.5% activations to cover.</dd></dl>
<footer>Written by unitscope compare.</footer>
{% endblock %}
"""


def data_uri(path: Path) -> str:
    """A PNG file as a data URI, so the page needs no other files."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(value: object, digits: int = 3) -> object:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [{k: _fmt(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


SIDE_COLUMNS: tuple[str, ...] = ("detectors", "share", "detectors_ci", "units", "iou_detectors", "unique",
                                 "random_detectors",
                                 "random_detectors_ci", "random_difference", "survive_control",
                                 "random_survive_control", "vs_random")


def _share(value: object) -> str:
    """A share of units as a percentage for the page ("12.5%")."""
    return f"{float(value):.1%}" if isinstance(value, int | float) else str(value)


def _category_rows(frame: pd.DataFrame, sides: tuple[str, ...]) -> list[dict[str, object]]:
    """Rows of the categories table with each run's columns grouped under ``sides`` (run A, then B …)."""
    rows = []
    for row in frame.to_dict(orient="records"):
        shown = {k: _fmt(v) for k, v in row.items()}
        rows.append({"layer": row["layer"], "category": row["category"],
                     "sides": [{name: _share(row[f"{name}_{side}"]) if name == "share" else shown[f"{name}_{side}"]
                                for name in SIDE_COLUMNS} for side in sides]})
    return rows


def render_report(comparison: Comparison, figures: dict[str, Path], layer_figures: dict[str, tuple[str, str]],
                  out: Path) -> None:
    """Write ``out`` (report.html) from the comparison and the PNG files already saved."""
    runs = []
    sides = comparison.sides
    for k, (side, name, run) in enumerate(zip(sides, comparison.names, comparison.runs, strict=True)):
        runs.append({"side": side, "name": name, "dir": str(run.run_dir or ""), "model": run.record.model,
                     "data": run.record.data, "n_images": run.record.n_images,
                     "layers": ", ".join(run.layers), "colour": run_colour(k)})
    layers = []
    for pair in comparison.pairs:
        objects = comparison.objects[comparison.objects["layer"] == pair.label]
        total = sum(objects[f"share_{side}"] for side in sides)
        objects = objects.assign(total=total).sort_values(["total", "pixel_share"], ascending=[False, False])
        for side in sides:
            objects[f"share_{side}"] = objects[f"share_{side}"].map(_share)
        correlations = comparison.correlations[comparison.correlations["layer"] == pair.label]
        objects_key, scatter_key = layer_figures[pair.label]
        layers.append({"label": pair.label, "objects": objects_key, "scatter": scatter_key,
                       "rows": _records(objects), "correlations": _records(correlations)})
    # this template was written without trim_blocks: its line breaks after tags are spaces between numbers
    html = report_environment().overlay(trim_blocks=False, lstrip_blocks=False).from_string(TEMPLATE).render(
        names=comparison.names, runs=runs, notes=comparison.notes, pairing=comparison.pairing,
        categories=_category_rows(comparison.categories, sides),
        verdicts=comparison.verdicts, not_tested=NOT_TESTED_CONTROL,
        layers=layers, category=comparison.category, figures={k: data_uri(p) for k, p in figures.items()},
    )
    write_html(html, out)
