"""Writing a comparison: compare.csv, objects.csv, compare.json, PNG figures and report.html."""

from __future__ import annotations

import json
import math
from pathlib import Path

from unitscope.analysis.compare.plots import categories_figure, objects_figure, scatter_figure
from unitscope.analysis.compare.report import render_report
from unitscope.analysis.compare.runs import Comparison
from unitscope.dissection.result import layer_dirname

DEFINITIONS: dict[str, str] = {
    "detectors": "units whose best concept (IoU >= the run's threshold) is in the category",
    "share": "detectors / units in the layer: networks of different widths read side by side",
    "unique": "distinct concepts among those detectors",
    "depth": "relative depth: the share of the network's convolutions the layer's output has passed through "
             "(layers of different architectures are paired by it; see pairing)",
    "random_detectors": "detectors of the run's random twin (the same architecture re-initialised, dissected on the "
                        "same probe set with the same rules: dissect --baseline random)",
    "survive_control": "detectors whose label survives the colour control (units.csv survives_control)",
    "random_survive_control": "the random twin's detectors surviving the colour control (its record's counts)",
    "random_difference": "the run's detectors minus its random twin's [95% interval of that difference over the "
                         "same bootstrap resamples of the probe images] (dissect --baseline random records it)",
    "vs_random": "the run's detectors against its random twin's, in words: beats only where the paired "
                 "difference's 95% interval lies above 0 (runs recorded without it: where the total's 95% "
                 "bootstrap interval lies above the twin's)",
    "pixel_share": "pixels carrying the class / pixels of annotated probe images",
    "image_frequency": "annotated probe images containing the class / annotated images",
    "scene_mi_bits": "mutual information (bits) between the class's presence in an image and its scene label",
    "rho": "Spearman rank correlation (scipy) of units per class with the measure, over classes in the probe",
    "classes": "all: every class occurring in the probe; foreground: only objects proper (no background regions)",
}


def _clean(value: object) -> object:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def comparison_json(comparison: Comparison) -> dict[str, object]:
    """Everything of the comparison as plain JSON-ready data."""
    runs = {}
    for side, name, run in zip(comparison.sides, comparison.names, comparison.runs, strict=True):
        runs[side] = {"name": name, "directory": str(run.run_dir or ""), "model": run.record.model,
                      "data": run.record.data, "n_images": run.record.n_images, "layers": list(run.layers)}
    layers = []
    for pair in comparison.pairs:
        entry: dict[str, object] = {"label": pair.label, **dict(zip(comparison.sides, pair.layers, strict=True))}
        if pair.depths:
            entry["depths"] = dict(zip(comparison.sides, pair.depths, strict=True))
        layers.append(entry)
    return _clean({
        "runs": runs,
        "pairing": comparison.pairing,
        "layers": layers,
        "category": comparison.category,
        "categories": comparison.categories.to_dict(orient="records"),
        "objects": comparison.objects.to_dict(orient="records"),
        "correlations": comparison.correlations.to_dict(orient="records"),
        "definitions": DEFINITIONS,
        "notes": comparison.notes,
        "verdicts": comparison.verdicts,
    })  # type: ignore[return-value]


def write_comparison(comparison: Comparison, out: Path) -> dict[str, Path]:
    """Write every output into ``out``; returns the figure files by key."""
    out.mkdir(parents=True, exist_ok=True)
    comparison.categories.to_csv(out / "compare.csv", index=False)
    comparison.objects.to_csv(out / "objects.csv", index=False, float_format="%.6g")
    comparison.correlations.to_csv(out / "correlations.csv", index=False, float_format="%.6g")
    (out / "compare.json").write_text(json.dumps(comparison_json(comparison), indent=2, default=str))
    figures = {"categories": out / "categories.png"}
    categories_figure(comparison).savefig(figures["categories"])
    layer_figures: dict[str, tuple[str, str]] = {}
    for pair in comparison.pairs:
        stem = layer_dirname(pair.a if len(set(pair.layers)) == 1 else "-".join(pair.layers))
        keys = (f"objects_{stem}", f"emergence_{stem}")
        figures[keys[0]] = out / f"{keys[0]}.png"
        figures[keys[1]] = out / f"{keys[1]}.png"
        objects_figure(comparison, pair.label).savefig(figures[keys[0]])
        scatter_figure(comparison, pair.label).savefig(figures[keys[1]])
        layer_figures[pair.label] = keys
    render_report(comparison, figures, layer_figures, out / "report.html")
    return figures
