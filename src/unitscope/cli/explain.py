"""``unitscope explain``: the best logical formula of concepts for each unit of a dissected layer."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import require_run, run_model_options, run_trust
from unitscope.cli.prechecks import check_run_layer
from unitscope.errors import UsageError


@click.command("explain")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True,
              help="A finished dissection run (unitscope dissect --out RUN).")
@click.option("--layer", required=True, help="A layer of the run (its name or module path).")
@click.option("--length", type=int, default=3, show_default=True, help="Most concepts in a formula.")
@click.option("--beam", type=int, default=5, show_default=True, help="Formulas kept per search step.")
@click.option("--ops", default="and,or,not", show_default=True,
              help="Comma-separated operators: and, or, not (not negates the concept added).")
@click.option("--units", default=None, help="Units to explain, e.g. 0,3,5-9 (default: all).")
@click.option("--holdout", type=float, default=0.5, show_default=True,
              help="Fraction of the probe images held out: formulas are chosen on the rest and scored on these.")
@click.option("--null", "null", type=click.Choice(["random", "none"]), default="random", show_default=True,
              help="Test each held-out gain against the random twin's (the architecture re-initialised), or not.")
@click.option("--null-seed", type=int, default=None,
              help="Seed of the first random twin (default: the run's --baseline-seed, 0 unless set).")
@click.option("--null-twins", type=int, default=4, show_default=True,
              help="Random twins pooled into the null (seeds --null-seed, +1, …): finer p-values, a search each.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto (mask pass).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace a different --out or interrupted staging directory.")
@run_model_options
def command(run_dir: Path, layer: str, length: int, beam: int, ops: str, units: str | None, holdout: float,
            null: str, null_seed: int | None, null_twins: int, out: Path, device: str, batch_size: int,
            overwrite: bool) -> None:
    """Label units with formulas like (water OR river) AND NOT blue (Mu & Andreas 2020), by beam search."""
    require_run(run_dir, "--run")
    if length < 1 or beam < 1 or batch_size < 1:
        raise UsageError(f"--length, --beam and --batch-size must be positive, got {length}, {beam}, {batch_size}")
    if not 0 < holdout < 1:
        raise UsageError(f"--holdout {holdout} is not a fraction in (0, 1); 0.5 holds out every second image")
    check_run_layer(run_dir, layer)
    if out.exists() and not (out / "summary.json").is_file() and not overwrite \
            and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    from unitscope.explain import explain

    result = explain(run_dir, layer, out, length=length, beam=beam,
                     ops=[op.strip() for op in ops.split(",") if op.strip()], units=units, holdout=holdout,
                     null=null, null_seed=null_seed, null_twins=null_twins, device=device, batch_size=batch_size,
                     overwrite=overwrite, trust=run_trust())
    s = result.summary
    click.echo(f"{s['units']} units of {s['layer']}, held-out images ({s['images_heldout']} of {s['images']}): "
               f"mean IoU {s['mean_heldout_single_iou']:.3f} (single concept) → {s['mean_heldout_iou']:.3f} "
               f"(formula); {s['units_gaining_heldout']} gain more than {s['gain_threshold']} IoU "
               f"({s['units_gaining_fit']} on the fit images) ({s['seconds']} s)")
    click.echo(str(s["verdict"]))
    if s.get("gain_vs_random"):
        click.echo(str(s["gain_vs_random"]["verdict"]))  # type: ignore[index]
    files = "formulas.csv, null.csv, summary.json, explain.html" if result.null is not None else \
        "formulas.csv, summary.json, explain.html"
    click.echo(f"results in {out}/ ({files})")
