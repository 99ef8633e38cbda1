"""The emergence study as data (``emergence.json``, ``emergence.csv``, ``claim.csv``), charts and one page.

Everything here reads the study's data alone, so the committed ``emergence.json`` re-renders the page and
the charts (``unitscope study emergence --out DIR --render-only``) without a network or a run folder.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from unitscope.study.emergence_metrics import arch_name, scene_minus_object, verdict

STUDY_FORMAT = "unitscope-emergence/1"

DATA = "emergence.json"
TABLE = "emergence.csv"
CLAIM_TABLE = "claim.csv"
PAGE = "index.html"
HEADLINE_TARGET = 1.0  # the claim's verdict per architecture is read at the last stage (NetDissect's layer)
def _layer_at(network: dict[str, Any], target: float) -> dict[str, Any]:
    return next(p for p in network["layers"] if p["target"] == target)


def claims(networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture with both nets and per target depth: scene − object object detectors (and survivors)."""
    found = []
    by_key = {(n["arch"], n["task"]): n for n in networks}
    for arch in dict.fromkeys(n["arch"] for n in networks):
        scene, objects = by_key.get((arch, "scene")), by_key.get((arch, "object"))
        if scene is None or objects is None:
            continue
        for picked in scene["layers"]:
            target = picked["target"]
            a, b = picked["layer"], _layer_at(objects, target)["layer"]
            ma, mb = scene["metrics"][a], objects["metrics"][b]
            paired = scene_minus_object(ma, mb, "object")
            ca, cb = ma["categories"]["object"], mb["categories"]["object"]
            found.append({
                "arch": arch, "target": target, "depth": picked["depth"], "scene_layer": a, "object_layer": b,
                "scene": ca["detectors"], "scene_ci": ca["detectors_ci"], "object": cb["detectors"],
                "object_ci": cb["detectors_ci"], "twin": ca["twin_detectors"], "twin_ci": ca["twin_detectors_ci"],
                "scene_unique": ca["unique"], "object_unique": cb["unique"], "twin_unique": ca["twin_unique"],
                "difference": paired["detectors"], "verdict": verdict(paired["detectors"]),
                "scene_survive": ca.get("survive"), "object_survive": cb.get("survive"),
                "twin_survive": ca.get("twin_survive"),
                "survive_difference": paired["survive"], "survive_verdict": verdict(paired["survive"]),
            })
    return found


def _ci(values: list[float], signed: bool = False) -> str:
    if len(values) < 2 or any(v is None or math.isnan(v) for v in values):
        return "no interval"
    low, high = values[-2], values[-1]
    return f"{_signed(low)} to {_signed(high)}" if signed else f"{low:.0f}–{high:.0f}"


def _signed(value: float) -> str:
    """A signed bound; one that rounds to zero keeps two decimals, so −0.02 does not read as "−0"."""
    return f"{value:+.2f}" if 0 < abs(value) < 0.5 else f"{value:+.0f}"


VERDICT_WORDS = {"holds": "the claim holds (the interval lies above 0)",
                 "reversed": "the claim is reversed: the object net has more (the interval lies below 0)",
                 "unresolved": "the claim is not shown (the interval includes 0)",
                 "not measured": "not measured"}
CONTROL_WORDS = {"holds": "it survives the colour control",
                 "reversed": "after the colour control it is reversed",
                 "unresolved": "it does not survive the colour control (the interval includes 0)",
                 "not measured": "the colour control was not measured"}


def sentence(arch: str, rows: list[dict[str, Any]], n: int, resamples: int) -> str:
    """One sentence per architecture: the claim at the last stage, its colour control, and the other depths."""
    head = next((r for r in rows if r["target"] == HEADLINE_TARGET), rows[-1])
    d = head["difference"]
    s = head["survive_difference"]
    text = (f"{arch_name(arch)}, {head['scene_layer']} ({head['depth']:.0%} depth): the scene net has "
            f"{head['scene']} object detectors [95% CI {_ci(head['scene_ci'])}], the object net {head['object']} "
            f"[{_ci(head['object_ci'])}], their random twin {head['twin']}; scene − object {d[0]:+.0f} "
            f"[{_ci(d, True)}], paired over {resamples} resamples of the same {n} probe images: "
            f"{VERDICT_WORDS[head['verdict']]}. Surviving the colour control: {head['scene_survive']} against "
            f"{head['object_survive']} ({s[0]:+.0f} [{_ci(s, True)}]): ")
    if head["verdict"] == "holds":
        text += CONTROL_WORDS[head["survive_verdict"]] + "."
    else:
        text += {"holds": "there the scene net has more", "reversed": "there the object net has more",
                 "unresolved": "no difference shown", "not measured": "not measured"}[head["survive_verdict"]] + "."
    others = [f"{r['depth']:.0%} {r['verdict']}" for r in rows if r is not head]
    if others:
        text += f" At the other depths ({', '.join(r['scene_layer'] for r in rows if r is not head)}): " \
                f"{', '.join(others)}."
    return text


def assemble(recipe: dict[str, Any], networks: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The study's data: recipe, networks (layers, metrics per layer), claims and one sentence per arch."""
    found = claims(networks)
    sentences = {arch: sentence(arch, [c for c in found if c["arch"] == arch], recipe["n"], recipe["bootstrap"])
                 for arch in dict.fromkeys(c["arch"] for c in found)}
    return {"format": STUDY_FORMAT, "recipe": recipe, "networks": networks, "claims": found,
            "sentences": sentences, "seconds": seconds}


def _plain(value: Any) -> Any:
    """JSON without NaN (written as null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _nan(value: Any) -> Any:
    """Back from :func:`_plain`: null inside a list of numbers is NaN again."""
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [math.nan if v is None else _nan(v) for v in value]
    return value


def read_data(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = _nan(json.loads((folder / DATA).read_text()))
    return data


CSV_COLUMNS = ("arch", "task", "target", "layer", "depth", "units", "category", "detectors", "detectors_lo",
               "detectors_hi", "unique", "twin_detectors", "twin_lo", "twin_hi", "twin_unique", "vs_twin",
               "vs_twin_lo", "vs_twin_hi", "survive", "survive_lo", "survive_hi", "twin_survive", "twin_survive_lo",
               "twin_survive_hi", "survive_vs_twin", "survive_vs_twin_lo", "survive_vs_twin_hi")
CLAIM_COLUMNS = ("arch", "target", "depth", "scene_layer", "object_layer", "scene", "object", "twin",
                 "difference", "difference_lo", "difference_hi", "verdict", "scene_survive", "object_survive",
                 "twin_survive", "survive_difference", "survive_lo", "survive_hi", "survive_verdict")


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return round(value, 4) if isinstance(value, float) else value


def table_rows(data: dict[str, Any]) -> list[list[Any]]:
    """One row per network × depth × category (and total): run, twin, run − twin, survivors."""
    rows = []
    for network in data["networks"]:
        for picked in network["layers"]:
            metrics = network["metrics"][picked["layer"]]
            for category, m in metrics["categories"].items():
                nan3 = [math.nan] * 3
                vs, svs = m.get("vs_twin") or nan3, m.get("survive_vs_twin") or nan3
                survive_ci = m.get("survive_ci") or [None, None]
                twin_survive_ci = m.get("twin_survive_ci") or [None, None]
                rows.append([network["arch"], network["task"], picked["target"], picked["layer"], picked["depth"],
                             metrics["units"], category, m["detectors"], *m["detectors_ci"], m["unique"],
                             m["twin_detectors"], *m["twin_detectors_ci"], m["twin_unique"], *vs,
                             m.get("survive"), *survive_ci, m.get("twin_survive"), *twin_survive_ci,
                             *(svs if "survive" in m else [None] * 3)])
    return rows


def write_results(folder: Path, data: dict[str, Any]) -> Path:
    """``emergence.json``, ``emergence.csv`` (network × depth × category) and ``claim.csv`` (arch × depth)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DATA
    path.write_text(json.dumps(_plain(data), indent=1) + "\n")
    with open(folder / TABLE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([[_cell(v) for v in row] for row in table_rows(data)])
    with open(folder / CLAIM_TABLE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CLAIM_COLUMNS)
        for c in data["claims"]:
            writer.writerow([_cell(v) for v in (
                c["arch"], c["target"], c["depth"], c["scene_layer"], c["object_layer"], c["scene"], c["object"],
                c["twin"], *c["difference"], c["verdict"], c["scene_survive"], c["object_survive"],
                c["twin_survive"], *c["survive_difference"], c["survive_verdict"])])
    return path


RESAMPLED = ("What is resampled: the probe images. dissect draws {b} bootstrap resamples of the {n} images (seed 0, "
             "the same draws for every network on this probe set, checked by their digest); in each, a unit keeps "
             "its full-data threshold and significance and takes the best-IoU concept among its five best, and "
             "counts as a detector when that IoU reaches 0.04. scene − object is paired: in resample r both nets "
             "are counted on the same drawn images, and the interval is the 2.5th–97.5th percentile of the "
             "{b} per-resample differences (the difference shown is the full-data one). Survivors of the colour "
             "control are resampled the same way on the recoloured images, the tested units (the full-data object "
             "and part detectors) and their concepts held fixed.")
DEPTH_RULE = ("Relative depth: the share of the network's convolutions (a transformer: weight layers) a layer's "
              "output has passed through, over that share at the feature extractor's end (models/depth.py, as "
              "compare pairs layers); the layer nearest each target is taken, on a tie the deeper "
              "(study/emergence_layers.py).")


def _count_ci(value: Any, interval: Any) -> str:
    if value is None:
        return "—"
    text = _ci(list(interval or []))
    return f"{value} [{text}]" if text != "no interval" else str(value)


def _diff(values: Any) -> str:
    if not values or values[0] is None or math.isnan(values[0]):
        return "—"
    text = _ci(list(values), signed=True)
    return f"{values[0]:+.0f} [{text}]" if text != "no interval" else f"{values[0]:+.0f}"


def page_context(data: dict[str, Any], charts: dict[str, str]) -> dict[str, Any]:
    recipe = data["recipe"]
    targets = list(recipe["targets"])
    layer_rows = []
    for network in data["networks"]:
        by_target = {p["target"]: p for p in network["layers"]}
        layer_rows.append([f"{arch_name(network['arch'])} {network['task']} ({network['model']})",
                           *[f"{by_target[t]['layer']} ({by_target[t]['depth']:.0%})" if t in by_target else "—"
                             for t in targets]])
    claim_rows = [[arch_name(c["arch"]), f"{c['depth']:.0%}", c["scene_layer"], _count_ci(c["scene"], c["scene_ci"]),
                   _count_ci(c["object"], c["object_ci"]), c["twin"] if c["twin"] is not None else "—",
                   _diff(c["difference"]), c["verdict"],
                   f"{c['scene_survive']} / {c['object_survive']} / {c['twin_survive']}",
                   _diff(c["survive_difference"]), c["survive_verdict"]] for c in data["claims"]]
    rows = []
    for network in data["networks"]:
        for picked in sorted(network["layers"], key=lambda p: p["target"]):
            metrics = network["metrics"][picked["layer"]]
            for category, m in metrics["categories"].items():
                twin_unique = m["twin_unique"] if m["twin_unique"] is not None else "—"
                rows.append([f"{arch_name(network['arch'])} {network['task']}", picked["layer"],
                             f"{picked['depth']:.0%}", category, _count_ci(m["detectors"], m["detectors_ci"]),
                             _count_ci(m["twin_detectors"], m["twin_detectors_ci"]), _diff(m["vs_twin"]),
                             f"{m['unique']} ({twin_unique})",
                             _count_ci(m.get("survive"), m.get("survive_ci")) if "survive" in m else "not tested",
                             _count_ci(m.get("twin_survive"), m.get("twin_survive_ci")) if "survive" in m else ""])
    heads = {c["arch"]: c for c in data["claims"] if c["target"] == HEADLINE_TARGET}
    verdicts = [{"text": text, "negative": heads.get(arch, {}).get("verdict") != "holds"}
                for arch, text in data["sentences"].items()]
    archs = [arch_name(a) for a in recipe["archs"]]
    return {"recipe": recipe, "archs": ", ".join(archs[:-1]) + (" and " if len(archs) > 1 else "") + archs[-1],
            "seconds": data.get("seconds"), "verdicts": verdicts, "claim_rows": claim_rows,
            "resampled": RESAMPLED.format(b=recipe["bootstrap"], n=recipe["n"]), "targets": targets,
            "layer_rows": layer_rows, "depth_rule": DEPTH_RULE, "rows": rows, "charts": charts}


def render_page(folder: Path) -> Path:
    """The charts and ``index.html`` from ``emergence.json`` alone."""
    from unitscope.report.html import render_template, write_html
    from unitscope.study.emergence_charts import draw_charts

    data = read_data(folder)
    charts = draw_charts(data, folder)
    return write_html(render_template("emergence.html", **page_context(data, charts)), folder / PAGE)


SHIPPED = "results/emergence.json"  # inside the package: the headline of docs/data/emergence/emergence.json
HEADLINE_KEYS = ("format", "recipe", "claims", "sentences", "seconds")


def headline(data: dict[str, Any]) -> dict[str, Any]:
    """What the package ships of a study's data (for the demo): recipe, claims, sentences and run time."""
    return {key: data[key] for key in HEADLINE_KEYS if key in data}


def write_headline(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(headline(data)), indent=1) + "\n")
    return path


def shipped_result() -> dict[str, Any] | None:
    """The study's committed result as shipped with the package (what the demo shows); None if absent."""
    from importlib import resources

    path = resources.files("unitscope.study").joinpath(SHIPPED)
    if not path.is_file():
        return None
    data: dict[str, Any] = _nan(json.loads(path.read_text()))
    return data
