"""The random-weights baseline: the same architecture re-initialised, dissected on the same probe set.

Its numbers depend only on what runs up to the deepest dissected layer, so two networks that share that
part of the architecture (the demo's scene and object nets differ only in their last classifier) share
the baseline: :func:`baseline_fingerprint` names exactly those inputs, and a baseline recorded with the
same fingerprint is reused instead of dissected again (the numbers are the same bit for bit).

The twin's detectors in every bootstrap resample of the probe images are kept with it (``resampled``: per
layer and category a line of space-separated counts, one per resample, and the resamples' digest), so the
run's own resampled counts pair with them image resample by image resample: ``difference`` holds, per layer
and category, the run's detectors minus the twin's and the 95 % interval of that paired difference. It
depends on the run, so it is computed for each run, also when the twin's counts are reused.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from unitscope.capture import modules_entered
from unitscope.data.probe import ProbeSet
from unitscope.dissection.engine import DissectionEngine
from unitscope.dissection.result import DissectionResult, LayerResult, ResampledCounts
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
                  mine: dict[str, LayerResult] | None = None) -> dict[str, object]:
    """Detector counts of the randomly re-initialised architecture on the same probe set and rules.

    ``reuse``: a run whose recorded baseline is taken as it is when its fingerprint matches this one's.
    ``control``: the colour control (``colour_control.control_info``) to run on the random network's layers too.
    ``mine``: the run's own layers, whose resampled counts give each layer's paired ``difference``.
    """
    random_model = random_baseline(model, settings.baseline_seed)
    fingerprint = baseline_fingerprint(random_model, paths, probe, settings)
    recorded = reuse.record.baseline if reuse is not None else None
    if reuse is not None and isinstance(recorded, dict) and recorded.get("fingerprint") == fingerprint:
        if progress:
            print(f"random-weights baseline: the same as {reuse.record.model}'s (same layers up to "
                  f"{list(paths)[-1]}, seed, probe set and settings), reused")
        return with_differences(dict(recorded), mine or {})
    outcome = DissectionEngine(random_model, paths, probe, settings, workdir, geometry.get, progress).run()
    results = {stats.name: layer_result(stats, probe, settings) for stats in outcome.layers}
    layers: dict[str, dict[str, object]] = {
        name: {"table": layer.table.to_dict(orient="records"), "intervals": layer.intervals}
        for name, layer in results.items()}
    for name, layer in results.items():
        if layer.resampled is not None:
            layers[name]["resampled"] = layer.resampled.to_record()  # one short line of counts per category
    info = {"kind": "random", "seed": settings.baseline_seed, "layers": layers, "fingerprint": fingerprint}
    if control is not None:
        info["control"] = control(random_model, results, workdir / "control")
    return with_differences(info, mine or {})


def recorded_resamples(entry: object) -> ResampledCounts | None:
    """The twin's resampled counts of one recorded baseline layer; None when absent or malformed (older runs)."""
    return ResampledCounts.from_record(entry.get("resampled") if isinstance(entry, dict) else None)


def paired_difference(mine: ResampledCounts, theirs: ResampledCounts, observed: dict[str, int],
                      twin: dict[str, int]) -> dict[str, list[float]]:
    """Per category: [run's detectors − twin's, 2.5th, 97.5th percentile of the per-resample difference].

    Empty unless both counts come from the same resamples of the probe images (equal draw digests)."""
    if mine.draws != theirs.draws:
        return {}
    out: dict[str, list[float]] = {}
    for category, counts in mine.counts.items():
        other = theirs.counts.get(category)
        if other is None or len(other) != len(counts) or len(counts) == 0 or category not in observed \
                or category not in twin:
            continue
        low, high = np.percentile(counts - other, [2.5, 97.5])
        out[category] = [float(observed[category] - twin[category]), float(low), float(high)]
    return out


def with_differences(info: dict[str, object], mine: dict[str, LayerResult]) -> dict[str, object]:
    """``info`` with each layer's paired ``difference`` for this run (layers copied, the reused record untouched)."""
    layers = info.get("layers")
    if not isinstance(layers, dict):
        return info
    updated: dict[str, object] = {}
    for name, entry in layers.items():
        entry = dict(entry) if isinstance(entry, dict) else entry
        if isinstance(entry, dict):
            entry.pop("difference", None)
            theirs = recorded_resamples(entry)
            layer = mine.get(name)
            if theirs is not None and layer is not None and layer.resampled is not None:
                observed = {str(r["category"]): int(r["detectors"]) for r in layer.table.to_dict(orient="records")}
                table = entry.get("table")
                twin = {str(r["category"]): int(r["detectors"]) for r in table if isinstance(r, dict)} \
                    if isinstance(table, list) else {}
                difference = paired_difference(layer.resampled, theirs, observed, twin)
                if difference:
                    entry["difference"] = difference
        updated[name] = entry
    return {**info, "layers": updated}
