"""The 2015 paper's signature figures for the demo: minimal images, receptive fields, CAM; and ``see``.

Each step writes one directory under the demo's output (skipped when already complete) and returns the
PNG files its gallery on ``index.html`` shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitscope.staging import publish, staging_path

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from unitscope.see.sight import Sight

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


SEE_SCENES = 2
SEE_LAYERS: tuple[str, ...] = ("conv5", "pool5")
SEE_FIT_N = 100  # probe images the concept vectors are fitted on (cached in the run: a rerun reads them back)
STRIP_SCALE = 3  # the 112 px scenes drawn 3x, so boxes and labels stay readable


def see_step(out: Path, run_dir: Path, n: int, seed: int, device: str) -> list[dict[str, Any]]:
    """``unitscope see`` on ``n`` fresh scenes with the scene net's run: scene, boxes with their units,
    segmentation and CAM from one forward pass. Returns, per scene, its sight (JSON form), its page and a
    strip (image with boxes | segmentation | CAM) for the demo's page."""
    import os

    from unitscope.analysis.inputs import open_inputs
    from unitscope.see import SeeOptions, SeeSystem
    from unitscope.see.run import run_see

    target = out / "see"
    if not (target / "index.html").is_file():
        options = SeeOptions(layers=SEE_LAYERS, fit_n=SEE_FIT_N)
        system = SeeSystem.open(run_dir, device=device, options=options)
        source = open_inputs(None, "sceneworld", n, seed, system.image_size[0])
        stage = staging_path(target)
        result = run_see(system, source, stage, run_url=os.path.relpath(run_dir, target), progress=False,
                         title=f"{n} scenes through see")
        for i, sight in enumerate(result.sights):  # a strip per scene for the demo's page
            see_strip(source[i].image, sight).save(stage / f"{sight.name}_strip.png")
        publish(stage, target)
    found = []
    for path in sorted(target.glob("*_strip.png")):
        name = path.name.removesuffix("_strip.png")
        found.append({"sight": json.loads((target / f"{name}.json").read_text()), "strip": path,
                      "page": target / f"{name}.html"})
    return found


def see_strip(image: np.ndarray, sight: Sight) -> Image.Image:
    """The scene with its boxes (concept and confidence), its segmentation and its CAM, side by side."""
    import numpy as np
    from PIL import Image, ImageDraw

    from unitscope.analysis.overlay import blend_heatmap, blend_labels, concept_colours

    picture = np.asarray(image, dtype=np.uint8)
    h, w = picture.shape[:2]
    colours = concept_colours(sorted(sight.concepts))
    heat = np.asarray(Image.fromarray((np.asarray(sight.heatmap) * 255).astype(np.uint8)).resize(
        (w, h), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    panels = [picture, blend_labels(picture, np.asarray(sight.segmentation), colours), blend_heatmap(picture, heat)]
    size = (w * STRIP_SCALE, h * STRIP_SCALE)
    strip = Image.new("RGB", (size[0] * 3 + 8, size[1]), "white")
    for k, panel in enumerate(panels):
        strip.paste(Image.fromarray(panel).resize(size, Image.Resampling.NEAREST), (k * (size[0] + 4), 0))
    draw = ImageDraw.Draw(strip)
    sy, sx = size[1] / sight.image_size[0], size[0] / sight.image_size[1]
    for found in sight.objects:
        colour = tuple(round(255 * c) for c in colours.get(found.number, (1.0, 0.0, 0.0)))
        y0, x0, y1, x1 = found.box
        draw.rectangle((x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1), outline=colour, width=2)
        draw.text((x0 * sx + 3, y0 * sy + 2), f"{found.concept} {found.confidence:.2f}", fill=colour)
    return strip


def see_line(sight: dict[str, Any]) -> str:
    """One scene through see in a line: the scene and its confidence, each box with its strongest unit."""
    top = sight["scene"][0]
    boxes = []
    for found in sight["objects"]:
        units = found["units"]
        behind = f" ← {units[0]['layer']} unit {units[0]['unit']} ({units[0]['label'] or 'no label'})" if units else ""
        boxes.append(f"{found['concept']} {found['confidence']:.2f}{behind}")
    return (f"see {sight['name']}: {top['name']} ({top['probability']:.2f}); "
            f"{len(boxes)} object(s): {'; '.join(boxes) or 'none boxed'}")
