"""``unitscope study emergence``: do object detectors emerge in other networks too? (issue 26, item 3)

For every shipped architecture (the AlexNet pair ``sceneworld-scene``/``sceneworld-object`` and each
``sceneworld-<task>-<arch>`` pair the catalog lists, or the ``--arch`` chosen) and both tasks: pick the layers
nearest 25/50/75/100 % of the feature extractor's depth (:mod:`unitscope.study.emergence_layers`), dissect
them on one SceneWorld probe set with significance, bootstrap intervals, the random-weights twin and the
colour control, and keep the numbers (:mod:`unitscope.study.emergence_metrics`). Each (arch, task) is one
finished run, ``DIR/runs/<arch>-<task>/``: a rerun with the same settings reuses it (the run's identity),
so an interrupted study continues where it stopped. The object net takes the scene net's random twin when
it provably is its own (``dissection/baseline.py``: same layers up to the deepest, seed and probe set).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitscope.defaults import PROBE_N, PROBE_SEED
from unitscope.errors import UsageError
from unitscope.models.catalog import SHIPPED_ARCHITECTURES
from unitscope.study.emergence_layers import TARGETS

if TYPE_CHECKING:
    import pandas as pd

    from unitscope.data.probe import ProbeSet
    from unitscope.dissection.result import DissectionResult
    from unitscope.dissection.settings import DissectSettings
    from unitscope.models.loading import LoadedModel

TASKS: tuple[str, ...] = ("scene", "object")


def shipped_architectures() -> tuple[str, ...]:
    """The architectures with a shipped scene/object pair: AlexNet's, then the catalog's in its order."""
    return ("alexnet", *SHIPPED_ARCHITECTURES)


def model_name(arch: str, task: str) -> str:
    """The built-in name of ``arch``'s ``task`` net (the AlexNet pair keeps its names)."""
    return f"sceneworld-{task}" if arch == "alexnet" else f"sceneworld-{task}-{arch}"


def check_archs(archs: Sequence[str]) -> tuple[str, ...]:
    """``archs`` in the catalog's order, or all shipped ones for none; an unshipped one is one UsageError."""
    known = shipped_architectures()
    unknown = [a for a in archs if a not in known]
    if unknown:
        raise UsageError(f"--arch {unknown[0]} has no shipped scene/object pair; use one of {', '.join(known)}")
    return tuple(a for a in known if a in archs) if archs else known


@dataclass(frozen=True)
class EmergenceRecipe:
    """What every network of the study shares."""

    archs: tuple[str, ...] = field(default_factory=shipped_architectures)
    n: int = PROBE_N
    seed: int = PROBE_SEED
    bootstrap: int = 200
    targets: tuple[float, ...] = TARGETS
    data: str = "sceneworld"

    def check(self) -> None:
        if self.n < 2:
            raise UsageError(f"--n must be at least 2 probe images, got {self.n}")
        if self.bootstrap < 1:
            raise UsageError("the study needs bootstrap resamples (at least 1) for its intervals")


@dataclass(frozen=True)
class StudyNet:
    """One network of the study: its architecture, task and model (a built-in name, or a loaded model)."""

    arch: str
    task: str
    model: str | LoadedModel


def shipped_nets(archs: Sequence[str]) -> list[StudyNet]:
    return [StudyNet(arch, task, model_name(arch, task)) for arch in archs for task in TASKS]


def run_name(arch: str, task: str) -> str:
    return f"{arch}-{task}"


def dissect_net(net: StudyNet, recipe: EmergenceRecipe, folder: Path, probe: str | ProbeSet,
                twin_from: DissectionResult | None, progress: bool, device: str, base: DissectSettings | None = None
                ) -> tuple[DissectionResult, dict[str, Any]]:
    """Dissect one network at the layers nearest the recipe's depths (or reuse its finished run), with the
    random twin, the colour control and the recipe's bootstrap (``base``: the other settings, default rules)."""
    from dataclasses import replace

    from unitscope.dissection.run import dissect
    from unitscope.dissection.settings import DissectSettings
    from unitscope.models.loading import load_model
    from unitscope.study.emergence_layers import pick_layers
    from unitscope.study.emergence_metrics import layer_metrics

    loaded = load_model(net.model, device=device) if isinstance(net.model, str) else net.model
    size = loaded.preprocess.input_size or (112, 112)
    picked = pick_layers(loaded.module, (int(size[0]), int(size[1])), recipe.targets)
    layers = list(dict.fromkeys(p.path for p in picked))
    settings = replace(base or DissectSettings(), baseline="random", control="recolored", bootstrap=recipe.bootstrap)
    started = time.perf_counter()
    if progress:
        print(f"{run_name(net.arch, net.task)}: {loaded.name}, layers {', '.join(layers)}", flush=True)
    result = dissect(loaded, layers, probe, folder / "runs" / run_name(net.arch, net.task), n=recipe.n,
                     seed=recipe.seed, settings=settings, device=device, progress=progress, reuse_baseline=twin_from)
    entry = {"arch": net.arch, "task": net.task, "model": loaded.name, "run": f"runs/{run_name(net.arch, net.task)}",
             "units_by_layer": {name: int(result.layers[name].shape[0]) for name in layers},
             "layers": [p.to_dict() for p in picked],
             "metrics": {name: layer_metrics(result, name) for name in layers},
             "dissect_seconds": result.record.seconds, "wall_seconds": round(time.perf_counter() - started, 1)}
    return result, entry


def run_study(recipe: EmergenceRecipe, folder: Path, nets: Sequence[StudyNet] | None = None,
              probe: str | ProbeSet | None = None, progress: bool = True, device: str = "cpu",
              settings: DissectSettings | None = None) -> dict[str, Any]:
    """Dissect every network of the study not yet finished; the study's data (see ``emergence_page``).

    ``nets`` and ``probe`` default to the shipped pairs of ``recipe.archs`` and ``recipe.data``; ``settings``:
    the dissection's rules and batching (the twin, the control and the bootstrap are the study's)."""
    from unitscope.study.emergence_page import assemble

    recipe.check()
    chosen = list(nets) if nets is not None else shipped_nets(recipe.archs)
    started = time.perf_counter()
    networks = []
    scene_runs: dict[str, DissectionResult] = {}
    for net in sorted(chosen, key=lambda n: (n.task != "scene",)):  # scene nets first: their twins are reused
        result, entry = dissect_net(net, recipe, folder, probe if probe is not None else recipe.data,
                                    scene_runs.get(net.arch), progress, device, settings)
        if net.task == "scene":
            scene_runs[net.arch] = result
        networks.append(entry)
    order = {(n.arch, n.task): i for i, n in enumerate(chosen)}
    networks.sort(key=lambda e: order[(e["arch"], e["task"])])
    recipe_json = {**asdict(recipe), "archs": list(dict.fromkeys(n.arch for n in chosen))}
    return assemble(recipe_json, networks, round(time.perf_counter() - started, 1))


@dataclass(frozen=True)
class EmergenceStudy:
    """What ``study emergence`` wrote: its data, the table (network × depth × category), the claim per
    architecture and depth, one sentence per architecture, and the page."""

    data: dict[str, Any]
    table: pd.DataFrame
    claims: pd.DataFrame
    sentences: dict[str, str]
    page: Path


def study_emergence(out: str | Path, archs: Sequence[str] = (), n: int = PROBE_N, *, render_only: bool = False,
                    device: str = "cpu", progress: bool = True) -> EmergenceStudy:
    """Do object detectors emerge in every shipped architecture? Dissect each shipped scene/object pair (or
    ``archs``) and its random twin at four matching relative depths on ``n`` SceneWorld images, with the
    colour control, and write ``emergence.json``/``.csv``, ``claim.csv``, the charts and ``index.html`` into
    ``out`` (finished runs under ``out/runs`` are reused). ``render_only``: re-render from ``out/emergence.json``.
    """
    import pandas as pd

    from unitscope.study.emergence_page import CLAIM_TABLE, DATA, TABLE, read_data, render_page, write_results

    folder = Path(out)
    if render_only:
        if not (folder / DATA).is_file():
            raise UsageError(f"{folder} holds no {DATA}; run the study first (without --render-only)")
        data = read_data(folder)
        write_results(folder, data)  # the tables follow the data
    else:
        data = run_study(EmergenceRecipe(archs=check_archs(archs), n=n), folder, progress=progress, device=device)
        write_results(folder, data)
    page = render_page(folder)
    return EmergenceStudy(data, pd.read_csv(folder / TABLE), pd.read_csv(folder / CLAIM_TABLE),
                          dict(data["sentences"]), page)
