"""``unitscope dissect``: label every unit of one or more layers with the concept it detects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from unitscope.cli.options import (
    check_output_dir,
    check_positive,
    model_options,
    require_path,
    trusted_checkpoints,
)
from unitscope.cli.prechecks import check_model_args
from unitscope.data import check_probe_spec, probe_count
from unitscope.defaults import PROBE_N, PROBE_SEED, PROBE_SIZE
from unitscope.dissection.naming import named_identity, refuse_other_finished
from unitscope.dissection.record import DataSpec, ModelSpec
from unitscope.dissection.settings import BASELINES, CONTROLS, UPSAMPLE_MODES, DissectSettings
from unitscope.errors import UsageError
from unitscope.models.precision import AMP_MODES

if TYPE_CHECKING:
    from unitscope.report.dissection import ReportOptions


def parse_triple(value: str | None, option: str) -> tuple[float, float, float] | None:
    """``0.485,0.456,0.406`` → a 3-tuple, or a usage error naming the option."""
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as err:
        raise UsageError(f"{option} takes three comma-separated numbers, got {value!r}") from err
    if len(parts) != 3:
        raise UsageError(f"{option} takes three comma-separated numbers (R,G,B), got {value!r}")
    return parts


def parse_workers(value: str) -> int | str:
    """``--workers``: ``auto`` or a number of processes."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit():
        raise UsageError(f"--workers takes auto or a number of processes (0 or more), got {value!r}")
    return int(text)


def format_tables(result: object) -> str:
    """The per-layer detector table as aligned text."""
    summary = result.summary  # type: ignore[attr-defined]
    wide = summary.pivot_table(index="category", columns="layer", values="detectors", sort=False)
    unique = summary.pivot_table(index="category", columns="layer", values="unique", sort=False)
    layers = list(dict.fromkeys(summary["layer"]))
    lines = ["detector units (unique concepts) per category", f"{'category':<10}" + "".join(f"{n:>14}" for n in layers)]
    for category in dict.fromkeys(summary["category"]):
        cells = "".join(f"{int(wide.loc[category, n]):>8} ({int(unique.loc[category, n]):>3})" for n in layers)
        lines.append(f"{category:<10}{cells}")
    return "\n".join(lines)


def check_control(control: str, data: str) -> None:
    """``--control recolored`` only where a recoloured twin exists (a SceneWorld probe set), before torch loads."""
    from unitscope.data import SCENEWORLD_SPECS

    if control != "recolored":
        return
    if data not in SCENEWORLD_SPECS:
        raise UsageError(f"--control recolored needs SceneWorld's recoloured twin, and --data {data} has none; "
                         "use --data sceneworld or sceneworld-objects, or drop --control")
    if data.endswith("-recolored"):
        raise UsageError(f"--data {data} is already recoloured; give --data {data.removesuffix('-recolored')} "
                         "with --control recolored")


def _report_options(layers: tuple[str, ...], regions: str | None, field_sizes: Path | None) -> ReportOptions:
    """The report's options, validated (the report modules, matplotlib among them, load only when wanted)."""
    from unitscope.report.dissection import ReportOptions
    from unitscope.report.regions import field_sizes_from_rf, unit_field_sizes_from_rf

    measured = field_sizes_from_rf(field_sizes) if field_sizes is not None else {}
    sizes = {name: side for name, side in measured.items() if name in layers} or None
    per_unit = unit_field_sizes_from_rf(field_sizes) if field_sizes is not None else {}
    options = ReportOptions(regions=regions or ("field" if sizes else "activation"), field_sizes=sizes,
                            unit_field_sizes={name: units for name, units in per_unit.items() if name in layers})
    options.validate()
    return options


@click.command("dissect")
@model_options
@click.option("--layer", "layers", multiple=True, required=True,
              help="Module path (features.10, layer4) or paper name (conv5); repeat for several layers.")
@click.option("--data", default="sceneworld", show_default=True,
              help="sceneworld, sceneworld-objects, a Broden-format directory, or a plain image folder.")
@click.option("--n", "--images", "n", type=int, default=None,
              help=f"Images: SceneWorld renders N (default {PROBE_N}); a Broden directory or image folder gives its "
                   "first N (default: all); --images under torchrun, whose own options swallow --n.")
@click.option("--seed", type=int, default=PROBE_SEED, show_default=True, help="SceneWorld seed.")
@click.option("--size", type=int, default=PROBE_SIZE, show_default=True, help="SceneWorld image side.")
@click.option("--input-size", type=int, default=None, help="Resize images to this side before the network.")
@click.option("--mean", default=None, help="Normalisation mean R,G,B (default ImageNet's or the weights').")
@click.option("--std", default=None, help="Normalisation std R,G,B.")
@click.option("--quantile", type=float, default=0.005, show_default=True, help="Top activation quantile.")
@click.option("--topk", type=int, default=20, show_default=True, help="Top images kept per unit.")
@click.option("--iou", "iou_threshold", type=float, default=0.04, show_default=True,
              help="IoU above which a unit detects a concept.")
@click.option("--fdr", type=float, default=0.05, show_default=True,
              help="False discovery rate: a detector's label must also be significant at this rate (BH).")
@click.option("--bootstrap", type=int, default=200, show_default=True,
              help="Resamples of the probe images for label stability and count intervals (0: none).")
@click.option("--baseline", type=click.Choice(BASELINES), default="none", show_default=True,
              help="random: also dissect the architecture with re-initialised weights and report its counts.")
@click.option("--baseline-seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--control", type=click.Choice(CONTROLS), default="none", show_default=True,
              help="recolored: measure each object/part detector again on the recoloured twin of the SceneWorld probe "
                   "set (one palette for all classes) and record whether it survives.")
@click.option("--upsample", type=click.Choice(UPSAMPLE_MODES), default="rf", show_default=True,
              help="rf: align maps to receptive-field centres; bilinear: NetDissect-Lite's plain resize.")
@click.option("--amp", type=click.Choice(AMP_MODES), default="off", show_default=True, is_flag=False,
              flag_value="bf16",
              help="Autocast the forward pass to bf16 (bare --amp) or fp16; thresholds move by its rounding "
                   "(docs/gpu.md: measured effect).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--workers", default="auto", show_default=True,
              help="Data loading processes, or auto (on a multi-core CPU: threads that each decode a batch and run "
                   "the network on it; with a GPU: worker processes).")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable probe images (counted in summary.json).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace a finished or interrupted run of another command.")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@click.option("--regions", type=click.Choice(["activation", "field"]), default=None,
              help="Report regions: the thresholded map (activation) or the paper's receptive-field segmentation "
                   "(field; default when --field-sizes is given).")
@click.option("--field-sizes", type=click.Path(path_type=Path), default=None,
              help="An `unitscope rf --empirical` run whose empirical field sizes the report's field regions use.")
@click.option("--checkpoint-seconds", type=float, default=20.0, show_default=True,
              help="How often the resumable state is saved.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, layers: tuple[str, ...],
            data: str, n: int | None, seed: int, size: int, input_size: int | None, mean: str | None, std: str | None,
            quantile: float, topk: int, iou_threshold: float, fdr: float, bootstrap: int, baseline: str,
            baseline_seed: int, control: str, upsample: str, amp: str, batch_size: int, workers: str,
            skip_bad: bool, out: Path, overwrite: bool, no_report: bool, regions: str | None, field_sizes: Path | None,
            checkpoint_seconds: float) -> None:
    """Label every unit of --layer with the concept it detects (Network Dissection, exact and resumable)."""
    check_positive(n=n, size=size, input_size=input_size)
    settings = DissectSettings(quantile=quantile, topk=topk, iou_threshold=iou_threshold, upsample=upsample,
                               batch_size=batch_size, skip_bad=skip_bad, workers=parse_workers(workers),
                               checkpoint_seconds=checkpoint_seconds, fdr=fdr, bootstrap=bootstrap,
                               baseline=baseline, baseline_seed=baseline_seed, amp=amp, control=control)
    settings.validate()
    means, stds = parse_triple(mean, "--mean"), parse_triple(std, "--std")
    check_model_args(model_spec, weights, num_classes, layers)
    check_probe_spec(data)
    require_path(field_sizes, "--field-sizes")
    check_control(control, data)
    check_output_dir(out, overwrite, reusable=True)  # a finished run of this command is reused, not refused
    identity = named_identity(ModelSpec(model_spec, weights, num_classes, input_size, means, stds),
                              DataSpec(data, probe_count(data, n), seed, size), layers, settings)
    refuse_other_finished(out, identity, overwrite)  # all of the above before torch is imported
    from unitscope.dissection.confidence import confidence_lines
    from unitscope.dissection.run import dissect

    options = None if no_report else _report_options(layers, regions, field_sizes)  # checked before the run
    result = dissect(
        model_spec, layers, data, out, weights=weights, num_classes=num_classes, n=n, seed=seed, size=size,
        input_size=input_size, mean=means, std=stds,
        settings=settings, device=device, overwrite=overwrite, trust_checkpoint=trusted_checkpoints(),
    )
    from unitscope.distributed import is_main_process

    if not is_main_process():
        return  # under torchrun only rank 0 reports
    if options is not None:
        from unitscope.dissection.reopen import Trust
        from unitscope.report.run_report import render_report

        own = Trust(checkpoint=trusted_checkpoints(), model=model_spec, weights=weights)  # named on this command
        render_report(result, options, device=device, trust=own)
    click.echo(format_tables(result))
    click.echo(confidence_lines(result))
    skipped = len(result.record.skipped)
    if skipped:
        click.echo(f"skipped {skipped} unreadable images (listed in {out / 'summary.json'})")
    click.echo(f"results in {out}/ (units.csv per layer, summary.json{'' if no_report else ', report.html'})")
