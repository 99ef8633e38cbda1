"""``unitscope cam``: where in the image is the evidence for a class (CAM, or Grad-CAM without GAP)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive, class_names_option, model_options, open_model
from unitscope.cli.prechecks import check_at_least, check_inputs, check_model_args, check_range
from unitscope.defaults import FRESH_SEED, PICTURE_N


@click.command("cam")
@model_options
@class_names_option
@click.option("--image", default=None, help="One image file to explain.")
@click.option("--data", default=None, help="sceneworld, sceneworld-objects, a Broden directory or an image folder.")
@click.option("--n", "n", type=int, default=None, help=f"Images to take from --data (default {PICTURE_N}).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True, help="SceneWorld seed (fresh by default).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--class", "class_name", default=None, help="Class to explain (default: each image's top-1).")
@click.option("--layer", default=None, help="Layer to explain (default: the GAP feature map, or conv5).")
@click.option("--method", type=click.Choice(["auto", "cam", "gradcam"]), default="auto", show_default=True,
              help="auto: CAM when the network ends in global average pooling + linear, else Grad-CAM.")
@click.option("--top-fraction", type=float, default=0.2, show_default=True,
              help="Share of hottest pixels scored against the foreground object masks.")
@click.option("--background", default=None, metavar="NAME,…",
              help="Object labels that are background, not objects (default: SceneWorld's regions, or for a "
                   "Broden directory wall, floor, ceiling, sky, ground, grass, road, water, building, …).")
@click.option("--baseline", type=click.Choice(["random", "none"]), default="random", show_default=True,
              help="random: score the same architecture with re-initialised weights beside the trained one.")
@click.option("--baseline-seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--pictures", type=int, default=16, show_default=True,
              help="Draw overlay PNGs for the first N images only (0: none; scores use every image).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, class_names: str | None,
            image: str | None,
            data: str | None, n: int | None, seed: int, out: Path, class_name: str | None, layer: str | None,
            method: str, top_fraction: float, background: str | None, baseline: str, baseline_seed: int,
            batch_size: int, pictures: int, overwrite: bool) -> None:
    """Class activation maps over images; on labelled images, how much of their heat lies on the foreground
    objects, beside the same network with random weights."""
    check_positive(batch_size=batch_size, n=n)
    check_at_least("--pictures", pictures, 0)
    check_range("--top-fraction", top_fraction, 0, 1, open_low=True)
    check_model_args(model_spec, weights, num_classes, [layer])
    check_inputs(image, data, n)
    check_output_dir(out, overwrite)
    from unitscope.analysis.cam.foreground import parse_background
    from unitscope.analysis.cam.run import CamOptions, run_cam
    from unitscope.analysis.cam.table import localisation_lines
    from unitscope.analysis.inputs import open_inputs

    options = CamOptions(class_name, layer, method, batch_size, parse_background(background), top_fraction, pictures,
                         baseline, baseline_seed)
    from unitscope.distributed import session
    from unitscope.staging import staged

    with session(device) as group:  # under torchrun each rank explains every world-th batch; rank 0 writes
        model = open_model(model_spec, weights, num_classes, group.device, class_names)
        size = model.preprocess.input_size[0] if model.preprocess.input_size else 112
        source = open_inputs(image, data, n, seed, size)
        with staged(out) if group.is_main else contextlib.nullcontext(None) as stage:
            summary = run_cam(model, source, stage, options, group)
    if not group.is_main:
        return
    click.echo(f"{summary.method} at {summary.layer}: {len(summary.rows)} image(s) → {out}")
    for line in localisation_lines(summary):
        click.echo(line)
