"""``unitscope study``: studies made of many trainings and dissections (one subcommand per study)."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.defaults import PROBE_N
from unitscope.errors import UsageError


@click.group("study")
def command() -> None:
    """Run a study of many trained networks (resumable; results as data plus one page)."""


@command.command("constraints")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Study folder (models/, runs/, metrics/, constraints.json, index.html).")
@click.option("--n-train", type=int, default=6000, show_default=True, help="Training images of every arm.")
@click.option("--epochs", type=int, default=6, show_default=True, help="Epochs of every arm.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per arm (0, 1, …).")
@click.option("--threads", type=int, default=2, show_default=True,
              help="Torch threads of every training (the weights' bits depend on it; 1 on a busy 2-core machine).")
@click.option("--render-only", is_flag=True,
              help="Re-render index.html from OUT/constraints.json (the committed data) without training.")
def constraints(out: Path, n_train: int, epochs: int, seeds: int, threads: int, render_only: bool) -> None:
    """Train the scene net with each constraint and without (the control), several seeds each, and measure
    fresh-image accuracy against interpretability (docs/constraints.md)."""
    from unitscope.cli.prechecks import check_at_least

    if render_only:
        if not (out / "constraints.json").is_file() and not (out / "metrics").is_dir():
            raise UsageError(f"{out} holds no constraints.json; run the study first (without --render-only)")
        from unitscope.study.constraints_page import collect_finished, render_page

        if (out / "metrics").is_dir():  # a study folder: gather what is finished so far (a partial study too)
            click.echo(f"{collect_finished(out)} finished runs gathered into {out / 'constraints.json'}")
        click.echo(f"wrote {render_page(out)}")
        return
    check_at_least("--n-train", n_train, 1)
    check_at_least("--epochs", epochs, 1)
    check_at_least("--seeds", seeds, 1)
    check_at_least("--threads", threads, 1)
    from unitscope.study.constraints import StudyRecipe, run_study

    recipe = StudyRecipe(seeds=tuple(range(seeds)), n_train=n_train, epochs=epochs, threads=threads)
    found = run_study(recipe, out)
    from unitscope.study.constraints_page import render_page, write_results

    write_results(out, recipe, found)
    click.echo(f"wrote {render_page(out)}")


@command.command("emergence")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Study folder (runs/, emergence.json, emergence.csv, claim.csv, charts, index.html).")
@click.option("--arch", "archs", multiple=True, metavar="ARCH",
              help="Architecture to study (repeatable; default: every shipped scene/object pair).")
@click.option("--n", type=int, default=PROBE_N, show_default=True, help="SceneWorld probe images.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--render-only", is_flag=True,
              help="Re-render the page, charts and tables from OUT/emergence.json (the committed data).")
def emergence(out: Path, archs: tuple[str, ...], n: int, device: str, render_only: bool) -> None:
    """Do object detectors emerge in other networks too? Dissect every shipped architecture's scene and object
    nets and their random twin at four matching relative depths, with the colour control, and test the paper's
    claim per architecture (docs/emergence.md)."""
    from unitscope.cli.prechecks import check_at_least
    from unitscope.study.emergence import check_archs

    if render_only:
        if not (out / "emergence.json").is_file():
            raise UsageError(f"{out} holds no emergence.json; run the study first (without --render-only)")
    else:
        check_archs(archs)
        check_at_least("--n", n, 2)
    from unitscope.study.emergence import study_emergence

    found = study_emergence(out, archs, n, render_only=render_only, device=device)
    for text in found.sentences.values():
        click.echo(text)
    seconds = found.data.get("seconds")
    click.echo(f"wrote {found.page}" + (f" (study {seconds:.0f} s)" if seconds and not render_only else ""))
