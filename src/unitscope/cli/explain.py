"""``unitscope explain``: the best logical formula of concepts for each unit of a dissected layer."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import require_run, run_model_options, run_trust


@click.command("explain")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True,
              help="A finished dissection run (unitscope dissect --out RUN).")
@click.option("--layer", required=True, help="A layer of the run (its name or module path).")
@click.option("--length", type=int, default=3, show_default=True, help="Most concepts in a formula.")
@click.option("--beam", type=int, default=5, show_default=True, help="Formulas kept per search step.")
@click.option("--ops", default="and,or,not", show_default=True,
              help="Comma-separated operators: and, or, not (not negates the concept added).")
@click.option("--units", default=None, help="Units to explain, e.g. 0,3,5-9 (default: all).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto (mask pass).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace a different --out or interrupted staging directory.")
@run_model_options
def command(run_dir: Path, layer: str, length: int, beam: int, ops: str, units: str | None, out: Path,
            device: str, batch_size: int, overwrite: bool) -> None:
    """Label units with formulas like (water OR river) AND NOT blue (Mu & Andreas 2020), by beam search."""
    require_run(run_dir, "--run")
    from unitscope.explain import explain

    result = explain(run_dir, layer, out, length=length, beam=beam,
                     ops=[op.strip() for op in ops.split(",") if op.strip()], units=units, device=device,
                     batch_size=batch_size, overwrite=overwrite, trust=run_trust())
    s = result.summary
    click.echo(f"{s['units']} units of {s['layer']}: {s['units_gaining']} gain more than {s['gain_threshold']} "
               f"IoU from composition; mean IoU {s['mean_single_iou']:.3f} → {s['mean_iou']:.3f} "
               f"({s['seconds']} s)")
    click.echo(f"results in {out}/ (formulas.csv, summary.json, explain.html)")
