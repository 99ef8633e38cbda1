"""The main job: the paper's story on SceneWorld, end to end, in a few minutes on a laptop CPU.

1. Accuracy of the two shipped networks (scene net on scenes and on background-only scenes; object net
   on object-centric images) and the transfer table (linear SVM on each network's fc7, both tasks).
2. A SceneWorld probe set exported in the Broden format (and read back through the Broden reader).
3. Dissection of conv3, conv4, conv5 and pool5 of both networks, each beside its random-weights twin and the
   colour control (detectors measured again on the same scenes recoloured from one shared palette).
4. The comparison: object detectors per layer, which objects, and why (frequency, discriminativeness).
5. Segmentation with the scene net's conv5 object detectors, in the same pass as the scene prediction.
6. Minimal images, empirical receptive fields and CAM (the 2015 paper's own figures), in ``demo_steps``; CAM
   beside the random twin.
7. Compositional explanations of the scene net's conv5, chosen on half the probe set, scored on the other
   half against random twins.
8. Two fresh scenes through ``see``: the scene, its objects boxed with the units behind each, the
   segmentation and the CAM from one forward pass (``demo_steps.see_step``).
9. One page, ``index.html``, that ties the findings together, every number beside its null, with the headline
   of ``unitscope study emergence`` across architectures from its shipped result (not recomputed).
Every step whose output is complete is skipped, so an interrupted demo resumes; ``demo-config.json`` says what
settings the folder's outputs were made with, so a folder of other settings or other files is refused.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from unitscope.defaults import FRESH_SEED, PROBE_N, PROBE_SEED
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.staging import publish, staging_path

DEMO_LAYERS: tuple[str, ...] = ("conv3", "conv4", "conv5", "pool5")
NETWORKS: dict[str, str] = {"scene-net": "sceneworld-scene", "object-net": "sceneworld-object"}
TASKS: dict[str, str] = {"scenes": "sceneworld", "objects": "sceneworld-objects"}
SEGMENT_LAYER = "conv5"
WORLD_PREVIEWS = 24  # images of the exported probe set whose label PNGs get colour previews (world/preview/)
MARKER = "demo-config.json"
DEMO_FORMAT = "unitscope-demo/1"


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    n_probe: int = PROBE_N
    n_eval: int = PROBE_N
    n_transfer: int = 200  # per split; the SVM fits cost ~20 CPU s at 300, ~9 s at 200 (the story is the same)
    n_segment: int = 120
    n_minimal: int = 4
    n_rf: int = 60
    n_cam: int = 48  # CAM is cheap: enough scenes for an interval against the random twin
    cam_pictures: int = 6
    explain_twins: int = 4  # random twins pooled as explain's null (one twin cannot resolve p below 1/(U+1))
    seed: int = PROBE_SEED
    eval_seed: int = FRESH_SEED
    report_units: int = 16  # units per layer on each report (detectors first); `unitscope report RUN` shows all
    device: str = "cpu"
    workers: int = 1

    @classmethod
    def quick(cls, out: Path, device: str = "cpu") -> DemoConfig:
        """Every step on a handful of images (seconds per step): a smoke test of the whole story, not its
        numbers (``unitscope demo --quick``; the test suite runs this)."""
        return cls(out=out, n_probe=48, n_eval=24, n_transfer=40, n_segment=8, n_minimal=1, n_rf=8, n_cam=8,
                   cam_pictures=2, explain_twins=1, report_units=4, device=device, workers=0)


def _identity(config: DemoConfig) -> dict[str, object]:
    """What the demo's outputs depend on (not where they go, nor the device or worker count)."""
    return {"format": DEMO_FORMAT, **{k: v for k, v in asdict(config).items() if k not in ("out", "device", "workers")}}


def claim_out(config: DemoConfig, overwrite: bool = False) -> None:
    """Make ``config.out`` this demo's folder: empty, or an earlier demo's of the same settings (it resumes);
    anything else is refused unless ``overwrite``, which discards it and starts afresh."""
    out, identity = config.out, _identity(config)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        try:
            previous = json.loads((out / MARKER).read_text())
        except (OSError, ValueError):
            previous = None
        if previous != identity or overwrite:
            if not overwrite:
                demo = isinstance(previous, dict) and previous.get("format") == DEMO_FORMAT
                held = ("a demo made with other settings" if demo
                        else f"files but no {MARKER} (not a demo's output, or an older unitscope's)")
                raise UsageError(f"{out} holds {held}; choose another --out or pass --overwrite to replace it")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps(identity, indent=1))


def accuracy_table(config: DemoConfig) -> pd.DataFrame:
    """Top-1/top-5 of each network on its own task, and of the scene net without objects."""
    from unitscope.data.classification import open_classification
    from unitscope.evaluation import evaluate_accuracy
    from unitscope.models.loading import load_model

    rows = []
    for model_name, data in (("sceneworld-scene", "sceneworld"), ("sceneworld-scene", "sceneworld-background"),
                             ("sceneworld-object", "sceneworld-objects")):
        model = load_model(model_name, device=config.device)
        dataset = open_classification(data, model.class_names, n=config.n_eval, seed=config.eval_seed)
        accuracy = evaluate_accuracy(model, dataset, progress=False)
        rows.append({"model": model_name, "data": data, **accuracy.to_dict()})
    return pd.DataFrame(rows)


def transfer_table(config: DemoConfig) -> pd.DataFrame:
    """The paper's Table 1 on SceneWorld: a linear SVM on each network's fc7 features, for both tasks."""
    from unitscope.evaluation.transfer import transfer_accuracy
    from unitscope.models.loading import load_model

    rows = []
    for model_name in NETWORKS.values():
        model = load_model(model_name, device=config.device)
        for task, data in TASKS.items():
            result = transfer_accuracy(model, "fc7", data, n=config.n_transfer, seed=config.eval_seed,
                                       train_n=config.n_transfer)
            rows.append({"features": f"{model_name} fc7", "task": task, "accuracy": result.accuracy,
                         "chance": result.chance, "n_train": result.n_train, "n_test": result.n_test})
    return pd.DataFrame(rows)


def cached_table(path: Path, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A table computed once: read back from ``path`` when a previous demo wrote it."""
    if path.is_file():
        return pd.read_csv(path)
    table = build()
    partial = staging_path(path)
    table.to_csv(partial, index=False)
    partial.replace(path)
    return table


def export_world(config: DemoConfig) -> Path:
    """The probe set, written once in the Broden format."""
    from unitscope.data.broden_export import write_broden
    from unitscope.data.sceneworld import SceneWorldProbe

    world = config.out / "world"
    if not (world / "index.csv").is_file():
        write_broden(world, SceneWorldProbe(n=config.n_probe, seed=config.seed), progress=True,
                     previews=WORLD_PREVIEWS)
    return world


def side_by_side(results: dict[str, DissectionResult]) -> str:
    """Both networks' detector tables, one column per layer and network."""
    frames = []
    for label, result in results.items():
        summary = result.summary
        summary["cell"] = summary["detectors"].astype(str) + " (" + summary["unique"].astype(str) + ")"
        frames.append(summary.pivot(index="category", columns="layer", values="cell")
                      .reindex(columns=list(result.layers)).add_prefix(f"{label}:"))
    table = pd.concat(frames, axis=1)
    order = list(results[next(iter(results))].summary["category"].drop_duplicates())
    text: str = "detector units (unique concepts) per layer\n" + table.reindex(order).to_string()
    return text


def compare_networks(config: DemoConfig, results: dict[str, DissectionResult], world: Path) -> dict[str, object]:
    """`unitscope compare` of the two runs, on the exported probe set."""
    from unitscope.analysis.compare.output import comparison_json, write_comparison
    from unitscope.analysis.compare.probe_reopen import run_statistics
    from unitscope.analysis.compare.runs import compare_runs
    from unitscope.data.sceneworld import OBJECT_CLASSES

    out = config.out / "compare"
    if (out / "compare.json").is_file():
        loaded: dict[str, object] = json.loads((out / "compare.json").read_text())
        return loaded
    scene, objects = results["scene-net"], results["object-net"]
    stats, _ = run_statistics(scene, None, "object", None, progress=False)  # the runs' own probe set
    comparison = compare_runs(scene, objects, stats, False, "object", OBJECT_CLASSES)
    staging = staging_path(out)
    write_comparison(comparison, staging)
    publish(staging, out)
    return comparison_json(comparison)


def segment_scenes(config: DemoConfig, run: DissectionResult) -> dict[str, object]:
    """`unitscope segment` with the scene net's detectors, on fresh labelled scenes."""
    from unitscope.analysis.inputs import open_inputs
    from unitscope.analysis.segment.run import run_segment
    from unitscope.models.loading import load_model

    out = config.out / "segment"
    if (out / "metrics.json").is_file():
        metrics: dict[str, object] = json.loads((out / "metrics.json").read_text())
        return metrics
    staging = staging_path(out)
    source = open_inputs(None, "sceneworld", config.n_segment, config.eval_seed + 1, 112)
    model = load_model(NETWORKS["scene-net"], device=config.device)
    summary = run_segment(model, run, source, staging, SEGMENT_LAYER, "object", 16, 6)
    publish(staging, out)
    return summary.metrics or {}


def explain_scene_net(config: DemoConfig, run: DissectionResult) -> dict[str, object]:
    """`unitscope explain` of the scene net's conv5: formulas chosen on half the probe set, scored on the other
    half against the same architecture with random weights (``config.explain_twins`` twins pooled)."""
    from unitscope.explain import explain

    out = config.out / "explain"
    if not (out / "summary.json").is_file():
        explain(run, SEGMENT_LAYER, out, null_twins=config.explain_twins, device=config.device, progress=False)
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    return summary


STEPS = 12


def step(number: int, text: str, started: float) -> None:
    """One progress line per step, printed before the step's work starts: wall and CPU seconds so far
    (on a shared machine the CPU seconds are the fair measure)."""
    print(f"[{number}/{STEPS} {time.perf_counter() - started:5.0f} s, CPU {time.process_time():4.0f} s] {text}",
          flush=True)


def run_demo(config: DemoConfig, overwrite: bool = False) -> dict[str, object]:
    """Run every step, print what a reader needs, and return the numbers (``overwrite``: see :func:`claim_out`)."""
    from unitscope import demo_steps
    from unitscope.models.loading import resolve_device

    resolve_device(config.device)  # a device this machine lacks is refused before any work
    started = time.perf_counter()
    claim_out(config, overwrite)
    step(1, "accuracy of the shipped networks", started)
    accuracy = cached_table(config.out / "accuracy.csv", lambda: accuracy_table(config))
    print("accuracy of the shipped networks (fresh SceneWorld seed)")
    print(accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    step(2, "transfer: linear SVM on fc7 features", started)
    transfer = cached_table(config.out / "transfer.csv", lambda: transfer_table(config))
    print("\ntransfer: linear SVM on fc7 features (the paper's Table 1)")
    print(transfer.pivot(index="features", columns="task", values="accuracy")
          .to_string(float_format=lambda v: f"{v:.3f}"))
    step(3, f"exporting {config.n_probe} SceneWorld probe images in the Broden format", started)
    world = export_world(config)
    from unitscope.dissection.run import dissect

    # Random weights beside each net, and the colour control: every object/part detector measured again on the
    # same scenes painted from one palette shared by all classes. The probe set is the exported one's own
    # scenes (SceneWorld, same n and seed: the same pixels and labels), which has a recoloured twin.
    settings = DissectSettings(workers=config.workers, baseline="random", control="recolored")
    results: dict[str, DissectionResult] = {}
    for number, (label, model_name) in enumerate(NETWORKS.items(), start=4):
        step(number, f"dissecting {model_name}: {', '.join(DEMO_LAYERS)}, its random twin and the colour control "
                     "(and its report)", started)
        results[label] = dissect(model_name, DEMO_LAYERS, "sceneworld", config.out / label, n=config.n_probe,
                                 seed=config.seed, settings=settings, device=config.device,
                                 reuse_baseline=results.get("scene-net"))
        if not (config.out / label / "report.html").is_file():
            from unitscope.report.dissection import ReportOptions
            from unitscope.report.run_report import render_report

            render_report(results[label], ReportOptions(max_units=config.report_units), device=config.device)
    print("\n" + side_by_side(results))
    from unitscope.dissection.confidence import confidence_lines

    for label, result in results.items():
        print(f"{label}: {confidence_lines(result)}")
    step(6, "comparing the two networks' detectors", started)
    comparison = compare_networks(config, results, world)
    step(7, f"segmenting {config.n_segment} scenes with the scene net's {SEGMENT_LAYER} object detectors", started)
    segmentation = segment_scenes(config, results["scene-net"])
    print(f"\nsegmentation with {SEGMENT_LAYER} object detectors of the scene net: "
          f"mean IoU {segmentation['mean_iou']:.3f} over object classes "
          f"(baseline, most frequent class everywhere: {segmentation['baseline_mean_iou']:.3f}), "
          f"pixel accuracy {segmentation['pixel_accuracy']:.3f}")
    step(8, f"minimal images of {config.n_minimal} scenes", started)
    minimal = demo_steps.minimal_step(config.out, config.n_minimal, config.eval_seed + 2, config.device)
    step(9, f"empirical receptive fields by occlusion ({', '.join(demo_steps.RF_LAYERS)})", started)
    fields = demo_steps.receptive_step(config.out, world, config.n_rf, config.device)
    step(10, f"CAM on {config.n_cam} scenes, beside the same network with random weights", started)
    cams, cam_report = demo_steps.cam_step(config.out, config.n_cam, config.eval_seed + 3, config.device,
                                           config.cam_pictures)
    print(f"\n{demo_steps.cam_line(cam_report)}\n{(cam_report.get('baseline') or {}).get('verdict', '')}")
    step(11, f"explaining the scene net's {SEGMENT_LAYER} units with formulas, held out, against random twins",
         started)
    explained = explain_scene_net(config, results["scene-net"])
    print(f"\nexplain {SEGMENT_LAYER}: {explained.get('verdict', '')}")
    interval = explained.get("gain_vs_random")
    if isinstance(interval, dict):
        print(interval.get("verdict", ""))
    step(12, f"{demo_steps.SEE_SCENES} scenes through see: scene, objects and why in one forward pass", started)
    seen = demo_steps.see_step(config.out, config.out / "scene-net", demo_steps.SEE_SCENES, config.eval_seed + 4,
                               config.device)
    for found in seen:
        print(demo_steps.see_line(found["sight"]))
    study = demo_steps.study_section(config.out)  # the shipped result of `unitscope study emergence`: no recomputing
    seconds = time.perf_counter() - started
    summary = {
        "accuracy": accuracy.to_dict(orient="records"),
        "transfer": transfer.to_dict(orient="records"),
        "detectors": {label: r.summary.to_dict(orient="records") for label, r in results.items()},
        "correlations": comparison.get("correlations"),
        "segmentation": segmentation,
        "cam": {key: cam_report.get(key) for key in ("method", "layer", "localisation", "foreground", "baseline")},
        "control": {label: {"run": r.record.control, "random": (r.record.baseline or {}).get("control")}
                    for label, r in results.items()},
        "explain": {key: explained.get(key) for key in ("layer", "units", "units_significant", "verdict",
                                                         "mean_heldout_iou", "null", "gain_vs_random")},
        "see": [found["sight"] for found in seen],
        "study": {key: value for key, value in (study or {}).items() if key != "chart"} or None,
        "seconds": round(seconds, 1),
    }
    (config.out / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
    from unitscope.report.demo_page import write_demo_page

    page = write_demo_page(config.out, summary, results, {"minimal": minimal, "fields": fields, "cam": cams,
                                                               "see": [found["strip"] for found in seen]}, study)
    print(f"\nthe story in one page: {page}")
    print(f"demo finished in {seconds:.0f} s ({time.process_time():.0f} CPU s); each report shows the "
          f"{config.report_units} best units per layer: `unitscope report {config.out / 'scene-net'}` renders all")
    return summary
