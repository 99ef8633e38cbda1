"""The comparison as one self-contained HTML page (jinja2; figures inlined as PNG data URIs)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import jinja2
import pandas as pd

from unitscope.analysis.compare.runs import Comparison

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>unitscope compare: {{ names[0] }} vs {{ names[1] }}</title>
<style>
 body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
 table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
 th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
 th { background: #f5f6f8; } td.l, th.l { text-align: left; }
 .a { color: #3b6fb6; font-weight: 600; } .b { color: #e08a2c; font-weight: 600; }
 .note { background: #fff7e0; padding: .5em 1em; border-left: 3px solid #e0b030; }
 img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
 dt { font-weight: 600; margin-top: .5em; } .small { color: #666; font-size: 12px; }
</style></head><body>
<h1>Object detectors: <span class="a">{{ names[0] }}</span> vs <span class="b">{{ names[1] }}</span></h1>
<table>
<tr><th class="l">run</th><th class="l">directory</th><th class="l">model</th><th class="l">probe set</th>
<th>images</th><th class="l">layers</th></tr>
{% for r in runs %}<tr><td class="l {{ r.side }}">{{ r.name }}</td><td class="l">{{ r.dir }}</td>
<td class="l">{{ r.model }}</td><td class="l">{{ r.data }}</td><td>{{ r.n_images }}</td>
<td class="l">{{ r.layers }}</td></tr>{% endfor %}
</table>
{% for note in notes %}<p class="note">{{ note }}</p>{% endfor %}

<h2>Detector units and unique concepts per layer and category</h2>
<table><tr><th class="l">layer</th><th class="l">category</th>
<th class="a">{{ names[0] }} detectors</th><th class="a">unique</th>
<th class="b">{{ names[1] }} detectors</th><th class="b">unique</th></tr>
{% for row in categories %}<tr{% if row.category == 'total' %} style="font-weight:600"{% endif %}>
<td class="l">{{ row.layer }}</td><td class="l">{{ row.category }}</td>
<td>{{ row.detectors_a }} <span class="small">/ {{ row.units_a }}</span></td><td>{{ row.unique_a }}</td>
<td>{{ row.detectors_b }} <span class="small">/ {{ row.units_b }}</span></td><td>{{ row.unique_b }}</td></tr>
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
<table><tr><th class="l">class</th><th class="a">{{ names[0] }}</th><th class="b">{{ names[1] }}</th>
<th>pixel share</th><th>images</th><th>image freq.</th><th>MI (bits)</th></tr>
{% for row in layer.rows %}<tr><td class="l">{{ row.name }}</td><td>{{ row.units_a }}</td><td>{{ row.units_b }}</td>
<td>{{ row.pixel_share }}</td><td>{{ row.image_count }}</td><td>{{ row.image_frequency }}</td>
<td>{{ row.scene_mi_bits }}</td></tr>{% endfor %}</table></details>
{% endfor %}

<h2>Definitions</h2><dl>
<dt>detector unit</dt><dd>a unit whose best Network Dissection IoU is at least the run's threshold; its
category is that of its best concept.</dd>
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
<p class="small">Written by unitscope compare.</p>
</body></html>
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


def render_report(comparison: Comparison, figures: dict[str, Path], layer_figures: dict[str, tuple[str, str]],
                  out: Path) -> None:
    """Write ``out`` (report.html) from the comparison and the PNG files already saved."""
    runs = []
    for side, name, run in zip(("a", "b"), comparison.names, comparison.runs, strict=True):
        runs.append({"side": side, "name": name, "dir": str(run.run_dir or ""), "model": run.record.model,
                     "data": run.record.data, "n_images": run.record.n_images,
                     "layers": ", ".join(run.layers)})
    layers = []
    for pair in comparison.pairs:
        objects = comparison.objects[comparison.objects["layer"] == pair.label]
        objects = objects.assign(total=objects["units_a"] + objects["units_b"]).sort_values(
            ["total", "pixel_share"], ascending=[False, False])
        correlations = comparison.correlations[comparison.correlations["layer"] == pair.label]
        objects_key, scatter_key = layer_figures[pair.label]
        layers.append({"label": pair.label, "objects": objects_key, "scatter": scatter_key,
                       "rows": _records(objects), "correlations": _records(correlations)})
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(TEMPLATE).render(
        names=comparison.names, runs=runs, notes=comparison.notes, categories=_records(comparison.categories),
        layers=layers, category=comparison.category, figures={k: data_uri(p) for k, p in figures.items()},
    )
    out.write_text(html, encoding="utf-8")
