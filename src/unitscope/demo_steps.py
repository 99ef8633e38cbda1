"""The 2015 paper's signature figures for the demo: minimal images, receptive fields, CAM.

Each step writes one directory under the demo's output (skipped when already complete) and returns the
PNG files its gallery on ``index.html`` shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unitscope.staging import publish, staging_path

RF_LAYERS: tuple[str, ...] = ("conv1", "conv3", "conv5")
RF_UNITS: tuple[int, ...] = (0, 1, 2, 3)


def minimal_step(out: Path, n: int, seed: int, device: str) -> list[Path]:
    """Minimal image representations (Zhou et al. §3.1) of ``n`` fresh scenes by the scene net."""
    from unitscope.minimal.run import MinimalSettings, run_minimal
    from unitscope.minimal.sources import open_source
    from unitscope.models.loading import load_model
    from unitscope.report.output_pages import minimal_page

    target = out / "minimal"
    if not (target / "summary.csv").is_file():
        model = load_model("sceneworld-scene", device=device)
        source = open_source("sceneworld", model.class_names, n=n, seed=seed, size=112)
        run_minimal(model, source, target, MinimalSettings(n_segments=24), identity={"seed": seed},
                    progress=False)
        minimal_page(target)
    return sorted((target / "strips").glob("*.png"))


def receptive_step(out: Path, data: Path, n: int, device: str) -> list[Path]:
    """Empirical receptive fields by occlusion for a few units per layer of the scene net (§3.2)."""
    from unitscope.data import open_probe
    from unitscope.distributed import ShardProbe
    from unitscope.models.layers import resolve_layer
    from unitscope.models.loading import load_model
    from unitscope.report.output_pages import rf_page
    from unitscope.rf.empirical import EmpiricalSettings, empirical_fields
    from unitscope.rf.output import write_run

    target = out / "rf"
    if not (target / "rf.json").is_file():
        model = load_model("sceneworld-scene", device=device)
        exported = open_probe(str(data))
        probe = ShardProbe(exported, range(min(n, len(exported))))  # a Broden directory is read whole: its first n
        settings = EmpiricalSettings(topk=3, stride=6)
        preprocess = model.preprocess
        results = {
            name: empirical_fields(model.module, resolve_layer(model.module, name), probe,
                                   lambda images: preprocess.batch(images, model.device), list(RF_UNITS), settings,
                                   preprocess.mean, preprocess.std)
            for name in RF_LAYERS
        }
        write_run(target, results, {"model": model.name, "data": probe.name, "n_images": len(probe),
                                    "settings": settings.__dict__})
        rf_page(target)
    return [target / "rf.png", *sorted(target.glob("*/unit_*.png"))]


def cam_step(out: Path, n: int, seed: int, device: str, pictures: int) -> tuple[list[Path], dict[str, Any]]:
    """CAM heatmaps of the scene net's predicted class on ``n`` fresh scenes (overlays for the first
    ``pictures``), scored on the placed objects beside the random-weights twin; returns the overlays and
    ``cam.json``."""
    from unitscope.analysis.cam.run import CamOptions, run_cam
    from unitscope.analysis.inputs import open_inputs
    from unitscope.models.loading import load_model

    target = out / "cam"
    if not (target / "cam.json").is_file():
        model = load_model("sceneworld-scene", device=device)
        source = open_inputs(None, "sceneworld", n, seed, 112)
        stage = staging_path(target)
        run_cam(model, source, stage, CamOptions(pictures=pictures, baseline="random"))
        publish(stage, target)
    report: dict[str, Any] = json.loads((target / "cam.json").read_text())
    return sorted(target.glob("cam_*.png")), report


def cam_line(report: dict[str, Any]) -> str:
    """The demo's CAM finding in one line: trained against random, with the intervals."""
    score, baseline = report.get("localisation") or {}, report.get("baseline") or {}
    twin, diffs = baseline.get("localisation") or {}, baseline.get("differences") or {}

    def number(value: object, digits: int = 2) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"

    def interval(name: str) -> str:
        d = diffs.get(name) or {}
        if d.get("low") is None:
            return "no interval"
        return f"difference {d['difference']:+.2f}, 95% interval [{d['low']:+.2f}, {d['high']:+.2f}]"

    return (f"CAM ({report.get('method')} at {report.get('layer')}) of the scene net on {score.get('n_images', 0)} "
            f"fresh scenes, scored on the placed objects ({score.get('excluded', 0)} excluded): lift "
            f"{number(score.get('lift'))} against {number(twin.get('lift'))} with random weights ({interval('lift')}); "
            f"pointing game {number(score.get('pointing'))} against {number(twin.get('pointing'))} "
            f"({interval('pointing')}); chance = object share {number(score.get('object_share'))}")


def study_section(out: Path) -> dict[str, Any] | None:
    """The emergence study's headline from its shipped result (``unitscope study emergence``, not recomputed):
    the claim chart drawn into ``out/study/claim.png`` and one sentence per architecture; None if not shipped."""
    from unitscope.study.emergence_charts import claim_chart
    from unitscope.study.emergence_page import shipped_result

    data = shipped_result()
    if data is None or not data.get("claims"):
        return None
    folder = out / "study"
    folder.mkdir(exist_ok=True)
    chart = claim_chart(data, folder / "claim.png")
    recipe = data["recipe"]
    return {"chart": chart, "sentences": list(data["sentences"].values()), "n": recipe["n"],
            "bootstrap": recipe["bootstrap"], "archs": list(recipe["archs"]), "seconds": data.get("seconds")}
