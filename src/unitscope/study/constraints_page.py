"""The constraints study as data (``constraints.json``, ``constraints.csv``) and as one page (``index.html``).

The page is rendered from ``constraints.json`` alone, so the committed data re-renders it
(``unitscope study constraints --out DIR --render-only``).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from unitscope.study.constraint_metrics import METRICS, t_interval
from unitscope.study.constraints import LAYERS, StudyRecipe

GOAL_LAYER = "conv5"
GOAL_GAIN = 0.30  # conv5 object detectors surviving the colour control: +30 % over the control ...
GOAL_TOP1 = 0.01  # ... with at most 1 point of fresh top-1 lost
COLOURS = {"none": "#6b7280", "whitening": "#2563eb", "filters": "#d97706", "sparsity": "#059669"}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: top-1 and every layer metric as mean with its 95% t-interval across seeds."""
    arms: dict[str, Any] = {}
    for arm in dict.fromkeys(run["arm"] for run in runs):
        mine = [run for run in runs if run["arm"] == arm]
        entry: dict[str, Any] = {"seeds": [run["seed"] for run in mine],
                                 "fresh_top1": t_interval([run["fresh_top1"] for run in mine]), "layers": {}}
        for layer in LAYERS:
            entry["layers"][layer] = {key: t_interval([run["layers"][layer][key] for run in mine])
                                      for key, _ in METRICS}
        arms[arm] = entry
    return arms


def goal(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each constraint against the control on the issue's goal (means across seeds)."""
    control = summary.get("none")
    if control is None:
        return []
    base = control["layers"][GOAL_LAYER]["object_survive"][0]
    base_top1 = control["fresh_top1"][0]
    verdicts = []
    for arm, entry in summary.items():
        if arm == "none":
            continue
        mean = entry["layers"][GOAL_LAYER]["object_survive"][0]
        gain = (mean - base) / base if base > 0 else (float("inf") if mean > 0 else 0.0)
        lost = base_top1 - entry["fresh_top1"][0]
        verdicts.append({"arm": arm, "object_survive": mean, "control_object_survive": base, "gain": gain,
                         "top1_lost": lost, "met": gain >= GOAL_GAIN and lost <= GOAL_TOP1})
    return verdicts


def write_results(folder: Path, recipe: StudyRecipe, runs: list[dict[str, Any]]) -> Path:
    """``constraints.json`` (recipe, runs, summary, goal) and ``constraints.csv`` (one row per run and layer)."""
    summary = summarise(runs)
    data = {"recipe": asdict(recipe), "layers": list(LAYERS), "runs": runs, "summary": summary,
            "goal": goal(summary)}
    path = folder / "constraints.json"
    path.write_text(json.dumps(data, indent=1))
    with open(folder / "constraints.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        keys = [key for key, _ in METRICS]
        writer.writerow(["arm", "seed", "fresh_top1", "layer", *keys, "detectors_lo", "detectors_hi",
                         "survive_lo", "survive_hi"])
        for run in runs:
            for layer in LAYERS:
                held = run["layers"][layer]
                writer.writerow([run["arm"], run["seed"], f"{run['fresh_top1']:.4f}", layer,
                                 *[f"{held[k]:.4f}" if isinstance(held[k], float) else held[k] for k in keys],
                                 *held["detectors_ci"], *held["survive_ci"]])
    return path


def collect_finished(folder: Path) -> int:
    """Rewrite ``constraints.json``/``.csv`` from the finished ``metrics/*.json`` of a study folder; how many."""
    held = json.loads((folder / "study.json").read_text())
    recipe = StudyRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in held.items()})  # type: ignore[arg-type]
    runs = []
    for seed in recipe.seeds:
        for arm in recipe.arms:
            path = folder / "metrics" / f"{arm}-s{seed}.json"
            if path.is_file():
                runs.append(json.loads(path.read_text()))
    write_results(folder, recipe, runs)
    return len(runs)


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def interval(triple: list[float], digits: int = 1) -> str:
    mean, lo, hi = triple
    return f"{_fmt(mean, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]" if hi > lo else _fmt(mean, digits)


def scatter_svg(runs: list[dict[str, Any]], key: str, title: str) -> str:
    """Fresh top-1 (x) against a conv5 count (y): one point per seed, arms side by side by colour."""
    width, height, pad = 520, 320, 48
    xs = [100 * run["fresh_top1"] for run in runs]
    ys = [float(run["layers"][GOAL_LAYER][key]) for run in runs]
    x0, x1 = min(xs) - 1, max(xs) + 1
    y0, y1 = 0.0, float(max(4, math.ceil(max(ys) * 1.15)))

    def px(x: float) -> float:
        return float(pad + (x - x0) / (x1 - x0) * (width - 2 * pad))

    def py(y: float) -> float:
        return float(height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad))

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width: {width}px" role="img" '
             f'aria-label="{title}" data-role="scatter">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">fresh top-1 (%)</text>',
             f'<text x="14" y="{height / 2}" text-anchor="middle" font-size="12" '
             f'transform="rotate(-90 14 {height / 2})">{title}</text>']
    for tick in range(5):
        x = x0 + tick * (x1 - x0) / 4
        y = y0 + tick * (y1 - y0) / 4
        parts.append(f'<text x="{px(x):.1f}" y="{height - pad + 16}" text-anchor="middle" '
                     f'font-size="11">{x:.1f}</text>')
        parts.append(f'<text x="{pad - 6}" y="{py(y) + 4:.1f}" text-anchor="end" font-size="11">{y:.0f}</text>')
    for run, x, y in zip(runs, xs, ys, strict=True):
        colour = COLOURS.get(run["arm"], "#111")
        shape = (f'<rect x="{px(x) - 5:.1f}" y="{py(y) - 5:.1f}" width="10" height="10" fill="none" '
                 f'stroke="{colour}" stroke-width="2"' if run["arm"] == "none" else
                 f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{colour}" fill-opacity="0.8"')
        parts.append(f'{shape}><title>{run["arm"]} seed {run["seed"]}: {x:.1f} %, {y:g}</title>'
                     f'{"</rect>" if run["arm"] == "none" else "</circle>"}')
    parts.append("</svg>")
    return "".join(parts)


def page_context(data: dict[str, Any]) -> dict[str, Any]:
    runs, summary, recipe = data["runs"], data["summary"], data["recipe"]
    rows = []
    for arm, entry in summary.items():
        for layer in data["layers"]:
            held = entry["layers"][layer]
            rows.append([arm, layer, interval([100 * v for v in entry["fresh_top1"]]) if layer == LAYERS[0] else "",
                         interval(held["detectors"]), interval(held["unique_objects"]),
                         interval(held["survive"]), interval(held["object_survive"]),
                         interval(held["mean_iou"], 3), interval(held["random_detectors"])])
    per_run = []
    for run in runs:
        held = run["layers"][GOAL_LAYER]
        lo, hi = held["detectors_ci"]
        slo, shi = held["survive_ci"]
        per_run.append([run["arm"], run["seed"], f"{100 * run['fresh_top1']:.1f}",
                        f"{held['detectors']} [{lo:.0f}, {hi:.0f}]", held["unique_objects"],
                        f"{held['survive']} [{slo:.0f}, {shi:.0f}]", held["object_survive"],
                        f"{held['mean_iou']:.3f}", held["random_detectors"]])
    verdicts = []
    for v in data["goal"]:
        if v["control_object_survive"] > 0:
            gain = f"{100 * v['gain']:+.0f} %"
        else:
            gain = "the control has none, so any survivor is a gain" if v["object_survive"] > 0 else "neither has any"
        lost = 100 * v["top1_lost"]
        cost = f"{lost:.1f} points of fresh top-1 lost" if lost >= 0 else f"{-lost:.1f} points of fresh top-1 gained"
        verdicts.append({"negative": not v["met"], "text": (
            f"{v['arm']}: conv5 object detectors surviving the colour control {v['object_survive']:.1f} against "
            f"the control's {v['control_object_survive']:.1f} ({gain}); {cost} — "
            f"{'meets' if v['met'] else 'does not meet'} the goal (≥ +30 % with ≤ 1 point lost)")})
    legend = [(arm, COLOURS.get(arm, "#111")) for arm in summary]
    return {"recipe": recipe, "rows": rows, "per_run": per_run, "verdicts": verdicts, "legend": legend,
            "charts": [scatter_svg(runs, "object_survive", "conv5 object detectors surviving colour"),
                       scatter_svg(runs, "detectors", "conv5 detectors")],
            "n_runs": len(runs)}


def render_page(folder: Path) -> Path:
    """``index.html`` from ``constraints.json``."""
    from unitscope.report.html import render_template, write_html

    data = json.loads((folder / "constraints.json").read_text())
    return write_html(render_template("constraints.html", **page_context(data)), folder / "index.html")
