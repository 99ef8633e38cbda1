"""The main job: the paper's story on SceneWorld, end to end, in a few minutes on a laptop CPU.

1. Accuracy of the two shipped networks (scene net on scenes and on background-only scenes; object net
   on object-centric images).
2. A SceneWorld probe set exported in the Broden format (and read back through the Broden reader).
3. Dissection of conv3, conv4, conv5 and pool5 of both networks; the detector tables side by side.
Every step is skipped when its output is already complete, so an interrupted demo resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unitscope.dissect.result import DissectionResult
from unitscope.dissect.settings import DissectSettings

DEMO_LAYERS: tuple[str, ...] = ("conv3", "conv4", "conv5", "pool5")
NETWORKS: dict[str, str] = {"scene-net": "sceneworld-scene", "object-net": "sceneworld-object"}


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    n_probe: int = 800
    n_eval: int = 600
    seed: int = 0
    eval_seed: int = 12345
    device: str = "cpu"
    workers: int = 1


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


def export_world(config: DemoConfig) -> Path:
    """The probe set, written once in the Broden format."""
    from unitscope.data.broden_export import write_broden
    from unitscope.data.sceneworld import SceneWorldProbe

    world = config.out / "world"
    if not (world / "index.csv").is_file():
        write_broden(world, SceneWorldProbe(n=config.n_probe, seed=config.seed), progress=True)
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
    order = [c for c in results[next(iter(results))].summary["category"].drop_duplicates()]
    return "detector units (unique concepts) per layer\n" + table.reindex(order).to_string()


def run_demo(config: DemoConfig) -> dict[str, object]:
    """Run every step, print what a reader needs, and return the numbers."""
    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    accuracy = accuracy_table(config)
    accuracy.to_csv(config.out / "accuracy.csv", index=False)
    print("accuracy of the shipped networks (fresh SceneWorld seed)")
    print(accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    world = export_world(config)
    from unitscope.dissect.run import dissect

    settings = DissectSettings(workers=config.workers)
    results = {}
    for label, model_name in NETWORKS.items():
        print(f"dissecting {model_name}: {', '.join(DEMO_LAYERS)}")
        results[label] = dissect(model_name, DEMO_LAYERS, str(world), config.out / label, settings=settings,
                                 device=config.device)
    print(side_by_side(results))
    seconds = time.perf_counter() - started
    summary = {
        "accuracy": accuracy.to_dict(orient="records"),
        "detectors": {label: r.summary.to_dict(orient="records") for label, r in results.items()},
        "seconds": round(seconds, 1),
    }
    (config.out / "demo.json").write_text(json.dumps(summary, indent=2))
    print(f"reports: {', '.join(str(config.out / label / 'report.html') for label in NETWORKS)}")
    print(f"demo finished in {seconds:.0f} s")
    return summary
