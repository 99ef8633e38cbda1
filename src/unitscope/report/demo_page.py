"""``index.html`` of the demo: the paper's findings, measured on SceneWorld, on one page.

Figures are embedded (the page survives being mailed around); links lead to the detailed reports that
the demo wrote next to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unitscope.dissection.confidence import interval_text
from unitscope.dissection.result import DissectionResult
from unitscope.report.html import image_data_uri, render_template, write_html

HEADLINE_LAYER = "pool5"


def _png(path: Path) -> str | None:
    return image_data_uri(np.asarray(Image.open(path).convert("RGB")), fmt="png") if path.is_file() else None


def _object_detectors(result: DissectionResult, layer: str) -> tuple[int, int]:
    units = result.layers[layer].units
    found = units[units["detector"] & (units["category"] == "object")]
    return len(found), found["label"].nunique()


def _random_objects(result: DissectionResult, layer: str) -> str:
    """', and N units / K classes with random weights' from the run's recorded random-weights baseline."""
    table = (((result.record.baseline or {}).get("layers") or {}).get(layer) or {}).get("table") or []
    row = next((r for r in table if r.get("category") == "object"), None)
    if row is None:
        return ""
    return f", and {row['detectors']} units / {row['unique']} classes in the same architecture with random weights"


def _rho(correlations: list[dict[str, Any]] | None, run: str, layer: str, measure: str) -> dict[str, Any] | None:
    for row in correlations or []:
        if row["run"] == run and row["layer"] == layer and row["measure"] == measure \
                and row["classes"] == "foreground":
            return row
    return None


def _survivors(control: dict[str, Any] | None, layer: str) -> str | None:
    """'k of n object detectors (object+part interval)' for one layer of a run's colour-control record."""
    found = ((control or {}).get("layers") or {}).get(layer)
    if not found:
        return None
    objects = found["categories"]["object"]
    ci = interval_text(found.get("survive_ci"))
    interval = f"; object and part detectors surviving: {found['survive_control']} [95% CI {ci}]" if ci else ""
    return f"{objects['survive_control']} of {objects['detectors']} object detectors survive{interval}"


def control_sentence(control: dict[str, Any]) -> str | None:
    """The colour control of both nets and their random twin at the headline layers, in words."""
    parts = []
    for layer in ("conv5", HEADLINE_LAYER):
        scene = _survivors((control.get("scene-net") or {}).get("run"), layer)
        objects = _survivors((control.get("object-net") or {}).get("run"), layer)
        random = _survivors((control.get("scene-net") or {}).get("random"), layer)
        if scene is None:
            continue
        parts.append(f"At {layer}: scene net {scene}; object net {objects or 'not measured'}; random weights "
                     f"{random or 'not measured'}.")
    if not parts:
        return None
    return ("Measured again on the same scenes with every object painted from one palette shared by all classes "
            "(the colour control): " + " ".join(parts) + " A detector that does not survive was following "
            "its concept's colour, not the object.")


def findings(summary: dict[str, Any], results: dict[str, DissectionResult]) -> list[dict[str, str]]:
    """The paper's claims beside what SceneWorld shows, as short sentences."""
    accuracy = {(r["model"], r["data"]): r for r in summary["accuracy"]}
    full = accuracy[("sceneworld-scene", "sceneworld")]["top1"]
    empty = accuracy[("sceneworld-scene", "sceneworld-background")]["top1"]
    scene_units, scene_classes = _object_detectors(results["scene-net"], HEADLINE_LAYER)
    object_units, object_classes = _object_detectors(results["object-net"], HEADLINE_LAYER)
    mi = _rho(summary.get("correlations"), "sceneworld-scene", "conv5", "scene_mi_bits")
    freq = _rho(summary.get("correlations"), "sceneworld-scene", "conv5", "pixel_share")
    seg = summary.get("segmentation") or {}
    rows = [
        {"claim": "Scene recognition relies on objects (minimal images keep a few objects).",
         "measured": f"The scene net scores {full:.0%} top-1 on full scenes but {empty:.0%} on the same scenes "
                     "with every object removed."},
        {"claim": "A network trained on scenes develops object detectors, more than one trained on objects.",
         "measured": f"At {HEADLINE_LAYER}: {scene_units} object-detector units covering {scene_classes} object "
                     f"classes in the scene net, against {object_units} units and {object_classes} classes in "
                     f"the object net{_random_objects(results['scene-net'], HEADLINE_LAYER)} (significant "
                     "detectors; how many follow the object rather than its colour: the colour-control row)."},
    ]
    if mi is not None and freq is not None:
        rows.append({
            "claim": "The objects a scene network detects are the frequent and the discriminative ones.",
            "measured": f"Scene net conv5, over foreground objects: Spearman ρ(units, discriminativeness) = "
                        f"{mi['rho']:.2f} (p = {mi['p_value']:.2g}); ρ(units, pixel frequency) = {freq['rho']:.2f} "
                        f"(p = {freq['p_value']:.2g})."})
    if seg.get("mean_iou") is not None:
        rows.append({
            "claim": "The same forward pass recognises the scene and segments its objects.",
            "measured": f"Segmentation from the scene net's conv5 detectors: mean IoU {seg['mean_iou']:.3f} over all "
                        f"{seg.get('classes', '?')} object classes ({seg.get('mean_iou_detected', float('nan')):.3f} "
                        f"over the {seg.get('classes_detected', '?')} classes it has detectors for), against "
                        f"{seg['baseline_mean_iou']:.3f} for the most-frequent-class baseline."})
    control = control_sentence(summary.get("control") or {})
    if control is not None:
        rows.append({
            "claim": "The object detectors are detectors of objects (the paper had no control for colour).",
            "measured": control})
    explained = summary.get("explain") or {}
    if explained.get("verdict"):
        layer_wide = (explained.get("gain_vs_random") or {}).get("verdict") or ""
        rows.append({
            "claim": "Units are better explained by combinations of concepts (Mu & Andreas, a successor's claim).",
            "measured": f"Scene net {explained.get('layer')}: formulas chosen on half the probe set and scored on "
                        f"the other half, against random twins of the same architecture. Unit by unit: "
                        f"{explained['verdict']} The layer as a whole: {layer_wide}"})
    cam = cam_summary(summary.get("cam"))
    if cam is not None:
        rows.append({
            "claim": "The network's evidence for a scene lies on its objects (class activation maps).",
            "measured": f"{cam['method']} at {cam['layer']} on {cam['n']} fresh scenes, scored on the placed objects "
                        f"only: lift {cam['lift']} (random weights {cam['random_lift']}), pointing game "
                        f"{cam['pointing']} (random weights {cam['random_pointing']}; chance {cam['share']}). "
                        f"{cam['verdict']}"})
    return rows


def cam_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The demo's CAM numbers for the page: trained beside random, each difference with its interval, and
    the verdict in words (None when CAM was not scored)."""
    score = (report or {}).get("localisation")
    if not report or not score:
        return None
    baseline = report.get("baseline") or {}
    twin, diffs = baseline.get("localisation") or {}, baseline.get("differences") or {}

    def number(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) else "—"

    def interval(name: str | None) -> str:
        d = diffs.get(name) or {} if name else {}
        return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d.get("low") is not None else ""

    rows = [{"name": name, "trained": number(score.get(key)), "random": number(twin.get(key)),
             "difference": interval(diff)}
            for name, key, diff in ((f"top {score['top_fraction']:.0%} heat on objects", "hit_rate", None),
                                    ("object pixel share (chance)", "object_share", None),
                                    ("lift", "lift", "lift"), ("pointing game", "pointing", "pointing"))]
    verdict = baseline.get("verdict") or "No random-weights baseline was computed."
    return {"method": report.get("method"), "layer": report.get("layer"), "n": score.get("n_images"),
            "lift": number(score.get("lift")), "random_lift": number(twin.get("lift")),
            "pointing": number(score.get("pointing")), "random_pointing": number(twin.get("pointing")),
            "share": number(score.get("object_share")),
            "excluded": score.get("excluded", 0), "max_share": score.get("max_mask_share", 0.9), "rows": rows,
            "verdict": verdict}


def seen_scenes(out: Path, sights: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """The demo's scenes through ``see`` (their sights' JSON form): strip, page and a caption in words."""
    shown = []
    for sight in sights or []:
        name = sight["name"]
        if not (out / "see" / f"{name}_strip.png").is_file():
            continue
        top = sight["scene"][0]
        boxes = []
        for found in sight["objects"]:
            unit = found["units"][0] if found["units"] else None
            behind = f" (strongest unit {unit['layer']} {unit['unit']}: {unit['label'] or 'no label'})" if unit else ""
            boxes.append(f"{found['concept']} {found['confidence']:.2f}{behind}")
        caption = (f"{top['name']} ({top['probability']:.2f}); {len(boxes)} object(s) boxed"
                   + (f": {'; '.join(boxes)}" if boxes else ""))
        shown.append({"strip": f"see/{name}_strip.png", "page": f"see/{name}.html", "caption": caption})
    return shown


def write_demo_page(out: Path, summary: dict[str, Any], results: dict[str, DissectionResult],
                    galleries: dict[str, list[Path]] | None = None, study: dict[str, Any] | None = None) -> Path:
    """Render ``out/index.html`` from the demo's numbers and the figures its steps wrote; ``study``: the
    emergence study's shipped headline (its chart and one sentence per architecture), when there is one."""
    transfer: dict[str, dict[str, Any]] = {}
    for row in summary["transfer"]:
        transfer.setdefault(row["features"], {})[row["task"]] = row["accuracy"]
    detector_rows = []
    layers = list(results["scene-net"].layers)
    for category in results["scene-net"].concepts.categories:
        cells = []
        for label in ("scene-net", "object-net"):
            table = results[label].summary
            for layer in layers:
                row = table[(table["layer"] == layer) & (table["category"] == category)].iloc[0]
                cells.append(f"{row['detectors']} ({row['unique']})")
        detector_rows.append({"category": category, "cells": cells})
    overlays = sorted((out / "segment").glob("segment_*.png"))[:3]
    html = render_template(
        "demo.html",
        findings=findings(summary, results),
        accuracy=summary["accuracy"],
        transfer=transfer,
        tasks=("scenes", "objects"),
        layers=layers,
        detector_rows=detector_rows,
        figures={
            "categories": _png(out / "compare" / "categories.png"),
            "objects": _png(out / "compare" / f"objects_{HEADLINE_LAYER}.png"),
            "emergence": _png(out / "compare" / "emergence_conv5.png"),
        },
        overlays=[uri for uri in (_png(p) for p in overlays) if uri],
        galleries={name: [str(p.relative_to(out)) for p in paths if p.is_file()][:12]
                   for name, paths in (galleries or {}).items()},
        cam=cam_summary(summary.get("cam")),
        study=dict(study, chart=_png(study["chart"])) if study else None,
        seen=seen_scenes(out, summary.get("see")),
        seconds=summary["seconds"],
        headline_layer=HEADLINE_LAYER,
    )
    return write_html(html, out / "index.html")
