"""``unitscope demo``: the paper's story on SceneWorld (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive
from unitscope.defaults import PROBE_N


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option("--n", "n_probe", type=int, default=PROBE_N, show_default=True, help="Probe images to dissect.")
@click.option("--n-eval", type=int, default=PROBE_N, show_default=True, help="Images per accuracy measurement.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--quick", is_flag=True, help="Every step on a handful of images: checks the set-up in about a "
                                            "minute (numbers not meaningful; --n and --n-eval ignored).")
@click.option("--overwrite", is_flag=True, help="Discard what --out holds and start afresh (needed for an --out "
                                                "of other files or of a demo with other settings).")
def command(out: Path, n_probe: int, n_eval: int, device: str, workers: int, quick: bool, overwrite: bool) -> None:
    """Evaluate and dissect both SceneWorld networks; print the tables and write the reports."""
    check_positive(n=n_probe, n_eval=n_eval)
    check_output_dir(out, overwrite=overwrite, reusable=True)  # run_demo resumes an earlier demo of these settings
    from unitscope.demo import DemoConfig, run_demo

    config = (DemoConfig.quick(out, device) if quick
              else DemoConfig(out=out, n_probe=n_probe, n_eval=n_eval, device=device, workers=workers))
    run_demo(config, overwrite)
