"""``unitscope rf``: theoretical receptive fields of every layer, and empirical ones by occlusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unitscope.cli.options import check_output_dir, check_positive, model_options, open_model
from unitscope.cli.prechecks import check_model_args, check_range
from unitscope.data import check_probe_spec
from unitscope.defaults import PROBE_N, PROBE_SEED
from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.distributed import Group
    from unitscope.models.loading import LoadedModel

DEFAULT_INPUT_SIDE: int = 224


def parse_units(text: str | None) -> list[int] | None:
    """``0-9,12,20-22`` → [0, …, 9, 12, 20, 21, 22]; None means every unit."""
    if text is None:
        return None
    units: list[int] = []
    for part in text.split(","):
        bounds = part.strip().split("-")
        try:
            numbers = [int(b) for b in bounds]
        except ValueError as err:
            raise UsageError(f"--units takes numbers and ranges like 0-9,12; got {text!r}") from err
        if len(numbers) == 1:
            units.append(numbers[0])
        elif len(numbers) == 2 and numbers[0] <= numbers[1]:
            units.extend(range(numbers[0], numbers[1] + 1))
        else:
            raise UsageError(f"--units takes numbers and ranges like 0-9,12 (low-high); got {part!r}")
    return list(dict.fromkeys(units))


def theory_rows(model: LoadedModel, input_size: tuple[int, int], layers: tuple[str, ...]) -> list[dict[str, object]]:
    """Rows of the theoretical table (all spatial layers, or the named ones), in module order."""
    from unitscope.models.layers import paper_names, resolve_layer
    from unitscope.receptive.theory import fields_and_gaps, missing_field_reason

    module = model.module
    fields, gaps = fields_and_gaps(module, input_size)
    paper = {path: name for name, path in paper_names(module).items()}
    if layers:
        paths = [resolve_layer(module, name) for name in layers]
        flat = [p for p in paths if p not in fields]
        if flat:
            raise UsageError(missing_field_reason(module, flat[0], gaps))
    else:
        paths = [p for p, _ in module.named_modules() if p in fields]
    return [{"layer": p, "paper": paper.get(p, ""), **fields[p].to_dict(),
             "map": "x".join(str(v) for v in fields[p].map_size or ())} for p in paths]


@click.command("rf")
@model_options
@click.option("--layer", "layers", multiple=True,
              help="Module path (features.10) or paper name (conv5); repeat for several. Default: all layers.")
@click.option("--json", "as_json", is_flag=True, help='Print {layer: {"size", "stride", "start"}} as JSON.')
@click.option("--input-size", type=int, default=None, help="Input side (default: the model's, else 224).")
@click.option("--empirical", is_flag=True, help="Also measure empirical fields by occlusion (needs --layer, --out).")
@click.option("--data", default="sceneworld", show_default=True,
              help="sceneworld, sceneworld-objects, a Broden-format directory, or a plain image folder.")
@click.option("--n", "--images", "n", type=int, default=None,
              help=f"Probe images searched for top images: SceneWorld renders N (default {PROBE_N}); a directory "
                   "gives its first N (default: all); --images under torchrun.")
@click.option("--seed", type=int, default=PROBE_SEED, show_default=True,
              help="SceneWorld seed and random-occluder seed.")
@click.option("--size", type=int, default=112, show_default=True, help="SceneWorld image side.")
@click.option("--topk", type=int, default=10, show_default=True, help="Top images averaged per unit.")
@click.option("--patch", type=int, default=11, show_default=True, help="Occluder side in pixels.")
@click.option("--stride", type=int, default=3, show_default=True, help="Occluder grid stride in pixels.")
@click.option("--fill", type=click.Choice(["random", "zeros"]), default="random", show_default=True,
              help="Occluder content: random pixels (Zhou et al.) or the mean colour.")
@click.option("--units", "units_text", default=None, help="Units to analyse, e.g. 0-9,12 (default: all).")
@click.option("--fraction", type=float, default=0.5, show_default=True,
              help="Size = side of the square with the area where the mean map reaches this fraction of its max.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Occluded copies per batch.")
@click.option("--full", is_flag=True, help="Recompute whole occluded images (no incremental inference).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (with --empirical).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, layers: tuple[str, ...],
            as_json: bool, input_size: int | None, empirical: bool, data: str, n: int | None, seed: int, size: int,
            topk: int, patch: int, stride: int, fill: str, units_text: str | None, fraction: float,
            batch_size: int, full: bool, out: Path | None, overwrite: bool) -> None:
    """Theoretical receptive field of every layer; with --empirical, fields measured by occlusion."""
    check_positive(input_size=input_size, n=n, size=size, topk=topk, batch_size=batch_size)
    if stride <= 0:
        raise UsageError(f"--stride must be positive, got {stride}")
    if patch <= 0:
        raise UsageError(f"--patch must be positive, got {patch}")
    units = parse_units(units_text)
    if empirical and (not layers or out is None):
        raise UsageError("--empirical needs --layer NAME and --out RUN")
    check_range("--fraction", fraction, 0, 1, open_low=True, open_high=True)
    check_model_args(model_spec, weights, num_classes, layers)
    if empirical:
        check_probe_spec(data)
    if empirical and out is not None:
        check_output_dir(out, overwrite)
    if not empirical:
        model = open_model(model_spec, weights, num_classes, device)
        if input_size:
            model.preprocess = model.preprocess.with_overrides(input_size)
        side = model.preprocess.input_size or (DEFAULT_INPUT_SIDE, DEFAULT_INPUT_SIDE)
        _print_theory(theory_rows(model, side, layers), as_json)
        return
    from unitscope.distributed import session

    with session(device) as group:  # under torchrun: each rank searches and occludes a share of the images
        model = open_model(model_spec, weights, num_classes, group.device)
        if input_size:
            model.preprocess = model.preprocess.with_overrides(input_size)
        _run_empirical(model, layers, data, n, seed, size, topk, patch, stride, fill, units, fraction, batch_size,
                       full, out, as_json, group)  # type: ignore[arg-type]  # out is set: checked above


def _print_theory(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({r["layer"]: {k: r[k] for k in ("size", "stride", "start")} for r in rows}))
        return
    click.echo(f"{'layer':<28}{'paper':<8}{'size':>7}{'stride':>8}{'start':>8}{'map':>10}")
    for r in rows:
        click.echo(f"{r['layer']!s:<28}{r['paper']!s:<8}{r['size']:>7}{r['stride']:>8}{r['start']:>8.1f}{r['map']!s:>10}")


def _run_empirical(model: LoadedModel, layers: tuple[str, ...], data: str, n: int | None, seed: int, size: int,
                   topk: int, patch: int, stride: int, fill: str, units: list[int] | None, fraction: float,
                   batch_size: int, full: bool, out: Path, as_json: bool, group: Group) -> None:
    """Measure every --layer and write the run directory (rank 0 only, under torchrun)."""
    from unitscope.data import open_probe
    from unitscope.models.layers import resolve_layer
    from unitscope.rf.empirical import EmpiricalSettings, empirical_fields
    from unitscope.rf.output import write_run

    settings = EmpiricalSettings(topk=topk, patch=patch, stride=stride, fill=fill, seed=seed, fraction=fraction,
                                 occlusion_batch=batch_size, incremental=not full)
    settings.validate()
    module = model.module
    paths = {name: resolve_layer(module, name) for name in layers}
    probe = open_probe(data, n=n, seed=seed, size=size)
    preprocess, device = model.preprocess, model.device
    results = {}
    for name, path in paths.items():
        results[name] = empirical_fields(module, path, probe, lambda images: preprocess.batch(images, device),
                                         units, settings, preprocess.mean, preprocess.std,
                                         progress=not as_json and group.is_main, group=group)
    if not group.is_main:
        return
    info = {"model": model.name, "data": probe.name, "n_images": len(probe),
            "settings": settings.__dict__}
    write_run(out, results, info)
    from unitscope.report.output_pages import rf_page

    rf_page(out)
    summary: dict[str, dict[str, Any]] = {
        name: {"theoretical": r.theoretical.size if r.theoretical_defined else None, **r.summary(),
               "engine": r.engine}
        for name, r in results.items()}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{'layer':<14}{'theoretical':>12}{'empirical':>18}{'units':>7}  engine")
    for name, s in summary.items():
        emp = "-" if s["mean"] is None else f"{s['mean']:.1f} ± {s['std']:.1f}"
        theory = "-" if s["theoretical"] is None else s["theoretical"]
        click.echo(f"{name:<14}{theory!s:>12}{emp:>18}{s['units']:>7}  {s['engine'].split(':')[0]}")
    click.echo(f"results in {out}/ (report.html, rf.json, rf.csv, rf.png, per-layer maps)")
