"""The random-weights baseline: the same architecture re-initialised, dissected on the same probe set.

Its numbers depend only on what runs up to the deepest dissected layer, so two networks that share that
part of the architecture (the demo's scene and object nets differ only in their last classifier) share
the baseline: :func:`baseline_fingerprint` names exactly those inputs, and a baseline recorded with the
same fingerprint is reused instead of dissected again (the numbers are the same bit for bit).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from unitscope.capture import modules_entered
from unitscope.data.probe import ProbeSet
from unitscope.dissection.engine import DissectionEngine
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.dissection.settings import DissectSettings
from unitscope.models.loading import LoadedModel


def random_baseline(model: LoadedModel, seed: int) -> LoadedModel:
    """The same architecture with every parameter re-initialised from ``seed`` (batch-norm statistics reset)."""
    clone = copy.copy(model)
    clone.module = copy.deepcopy(model.module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in clone.module.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            running = getattr(module, "reset_running_stats", None)
            if callable(running):
                running()
    clone.name = f"{model.name} (random weights, seed {seed})"
    return clone


def baseline_fingerprint(random_model: LoadedModel, paths: dict[str, str], probe: ProbeSet,
                         settings: DissectSettings) -> str:
    """A digest of everything the baseline's numbers depend on: each module entered before the deepest
    layer's output (type, settings, own parameters and buffers), the layers, preprocessing, probe set and
    settings (a probe set is named by its name, size, concepts and first image)."""
    digest = hashlib.sha256()
    named = {k: v for k, v in asdict(settings).items() if not (k == "control" and v == "none")}  # as before it
    digest.update(repr((sorted(paths.items()), random_model.preprocess, probe.name, len(probe), probe.image_size,
                        probe.label_size, sorted(named.items()))).encode())
    digest.update(repr(probe.concepts.concepts).encode())
    x = random_model.preprocess.batch([probe[0].image], random_model.device)
    digest.update(x.detach().cpu().contiguous().numpy().tobytes())  # the probe set's first image, as fed
    modules = dict(random_model.module.named_modules())
    for path in modules_entered(random_model.module, list(paths.values()), x):
        sub = modules[path]
        digest.update(f"{path}|{type(sub).__module__}.{type(sub).__qualname__}|{sub.extra_repr()}".encode())
        for name, tensor in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
            digest.update(name.encode() + str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def baseline_info(model: LoadedModel, paths: dict[str, str], probe: ProbeSet, settings: DissectSettings,
                  workdir: Path, geometry: dict[str, tuple[float, float]], progress: bool,
                  layer_result: Callable[..., LayerResult],
                  reuse: DissectionResult | None = None,
                  control: Callable[[LoadedModel, dict[str, LayerResult], Path], dict[str, object]] | None = None,
                  ) -> dict[str, object]:
    """Detector counts of the randomly re-initialised architecture on the same probe set and rules.

    ``reuse``: a run whose recorded baseline is taken as it is when its fingerprint matches this one's.
    ``control``: the colour control (``colour_control.control_info``) to run on the random network's layers too.
    """
    random_model = random_baseline(model, settings.baseline_seed)
    fingerprint = baseline_fingerprint(random_model, paths, probe, settings)
    recorded = reuse.record.baseline if reuse is not None else None
    if reuse is not None and isinstance(recorded, dict) and recorded.get("fingerprint") == fingerprint:
        if progress:
            print(f"random-weights baseline: the same as {reuse.record.model}'s (same layers up to "
                  f"{list(paths)[-1]}, seed, probe set and settings), reused")
        return dict(recorded)
    outcome = DissectionEngine(random_model, paths, probe, settings, workdir, geometry.get, progress).run()
    results = {stats.name: layer_result(stats, probe, settings) for stats in outcome.layers}
    layers = {name: {"table": layer.table.to_dict(orient="records"), "intervals": layer.intervals}
              for name, layer in results.items()}
    info = {"kind": "random", "seed": settings.baseline_seed, "layers": layers, "fingerprint": fingerprint}
    if control is not None:
        info["control"] = control(random_model, results, workdir / "control")
    return info
