"""``unitscope segment``: scene prediction and object segmentation by detector units, in one forward pass."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from unitscope.cli.options import (
    check_output_dir,
    check_positive,
    class_names_option,
    model_options,
    open_model,
    require_run,
)
from unitscope.cli.prechecks import check_at_least, check_inputs, check_model_args, check_run_layers
from unitscope.data import check_probe_spec
from unitscope.defaults import FIT_N, FRESH_SEED, PICTURE_N


@click.command("segment")
@model_options
@class_names_option
@click.option("--run", "--run-dir", "run_dir", type=click.Path(path_type=Path), required=True,
              help="A finished dissection run of this model (unitscope dissect --out RUN); write --run-dir "
                   "under torchrun, whose own parser takes --run for its --run-path.")
@click.option("--method", type=click.Choice(["vectors", "units"]), default="vectors", show_default=True,
              help="vectors: concept vectors over the layers' units (Net2Vec), fitted on the run's probe set; "
                   "units: the paper's detector units.")
@click.option("--layer", "layers", multiple=True,
              help="Dissected layer(s): vectors use all given (default: all the run's), units the last "
                   "given (default: the run's last).")
@click.option("--fit-n", type=int, default=FIT_N, show_default=True,
              help="vectors: images of the run's probe set to fit on (a quarter held out).")
@click.option("--fit-data", default=None, help="vectors: fit on this labelled probe set instead of the run's.")
@click.option("--category", default="object", show_default=True, help="Concept category to segment.")
@click.option("--image", default=None, help="One image file, at the size the run was dissected at.")
@click.option("--data", default=None, help="sceneworld, sceneworld-objects, a Broden directory or an image folder.")
@click.option("--n", "n", type=int, default=None, help=f"Images to take from --data (default {PICTURE_N}).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True,
              help="SceneWorld seed (fresh by default: images the run's thresholds never saw).")
@click.option("--baseline", type=click.Choice(["random", "none"]), default="random", show_default=True,
              help="random: the same method with the architecture re-initialised (the random twin), on the same "
                   "images, beside the trained network (vectors only: a run keeps no twin units to segment with).")
@click.option("--baseline-seed", type=int, default=None,
              help="Seed of the random weights (default: the run's own --baseline-seed, else 0).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--pictures", type=int, default=16, show_default=True,
              help="Draw overlay PNGs for the first N images only (0: none; scores use every image).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, class_names: str | None,
            run_dir: Path,
            method: str, layers: tuple[str, ...], fit_n: int, fit_data: str | None, category: str,
            image: str | None, data: str | None, n: int | None, seed: int, baseline: str, baseline_seed: int | None,
            out: Path, batch_size: int, pictures: int, overwrite: bool) -> None:
    """Segment images with concept vectors (default) or detector units, beside the model's top-3 classes."""
    check_positive(batch_size=batch_size, n=n, fit_n=fit_n)
    check_at_least("--pictures", pictures, 0)
    require_run(run_dir, "--run")
    check_model_args(model_spec, weights, num_classes)
    check_run_layers(run_dir, layers)
    check_inputs(image, data, n)
    if fit_data is not None:
        check_probe_spec(fit_data)
    check_output_dir(out, overwrite)
    from unitscope.analysis.inputs import open_inputs
    from unitscope.analysis.segment.run import run_segment
    from unitscope.dissection.result import DissectionResult

    run = DissectionResult.load(run_dir)
    from unitscope.distributed import session
    from unitscope.staging import staged

    with session(device) as group:  # under torchrun each rank segments every world-th batch; rank 0 writes
        model = open_model(model_spec, weights, num_classes, group.device, class_names)
        source = open_inputs(image, data, n, seed, run.record.image_size[0])
        with staged(out) if group.is_main else contextlib.nullcontext(None) as stage:
            if method == "vectors":
                from unitscope.analysis.segment.vector_run import run_vector_segment

                summary = run_vector_segment(model, run, source, stage, layers or None, category, batch_size,
                                             pictures, fit_n, fit_data, group, baseline, baseline_seed)
            else:
                summary = run_segment(model, run, source, stage, layers[-1] if layers else None, category,
                                      batch_size, pictures, group, baseline)
    if not group.is_main:
        return
    click.echo(f"segmented {len(summary.predictions)} image(s) → {out}")
    if summary.metrics is not None and summary.metrics["pixel_accuracy"] is not None:
        m = summary.metrics
        click.echo(f"pixel accuracy {m['pixel_accuracy']:.3f}, mean IoU {m['mean_iou']:.3f} "
                   f"(baseline: most frequent class everywhere {m['baseline_mean_iou']:.3f}"
                   + (f"; per-image majority {m['majority_mean_iou']:.3f})" if "majority_mean_iou" in m else ")"))
        from unitscope.analysis.segment.twin import random_lines

        for line in random_lines(m):
            click.echo(line)
