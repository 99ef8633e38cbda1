"""``unitscope ablate``: remove (or keep only) a concept's detector units and measure per-class accuracy."""

from __future__ import annotations

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
from unitscope.cli.prechecks import check_model_args
from unitscope.data import check_class_folder
from unitscope.defaults import FRESH_SEED, PROBE_N


@click.command("ablate")
@model_options
@class_names_option
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="A dissection run of this model: whose units detect which concept (needed without --units).")
@click.option("--layer", required=True, help="Layer whose units are ablated (e.g. conv5).")
@click.option("--concept", default=None, help="Only this concept's detector units (default: every detected concept).")
@click.option("--units", default=None, help="Comma-separated units to ablate instead, e.g. 3,17,40.")
@click.option("--category", default="object", show_default=True, help="Concept category of the sweep.")
@click.option("--data", default="sceneworld", show_default=True,
              help="Labelled images: sceneworld, sceneworld-objects or a folder of class sub-folders.")
@click.option("--mode", type=click.Choice(["zero", "mean"]), default="zero", show_default=True,
              help="Replace ablated units by zero or by their mean activation over --data.")
@click.option("--n", "n", type=int, default=PROBE_N, show_default=True, help="Images to generate (SceneWorld).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True,
              help="SceneWorld seed (fresh images by default) and seed of the random unit sets.")
@click.option("--seeds", type=int, default=10, show_default=True, help="Random unit sets per set size.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, class_names: str | None,
            run_dir: Path | None,
            layer: str, concept: str | None, units: str | None, category: str, data: str, mode: str, n: int,
            seed: int, seeds: int, batch_size: int, out: Path, overwrite: bool) -> None:
    """Which units does the network need for each class? Ablate them and compare with random units."""
    check_positive(n=n, batch_size=batch_size, seeds=seeds)
    if run_dir is not None:
        require_run(run_dir, "--run")
    check_model_args(model_spec, weights, num_classes, [layer])
    check_class_folder(data)
    check_output_dir(out, overwrite)
    from unitscope.ablation.output import weak_rows, write_ablation
    from unitscope.ablation.sweep import ablate
    from unitscope.dissection.result import DissectionResult

    run = DissectionResult.load(run_dir) if run_dir is not None else None
    model = open_model(model_spec, weights, num_classes, device, class_names)
    if run is not None:  # the run must be of this very network (its weights' digest), with its preprocessing
        from unitscope.dissection.reopen import reopen_model

        model = reopen_model(run, model=model)
    result = ablate(model, layer, data, run, concept, units, category, mode, n, seed, seeds, batch_size,
                    progress=True)
    write_ablation(result, out, model.name)
    click.echo(f"{'concept':<16}{'class':<14}{'units':>6}{'clean':>7}{'ablated':>9}{'drop':>7}"
               f"{'random [95% sets]':>24}{'excess [95% CI images]':>27}  beats random")
    for row in result.top_drops(10).itertuples():
        random = f"{row.random_drop_mean:.3f} [{row.random_drop_low:.3f}, {row.random_drop_high:.3f}]"
        excess = f"{row.excess_drop:+.3f} [{row.excess_low:+.3f}, {row.excess_high:+.3f}]"
        click.echo(f"{row.concept:<16}{row.scene:<14}{row.n_units:>6}{row.clean_accuracy:>7.3f}{row.accuracy:>9.3f}"
                   f"{row.drop:>7.3f}{random:>24}{excess:>27}  {'yes' if row.beats_random else 'no'}")
    weak = weak_rows(result.top_drops(10))
    if weak:
        click.echo("these drops do not beat random units (the excess interval includes 0 or lies below): "
                   + "; ".join(weak))
    click.echo(f"results in {out}/ (ablation.csv, heatmap_remove.png, heatmap_keep.png, report.html)")
