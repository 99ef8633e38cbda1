"""One calling convention for every analysis: ``f(model, data, …) -> typed result with pandas tables``.

``model`` is a spec string (a torchvision name, ``sceneworld-scene``, ``file.py:fn``), an ``nn.Module``
(with optional ``class_names`` and ``preprocessing``) or a :class:`~unitscope.models.loading.LoadedModel`;
``data`` is a probe spec (``sceneworld``, a Broden or image folder) or a :class:`~unitscope.data.probe.ProbeSet`.
Arguments are never mutated: a module given is copied before it is put in eval mode.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch import nn

from unitscope.analysis.compare.runs import Comparison, compare_many
from unitscope.data.probe import ProbeSet
from unitscope.defaults import FIT_N, FRESH_SEED, PICTURE_N, PROBE_N, PROBE_SEED, PROBE_SIZE
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.explain.run import explain  # the package is also callable as unitscope.explain
from unitscope.models.loading import LoadedModel, load_model
from unitscope.models.preprocessing import Preprocessing
from unitscope.report.run_report import report
from unitscope.see.run import see  # the package is also callable as unitscope.see

__all__ = ["ablate", "cam", "compare", "dissect", "explain", "minimal_images", "receptive_fields", "report",
           "see", "segment"]

ModelArg = str | nn.Module | LoadedModel
ClassNamesArg = Sequence[str] | str | Path  # the names, or a file of them (a str is a path)
DataArg = str | ProbeSet


def as_model(model: ModelArg, *, weights: str | None = None, num_classes: int | None = None,
             class_names: ClassNamesArg | None = None, preprocessing: Preprocessing | None = None,
             device: str = "cpu") -> LoadedModel:
    """A :class:`LoadedModel` for any accepted ``model`` argument (a copy: the argument is untouched).

    ``class_names``: the names, or a class-names file as ``--class-names`` reads it (Places365
    categories, one name per line, ImageNet class-index JSON); as many as the model's outputs.
    """
    if isinstance(model, str):
        loaded = load_model(model, weights, num_classes, device)
    elif isinstance(model, LoadedModel):
        loaded = replace(model)
    elif isinstance(model, nn.Module):
        module = copy.deepcopy(model).eval().to(device)
        loaded = LoadedModel(module, type(model).__name__, Preprocessing().fixed_to(module), None,
                             torch.device(device))
    else:
        raise UsageError(f"model must be a spec string, an nn.Module or a LoadedModel, not {type(model).__name__}")
    if class_names is not None:
        from unitscope.models.classes import with_class_names

        loaded = with_class_names(loaded, class_names)
    if preprocessing is not None:
        loaded = replace(loaded, preprocess=preprocessing.fixed_to(loaded.module))
    return loaded


def as_probe(data: DataArg, n: int | None = None, seed: int = PROBE_SEED, size: int = PROBE_SIZE) -> ProbeSet:
    """The probe set for a spec string (``open_probe``) or the ``ProbeSet`` given."""
    if isinstance(data, str):
        from unitscope.data import open_probe

        return open_probe(data, n=n, seed=seed, size=size)
    return data


@dataclass
class Dissection:
    """A dissection with what it needs to draw itself: ``units`` / ``summary`` tables, ``show(layer, unit)``."""

    result: DissectionResult
    model: LoadedModel
    probe: ProbeSet

    @property
    def units(self) -> dict[str, pd.DataFrame]:
        return self.result.units

    @property
    def summary(self) -> pd.DataFrame:
        return self.result.summary

    @property
    def run_dir(self) -> Path | None:
        return self.result.run_dir

    def show(self, layer: str, unit: int, n_images: int = 4) -> Image.Image:
        """The unit's top images with its region outlined, side by side (for a notebook)."""
        from unitscope.report.unit_images import unit_card_image

        return Image.fromarray(unit_card_image(self.result, self.model, self.probe, layer, unit, n_images))


def dissect(model: ModelArg = "sceneworld-scene", layers: Sequence[str] = ("conv5",), data: DataArg = "sceneworld",
            out: str | Path | None = None, *, weights: str | None = None, num_classes: int | None = None,
            class_names: ClassNamesArg | None = None, preprocessing: Preprocessing | None = None,
            n: int | None = None, seed: int = PROBE_SEED, size: int = PROBE_SIZE,
            settings: DissectSettings | None = None,
            device: str = "cpu", overwrite: bool = False, report: bool = False,
            progress: bool = True) -> Dissection:
    """Label every unit of ``layers`` (Network Dissection); with ``out`` and ``report``, also report.html.

    The run is known by its content (the module's weights digest and class, the probe set's digest and
    length, the preprocessing used): dissecting another network or probe set into the same ``out`` is
    refused with what differs, or recomputed with ``overwrite=True``; ``n``/``seed``/``size`` apply to a
    probe spec string only (a ``ProbeSet`` is recorded as what it holds).

    ``n``: images SceneWorld renders (default 500); a Broden directory or image folder is read whole
    unless ``n`` asks for its first n images.

    Example: ``unitscope.dissect(torchvision.models.resnet18(), ["layer4"], probe).units["layer4"]``.
    """
    from unitscope.data import probe_count
    from unitscope.dissection.run import dissect as run_dissect

    loaded = as_model(model, weights=weights, num_classes=num_classes, class_names=class_names,
                      preprocessing=preprocessing, device=device)
    if isinstance(model, str):
        loaded = replace(loaded, name=model)
    probe = as_probe(data, n, seed, size)
    count = probe_count(data, n) if isinstance(data, str) else n  # the run records n as the CLI does
    result = run_dissect(loaded, layers, probe, out, weights=weights, num_classes=num_classes, n=count, seed=seed,
                         size=size, settings=settings, device=device, overwrite=overwrite, progress=progress)
    found = Dissection(result, loaded, probe)
    if report and result.run_dir is not None:
        from unitscope.report.run_report import render_report

        render_report(result, model=loaded, probe=probe)
    return found


def _run(run: str | Path | Dissection | DissectionResult) -> DissectionResult:
    if isinstance(run, Dissection):
        return run.result
    if isinstance(run, DissectionResult):
        return run
    return DissectionResult.load(run)


def compare(a: str | Path | Dissection, b: str | Path | Dissection, *more: str | Path | Dissection,
            force: bool = False, category: str = "object", pairs: Sequence[str] = ()) -> Comparison:
    """Two or more runs side by side: detectors per category (counts and shares of each layer's units) and
    per concept (tables in the result); layers of different names pair by relative depth, or as ``pairs``
    ("A:B", one layer per run) say."""
    return compare_many([_run(run) for run in (a, b, *more)], force=force, category=category, pairs=pairs)


@dataclass(frozen=True)
class FieldTable:
    """Receptive fields per module: ``table`` has layer, size, stride, start (theoretical, in input pixels)."""

    table: pd.DataFrame


def receptive_fields(model: ModelArg, input_size: tuple[int, int] = (224, 224), *,
                     class_names: ClassNamesArg | None = None,
                     preprocessing: Preprocessing | None = None) -> FieldTable:
    """Theoretical receptive field (size, stride, start) of every module of ``model``."""
    from unitscope.receptive.theory import theoretical_fields

    loaded = as_model(model, class_names=class_names, preprocessing=preprocessing)
    fields = theoretical_fields(loaded.module, input_size)
    rows = [{"layer": path, "size": f.size, "stride": f.stride, "start": f.start} for path, f in fields.items()]
    return FieldTable(pd.DataFrame(rows, columns=["layer", "size", "stride", "start"]))


@dataclass(frozen=True)
class OutputRun:
    """An analysis that writes a directory: where it is and its summary table."""

    out: Path
    table: pd.DataFrame


def minimal_images(model: ModelArg, data: str, out: str | Path, *, n: int = PICTURE_N, seed: int = FRESH_SEED,
                   class_names: ClassNamesArg | None = None, preprocessing: Preprocessing | None = None,
                   overwrite: bool = False, progress: bool = False) -> OutputRun:
    """Greedy minimal image representations (Zhou et al. §3.1) for ``n`` images of ``data``."""
    from unitscope.minimal.run import MinimalSettings, run_minimal
    from unitscope.minimal.sources import open_source
    from unitscope.report.output_pages import minimal_page

    loaded = as_model(model, class_names=class_names, preprocessing=preprocessing)
    size = loaded.preprocess.input_size[0] if loaded.preprocess.input_size else 112
    source = open_source(data, loaded.class_names, n=n, seed=seed, size=size)
    run_minimal(loaded, source, out, MinimalSettings(), overwrite=overwrite, identity={"seed": seed},
                progress=progress)
    minimal_page(Path(out))
    return OutputRun(Path(out), pd.read_csv(Path(out) / "summary.csv"))


def segment(model: ModelArg, run: str | Path | Dissection, out: str | Path, *, data: str = "sceneworld",
            n: int = PICTURE_N, seed: int = FRESH_SEED, method: str = "vectors", layer: str | None = None,
            category: str = "object", fit_n: int = FIT_N, fit_data: str | None = None, baseline: str = "random",
            baseline_seed: int | None = None, class_names: ClassNamesArg | None = None,
            preprocessing: Preprocessing | None = None) -> OutputRun:
    """Segment ``n`` images with the run's concept vectors (``method="vectors"``, the CLI's default) or its
    detector units (``"units"``), and predict their class in the same pass; ``model`` must be the run's.

    ``baseline="random"``: the random twin segments the same images too (vectors); ``metrics.json`` holds its
    mean IoU, the bootstrap interval of the difference and the verdict in words."""
    from unitscope.analysis.inputs import open_inputs
    from unitscope.analysis.segment.run import run_segment

    if method not in ("vectors", "units"):
        raise UsageError(f"method must be 'vectors' or 'units', not {method!r}")
    result = _run(run)
    loaded = as_model(model, class_names=class_names, preprocessing=preprocessing)
    source = open_inputs(None, data, n, seed, result.record.image_size[0])
    if method == "vectors":
        from unitscope.analysis.segment.vector_run import run_vector_segment

        summary = run_vector_segment(loaded, result, source, Path(out), (layer,) if layer else None, category,
                                     fit_n=fit_n, fit_data=fit_data, baseline=baseline, baseline_seed=baseline_seed)
    else:
        summary = run_segment(loaded, result, source, Path(out), layer, category, baseline=baseline)
    return OutputRun(Path(out), summary.predictions)


def cam(model: ModelArg, out: str | Path, *, data: str = "sceneworld", n: int = PICTURE_N, seed: int = FRESH_SEED,
        class_name: str | None = None, layer: str | None = None, method: str = "auto",
        background: Sequence[str] | None = None, baseline: str = "random", baseline_seed: int = 0,
        class_names: ClassNamesArg | None = None, preprocessing: Preprocessing | None = None) -> OutputRun:
    """CAM or Grad-CAM heatmaps for ``n`` images (``method``: auto, cam, gradcam); on labelled data, the
    localisation on the foreground objects (``background``: object names that are not objects, default the
    probe set's list) beside the random-weights twin's (``baseline``: random or none), in ``cam.json``."""
    import json

    from unitscope.analysis.cam.foreground import parse_background
    from unitscope.analysis.cam.run import CamOptions, run_cam
    from unitscope.analysis.inputs import open_inputs

    names = parse_background(background) if isinstance(background, str) else \
        None if background is None else tuple(background)
    options = CamOptions(class_name, layer, method, background=names, baseline=baseline, baseline_seed=baseline_seed)
    loaded = as_model(model, class_names=class_names, preprocessing=preprocessing)
    size = loaded.preprocess.input_size[0] if loaded.preprocess.input_size else 112
    source = open_inputs(None, data, n, seed, size)
    run_cam(loaded, source, Path(out), options)
    report_data = json.loads((Path(out) / "cam.json").read_text())
    images = report_data.get("images", []) if isinstance(report_data, dict) else []
    return OutputRun(Path(out), pd.DataFrame(images))


def ablate(model: ModelArg, layer: str, out: str | Path, *, run: str | Path | Dissection | None = None,
           data: str = "sceneworld", concept: str | None = None, units: str | Sequence[int] | None = None,
           category: str = "object", mode: str = "zero", n: int = PROBE_N, seed: int = FRESH_SEED,
           seeds: int = 10, class_names: ClassNamesArg | None = None,
           preprocessing: Preprocessing | None = None, overwrite: bool = False) -> OutputRun:
    """Remove (or keep only) each concept's detector units of ``layer`` and measure per-class accuracy against
    random unit sets; ``run`` must be a dissection of this very network (checked by its weights' digest)."""
    from unitscope.ablation.output import write_ablation
    from unitscope.ablation.sweep import ablate as run_ablate
    from unitscope.dissection.reopen import reopen_model
    from unitscope.staging import check_output, lock_output

    check_output(Path(out), overwrite)
    loaded = as_model(model, class_names=class_names, preprocessing=preprocessing)
    found = _run(run) if run is not None else None
    if found is not None:
        loaded = reopen_model(found, model=loaded)
    chosen = units if units is None or isinstance(units, str) else tuple(int(u) for u in units)
    with lock_output(Path(out)):
        result = run_ablate(loaded, layer, data, found, concept, chosen, category, mode, n, seed, seeds)
        write_ablation(result, Path(out), loaded.name)
    return OutputRun(Path(out), pd.read_csv(Path(out) / "ablation.csv"))

