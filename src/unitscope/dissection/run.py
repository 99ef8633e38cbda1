"""``dissect()``: model + layers + probe set → labelled units, in a run directory that is never half-written.

The work happens in a staging directory ``RUN.partial`` next to ``RUN``; only a complete result is renamed
to ``RUN``. Running the same command again resumes from the staging directory's last checkpoint, or, if
``RUN`` is already complete for the same command, returns it without recomputing. Bad input detected
mid-run removes the staging directory, so nothing half-written is left behind.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import cast

import pandas as pd
import torch

from unitscope.capture import LayerCapture
from unitscope.data import open_probe, probe_count
from unitscope.data.probe import ProbeSet, has_labels
from unitscope.dissection.baseline import baseline_info
from unitscope.dissection.colour_control import Measure, control_info, control_twin
from unitscope.dissection.confidence import layer_confidence, small_probe_warning
from unitscope.dissection.disk import disk_problem, estimate
from unitscope.dissection.engine import DissectionEngine, EngineOutcome, LayerStatistics
from unitscope.dissection.labels import detector_table, label_units
from unitscope.dissection.loader import plan_loading
from unitscope.dissection.naming import different_run, named_identity, named_only
from unitscope.dissection.record import (
    DataSpec,
    LayerRecord,
    ModelSpec,
    RunRecord,
    RunSpec,
    spec_differences,
    spec_from_json,
    versions,
)
from unitscope.dissection.result import HISTOGRAM, TOP_MAPS, DissectionResult, LayerResult, layer_dirname
from unitscope.dissection.settings import DissectSettings
from unitscope.dissection.threads import intra_op_threads
from unitscope.distributed import Group, PeerFailure, session
from unitscope.errors import UsageError
from unitscope.models.depth import layer_depth
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import LoadedModel, load_model, resolve_device
from unitscope.models.precision import check_amp
from unitscope.receptive.theory import alignment_geometry
from unitscope.staging import lock_output, publish, staging_path


def _data_spec(data: str | ProbeSet, n: int | None, seed: int, size: int) -> DataSpec:
    """The probe as named: a spec string with the command's n, seed and size; an object by what it holds."""
    if isinstance(data, str):
        return DataSpec(data, probe_count(data, n), seed, size)
    root = getattr(data, "root", None)
    if isinstance(root, Path):  # a directory (Broden, image folder): reopened by its path and row limit
        return DataSpec(str(root.resolve()), getattr(data, "limit", None), seed, size)
    own = getattr(data, "identity", None)
    defined = own() if callable(own) else {}
    return DataSpec(data.name, len(data), int(defined.get("seed", seed)), int(data.image_size[0]))


def _with_content(spec: RunSpec, model: LoadedModel, probe: ProbeSet) -> RunSpec:
    """``spec`` with the model's state digest and class, the probe set's digest and length, and the
    preprocessing actually used: what reuse, resume and reopening compare."""
    from unitscope.data.identity import probe_identity
    from unitscope.models.digest import module_class, state_digest

    held = probe_identity(probe)
    preprocess = model.preprocess
    size = preprocess.input_size or probe.image_size
    used = {"input_size": [int(v) for v in size], "mean": [float(v) for v in preprocess.mean],
            "std": [float(v) for v in preprocess.std],
            "resize": "bilinear-antialias" if tuple(size) != tuple(probe.image_size) else "none"}
    return replace(spec, model=replace(spec.model, digest=state_digest(model.module),
                                       module_class=module_class(model.module)),
                   data=replace(spec.data, digest=held.digest, images=held.images), preprocessing=used)


def same_run(a: RunSpec, b: RunSpec) -> bool:
    """Whether two specs name the same run: the order of the layers is display only."""
    return not spec_differences(a, b)


def _sorted_layers(spec: RunSpec) -> RunSpec:
    return replace(spec, layers=tuple(sorted(set(spec.layers))))


def _identity_json(spec: RunSpec) -> dict[str, object]:
    """The spec as plain JSON (what ``config.json`` of an interrupted run holds)."""
    loaded: dict[str, object] = json.loads(json.dumps(asdict(spec)))
    return loaded


def _layer_result(stats: LayerStatistics, probe: ProbeSet, settings: DissectSettings) -> LayerResult:
    units = label_units(stats.iou, probe.concepts, stats.thresholds, settings.iou_threshold)
    intervals: dict[str, object] = {}
    resampled = None
    if stats.iou is not None and stats.overlap is not None and stats.evidence is not None and len(probe.concepts):
        confidence = layer_confidence(stats.iou.double().numpy(), stats.overlap, stats.evidence, probe.concepts,
                                      settings.iou_threshold, settings.fdr, settings.bootstrap)
        position = units.columns.get_loc("detector")
        units.insert(position, "iou_detector", units["detector"].astype(bool))  # NetDissect's rule
        for column in confidence.columns:
            units[column] = confidence.columns[column].to_numpy()
        units["detector"] = units["iou_detector"] & units["significant"].astype(bool)
        intervals = confidence.intervals
        resampled = confidence.resampled
    units.insert(len(units.columns), "max_activation", stats.top_scores[:, 0].double().numpy()
                 if stats.top_scores.numel() else 0.0)
    k = stats.top_indices.shape[1]
    w = stats.shape[2]
    rows = {
        "unit": torch.arange(stats.shape[0]).repeat_interleave(k).numpy(),
        "rank": torch.arange(k).repeat(stats.shape[0]).numpy(),
        "image": stats.top_indices.reshape(-1).numpy(),
        "score": stats.top_scores.reshape(-1).double().numpy(),
        "peak_y": (stats.top_peaks // w).reshape(-1).numpy(),
        "peak_x": (stats.top_peaks % w).reshape(-1).numpy(),
    }
    table = detector_table(units, probe.concepts.categories)
    iou = stats.iou.float().numpy() if stats.iou is not None else None
    layer = LayerResult(stats.name, stats.path, stats.shape, units, table, pd.DataFrame(rows), iou)
    layer.intervals = intervals
    layer.resampled = resampled
    layer.top_maps = stats.top_maps.numpy() if stats.top_maps is not None else None
    layer.histogram = stats.histogram.counts.cpu().numpy() if stats.histogram is not None else None
    return layer


def layer_shapes(model: LoadedModel, paths: dict[str, str], probe: ProbeSet) -> dict[str, tuple[int, int, int]]:
    """Each layer's (units, h, w), from one forward pass on the first probe image (empty if unreadable)."""
    try:
        sample = probe[0]
    except Exception:
        return {}
    with LayerCapture(model.module, list(paths.values())) as capture:
        outputs = capture.run(model.preprocess.batch([sample.image], model.device))
    return {name: tuple(outputs[path].shape[1:]) for name, path in paths.items()  # type: ignore[misc]
            if outputs[path].dim() == 4}


def dissect(*args: object, device: str = "cpu", **kwargs: object) -> DissectionResult:
    """Label every unit of ``layers`` with the concept it detects (Network Dissection, exact).

    Under ``torchrun`` each rank dissects a strided shard of the probe set and the ranks merge their
    statistics; the result equals a single process's bit for bit and only rank 0 writes ``out``.
    ``reuse_baseline``: a run whose random-weights baseline is taken when it provably is this one's
    (same fingerprint: see ``dissection.baseline``) instead of dissecting the random network again.
    The run writes data only; :func:`unitscope.report.dissection.write_dissection_report` renders it.
    """
    with session(device) as group:
        return _dissect(*args, device=group.device, group=group, **kwargs)  # type: ignore[arg-type]


def _dissect(
    model: str | LoadedModel = "sceneworld-scene",
    layers: Sequence[str] = ("conv5",),
    data: str | ProbeSet = "sceneworld",
    out: str | Path | None = None,
    *,
    weights: str | None = None,
    num_classes: int | None = None,
    n: int | None = None,
    seed: int = 0,
    size: int = 112,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    settings: DissectSettings | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    trust_checkpoint: bool = False,
    group: Group | None = None,
    reuse_baseline: DissectionResult | None = None,
) -> DissectionResult:
    group = group or Group()
    progress = progress and group.is_main
    settings = settings or DissectSettings()
    settings.validate()
    if not layers:
        raise UsageError("no layer given; pass --layer NAME (e.g. conv5 or features.10)")
    model_spec = ModelSpec(model if isinstance(model, str) else model.name, weights, num_classes, input_size,
                           tuple(mean) if mean else None, tuple(std) if std else None)
    data_spec = _data_spec(data, n, seed, size)
    identity = named_identity(model_spec, data_spec, layers, settings)
    out_path = Path(out) if out is not None else None
    # The whole run (model loading, the shape probe, both passes, the tables) at pass 1's thread count: at
    # torch's default beside a loader worker, OpenMP threads spin at every barrier of the small operations
    # outside the passes too (on 2 cores the shape probe cost 7x the CPU of one thread).
    threads = intra_op_threads(plan_loading(settings.workers, resolve_device(device).type, ranks=group.world).threads)
    if out_path is None or not group.is_main:
        with threads:
            return _dissect_locked(model, layers, data, out_path, identity, weights, num_classes, n, seed, size,
                                   input_size, mean, std, settings, device, overwrite, progress, trust_checkpoint,
                                   group, reuse_baseline)
    with lock_output(out_path), threads:  # one writer per run directory (re-entrant: the CLI holds it too)
        return _dissect_locked(model, layers, data, out_path, identity, weights, num_classes, n, seed, size,
                               input_size, mean, std, settings, device, overwrite, progress, trust_checkpoint, group,
                               reuse_baseline)


def _dissect_locked(
    model: str | LoadedModel, layers: Sequence[str], data: str | ProbeSet, out_path: Path | None,
    identity: RunSpec, weights: str | None, num_classes: int | None, n: int | None, seed: int, size: int,
    input_size: int | None, mean: Sequence[float] | None, std: Sequence[float] | None, settings: DissectSettings,
    device: str, overwrite: bool, progress: bool, trust_checkpoint: bool, group: Group,
    reuse_baseline: DissectionResult | None = None,
) -> DissectionResult:
    """``dissect`` once the output (if any) is locked for this process."""
    finished: DissectionResult | None = None
    if out_path is not None and (out_path / "summary.json").is_file() and not overwrite:
        finished = DissectionResult.load(out_path)
        named = spec_differences(named_only(finished.record.spec), named_only(identity))
        if named:  # told apart by name: no need to load anything
            raise different_run(out_path, named)
    if (out_path is not None and out_path.exists() and not (out_path / "summary.json").is_file()
            and any(out_path.iterdir()) and not overwrite):
        raise UsageError(f"{out_path} exists and is not a dissection run; choose another --out")

    loaded = model if isinstance(model, LoadedModel) else load_model(model, weights, num_classes, device,
                                                                      trust_checkpoint)
    loaded = replace(loaded, preprocess=loaded.preprocess.with_overrides(input_size, mean, std),
                     amp=settings.amp)  # never mutate
    check_amp(settings.amp, loaded.device)
    paths = {name: resolve_layer(loaded.module, name) for name in layers}
    probe = data if not isinstance(data, str) else open_probe(data, n=n, seed=seed, size=size)
    if len(probe) == 0:
        raise UsageError(f"the probe set {probe.name} is empty; check --data")
    twin = control_twin(probe) if settings.control == "recolored" else None  # refused before any work
    identity = _with_content(identity, loaded, probe)
    if finished is not None:
        differences = spec_differences(finished.record.spec, identity)
        if differences:
            raise different_run(out_path or Path(), differences)
        if progress:
            print(f"{out_path} is already complete for this command; nothing to recompute")
        return finished
    model_input = loaded.preprocess.input_size or probe.image_size
    geometry = alignment_geometry(loaded.module, model_input) if settings.upsample == "rf" else {}
    # The shape probe, once: the disk estimate needs it; the small-probe warning only with labels (IoU to doubt).
    probed = layer_shapes(loaded, paths, probe) if has_labels(probe) or out_path is not None else {}
    shapes = probed if has_labels(probe) else {}
    native = None if loaded.preprocess.input_size is not None else min(probe.image_size)  # larger images help
    warnings = [w for name, shape in shapes.items()
                if (w := small_probe_warning(settings.quantile, len(probe), shape, name, native)) is not None]
    for line in warnings:
        print(line, file=sys.stderr)

    mine = group.shard_probe(probe, settings.batch_size) if group.active else probe
    if out_path is None:
        with tempfile.TemporaryDirectory(prefix="unitscope-") as tmp:
            outcome = DissectionEngine(loaded, paths, mine, settings, Path(tmp), geometry.get, progress, group).run()
            return _finish(outcome, probe, settings, identity, loaded, None, geometry, warnings, paths, twin,
                           Path(tmp), progress, reuse_baseline)

    staging = staging_path(out_path)
    config = _identity_json(_sorted_layers(identity))
    # Before anything is written: a run that cannot fit on its disk is refused in one line.
    problem = (disk_problem(staging, estimate(probed, probe, settings), _staged_config(staging) == config)
               or _prepare_staging(staging, config, overwrite, progress)) if group.is_main else None
    problem = group.broadcast(problem)
    if problem is not None:
        raise UsageError(problem)
    work = staging / "work" / group.work_name() if group.active else staging / "work"
    engine = DissectionEngine(loaded, paths, mine, settings, work, geometry.get, progress, group)
    try:
        outcome = engine.run()
        group.barrier()  # every rank is done with its shard before rank 0 removes the staging directory
        if not group.is_main:
            shutil.rmtree(work, ignore_errors=True)
            group.barrier()
            assembled = _assemble(outcome, probe, settings, identity, loaded, None, geometry, warnings)
            group.barrier()  # rank 0 has published the run: a next command of this rank may read it
            return assembled
        group.barrier()
        result = _finish(outcome, probe, settings, identity, loaded, out_path, geometry, warnings, paths, twin,
                         staging, progress, reuse_baseline)
        result_dir = staging / "result"
        if result_dir.exists():
            shutil.rmtree(result_dir)
        result.write(result_dir)
    except PeerFailure:
        raise  # another rank was stopped: keep every checkpoint so that the same command resumes
    except UsageError:
        shutil.rmtree(staging if group.is_main else work, ignore_errors=True)
        raise
    publish(result_dir, out_path)
    shutil.rmtree(staging)
    group.barrier()  # the other ranks wait for the published run
    result.run_dir = out_path
    return result


def _finish(outcome: EngineOutcome, probe: ProbeSet, settings: DissectSettings, spec: RunSpec, model: LoadedModel,
            run_dir: Path | None, geometry: dict[str, tuple[float, float]], warnings: list[str],
            paths: dict[str, str], twin: ProbeSet | None, work: Path, progress: bool,
            reuse_baseline: DissectionResult | None) -> DissectionResult:
    """The engine's outcome as a result with its tables, its nulls and the run's phase clocks."""
    with outcome.phases.measure("tables"):
        result = _assemble(outcome, probe, settings, spec, model, run_dir, geometry, warnings)
    with outcome.phases.measure("nulls"):
        _add_nulls(result, model, paths, probe, twin, settings, work, geometry, progress, reuse_baseline)
    result.record = replace(result.record, phases=outcome.phases.record())
    return result


def _add_nulls(result: DissectionResult, model: LoadedModel, paths: dict[str, str], probe: ProbeSet,
               twin: ProbeSet | None, settings: DissectSettings, work: Path, geometry: dict[str, tuple[float, float]],
               progress: bool, reuse_baseline: DissectionResult | None) -> None:
    """The run's nulls, into ``result``: the colour control on the recoloured ``twin`` (None: not asked for) and
    the random-weights baseline (with its own colour control), each in its work folder under ``work``."""
    control: Measure | None = None
    if twin is not None:
        recoloured: ProbeSet = twin

        def measure(net: LoadedModel, layers: dict[str, LayerResult], folder: Path) -> dict[str, object]:
            return control_info(net, paths, recoloured, settings, folder, geometry, progress, layers)

        control = measure
        result.record = replace(result.record, control=measure(model, result.layers, work / "control-work"))
    if settings.baseline == "random":
        result.record = replace(result.record, baseline=baseline_info(
            model, paths, probe, settings, work / "baseline-work", geometry, progress, _layer_result,
            reuse_baseline, control, result.layers))


def _prepare_staging(staging: Path, identity: dict[str, object], overwrite: bool, progress: bool) -> str | None:
    """Create or reuse ``staging`` for this command; the problem as a message, or None."""
    config_path = staging / "config.json"
    if staging.exists():
        try:
            previous = json.loads(config_path.read_text()) if config_path.is_file() else None
        except (OSError, ValueError):  # damaged: not this command's, like any other
            previous = None
        if previous != identity:
            if not overwrite:
                differences = _staged_differences(previous, identity)
                return (f"{staging} holds an interrupted run of a different command ({'; '.join(differences[:3])}); "
                        "rerun that command, or pass --overwrite to discard it")
            shutil.rmtree(staging)
        elif progress:
            print(f"resuming the interrupted run in {staging}")
    staging.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(identity, indent=2))
    return None


def _staged_config(staging: Path) -> object:
    """The ``config.json`` of an interrupted run in ``staging`` (None: none, or unreadable)."""
    try:
        return json.loads((staging / "config.json").read_text())
    except (OSError, ValueError):
        return None


def _staged_differences(previous: object, identity: dict[str, object]) -> list[str]:
    """What differs between an interrupted run's ``config.json`` and this command (a damaged file says so)."""
    try:
        return spec_differences(spec_from_json(previous), spec_from_json(identity)) or ["its config.json differs"]
    except UsageError:
        return ["its config.json is unreadable"]


def _assemble(outcome: EngineOutcome, probe: ProbeSet, settings: DissectSettings, spec: RunSpec,
              model: LoadedModel, run_dir: Path | None,
              geometry: dict[str, tuple[float, float]], warnings: list[str] | None = None) -> DissectionResult:
    layers = {stats.name: _layer_result(stats, probe, settings) for stats in outcome.layers}
    records = tuple(
        LayerRecord(name, layer.path, layer.shape[0], (layer.shape[1], layer.shape[2]), layer_dirname(name),
                    tuple(layer.table.to_dict(orient="records")),
                    *cast(tuple[float | None, float | None], geometry.get(layer.path) or (None, None)),
                    intervals=layer.intervals,
                    top_maps=TOP_MAPS if layer.top_maps is not None else None,
                    histogram=HISTOGRAM if layer.histogram is not None else None,
                    depth=layer_depth(model.module, layer.path),
                    resampled=layer.resampled.to_record() if layer.resampled is not None else {})
        for name, layer in layers.items()
    )
    record = RunRecord(
        spec=spec, model=model.name, data=probe.name, n_images=len(probe),
        image_size=probe.image_size, label_size=probe.label_size,
        input_size=model.preprocess.input_size or probe.image_size,
        mean=tuple(model.preprocess.mean), std=tuple(model.preprocess.std),
        categories=tuple(probe.concepts.categories), layers=records,
        class_names=tuple(model.class_names) if model.class_names else None,
        skipped={str(k): v for k, v in sorted(outcome.skipped.items())},
        seconds=round(outcome.seconds, 2), versions=versions(), warnings=tuple(warnings or ()),
        location=str(run_dir.resolve()) if run_dir is not None else None,
    )
    label_pixels = next((s.overlap.label_area.double().cpu().numpy() for s in outcome.layers
                         if s.overlap is not None), None)
    return DissectionResult(layers, probe.concepts, record, run_dir, label_pixels)
