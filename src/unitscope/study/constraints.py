"""``unitscope study constraints``: what each training constraint buys, and at what accuracy (issue 27).

For every arm (the control ``none`` and each constraint) and seed: train the scene net, measure its top-1 on
fresh images, dissect conv3–pool5 with significance, bootstrap intervals, the random twin and the colour
control, and keep the numbers. Every step leaves a finished file (``models/ARM-sSEED.pt``,
``runs/ARM-sSEED/``, ``metrics/ARM-sSEED.json``), so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unitscope.errors import UsageError

ARMS: tuple[str, ...] = ("none", "whitening", "filters", "sparsity")
LAYERS: tuple[str, ...] = ("conv3", "conv4", "conv5", "pool5")
FRESH_N = 1000


@dataclass(frozen=True)
class StudyRecipe:
    """What every arm shares; a study folder keeps one recipe (``study.json``)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    n_train: int = 6000
    n_val: int = 500
    epochs: int = 6
    probe_n: int = 500
    fresh_n: int = FRESH_N
    threads: int = 2  # torch threads of every training (bits depend on it; 1 is faster on a busy 2-core machine)

    def check(self, folder: Path) -> None:
        """Write ``study.json`` or refuse a folder that holds another recipe."""
        path = folder / "study.json"
        mine = json.loads(json.dumps(asdict(self)))
        if path.is_file():
            held = {"threads": 2, **json.loads(path.read_text())}  # folders from before --threads trained on 2
            if held != mine:
                differ = ", ".join(k for k in mine if held.get(k) != mine[k])
                raise UsageError(f"{folder} holds a study with another recipe ({differ}); "
                                 "give the same options or another --out")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(mine, indent=1))


def run_name(arm: str, seed: int) -> str:
    return f"{arm}-s{seed}"


def train_arm(recipe: StudyRecipe, arm: str, seed: int, path: Path, progress: bool) -> None:
    from unitscope.training import train_sceneworld_net
    from unitscope.training_config import TrainConfig

    if path.is_file():
        return
    config = TrainConfig(task="scene", n_train=recipe.n_train, n_val=recipe.n_val, epochs=recipe.epochs,
                         seed=seed, threads=recipe.threads, constraints=(arm,) if arm == "none" else _canonical(arm))
    checkpoint = train_sceneworld_net(config, progress=progress)
    partial = path.with_name(path.name + ".partial")
    checkpoint.save(partial)
    os.replace(partial, path)


def _canonical(arm: str) -> tuple[str, ...]:
    from unitscope.constraint_spec import parse_constraint

    return (parse_constraint(arm).text(),)


def measure_arm(recipe: StudyRecipe, folder: Path, arm: str, seed: int, fresh: Any, progress: bool
                ) -> dict[str, Any]:
    """Fresh-seed accuracy and the dissection's numbers of one trained net (``metrics/ARM-sSEED.json``)."""
    from unitscope.api import dissect
    from unitscope.dissection.settings import DissectSettings
    from unitscope.models.builtin import SceneWorldCheckpoint
    from unitscope.study.constraint_metrics import run_metrics
    from unitscope.training import accuracy_on

    name = run_name(arm, seed)
    out = folder / "metrics" / f"{name}.json"
    if out.is_file():
        return dict(json.loads(out.read_text()))
    model = folder / "models" / f"{name}.pt"
    started = time.perf_counter()
    checkpoint = SceneWorldCheckpoint.load(model)
    images, labels = fresh
    top1 = accuracy_on(checkpoint.build(), checkpoint.preprocess, images, labels)
    settings = DissectSettings(baseline="random", control="recolored")
    found = dissect(str(model), LAYERS, "sceneworld", folder / "runs" / name, n=recipe.probe_n,
                    settings=settings, progress=progress)
    metrics = {"arm": arm, "seed": seed, "fresh_top1": top1, "val_top1": checkpoint.info["val_top1"],
               "train_seconds": checkpoint.info["total_seconds"],
               "measure_seconds": round(time.perf_counter() - started, 1),
               "constraints": checkpoint.info.get("constraints"), "layers": run_metrics(found.result)}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(metrics, indent=1))
    os.replace(partial, out)
    return metrics


def run_study(recipe: StudyRecipe, folder: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Train and measure every (arm, seed) not yet finished; the metrics of all of them."""
    import torch

    from unitscope.defaults import FRESH_SEED
    from unitscope.training import render_split

    recipe.check(folder)
    (folder / "models").mkdir(exist_ok=True)
    torch.set_num_threads(recipe.threads)
    fresh = None
    found = []
    for seed in recipe.seeds:
        for arm in recipe.arms:
            name = run_name(arm, seed)
            if not (folder / "metrics" / f"{name}.json").is_file():
                started = time.perf_counter()
                train_arm(recipe, arm, seed, folder / "models" / f"{name}.pt", progress)
                if fresh is None:
                    fresh = render_split("scenes", recipe.fresh_n, FRESH_SEED, 112, "render fresh", progress)
                print(f"{name}: trained in {time.perf_counter() - started:.0f} s", flush=True)
            found.append(measure_arm(recipe, folder, arm, seed, fresh, progress))
            print(f"{name}: measured", flush=True)
    return found
