"""``unitscope annotations summary|export|agree``: tables from human annotations, in the authors' format too."""

from __future__ import annotations

import json
from pathlib import Path

import click

from unitscope.cli.options import require_path, require_run
from unitscope.errors import UsageError


@click.group("annotations")
def command() -> None:
    """Summarise, export, and compare human unit annotations."""


@command.command("summary")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print {layer: {units, category_share, detectors, …}}.")
@click.option("--precision", type=float, default=0.75, show_default=True,
              help="Mean precision from which a unit counts as a detector of its majority category.")
def summary(source: Path, as_json: bool, precision: float) -> None:
    """Per layer: units, share of annotations per category, agreeing units, detectors per category."""
    require_path(source, "SOURCE")
    from unitscope.annotate.sources import load_annotations
    from unitscope.annotate.summary import format_summary, summarize

    annotations = load_annotations(source)
    if not annotations:
        raise UsageError(f"{source} holds no annotations yet")
    table = summarize(annotations, precision)
    click.echo(json.dumps(table, indent=2) if as_json else format_summary(table, precision))


@command.command("export")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mat", "csv", "json"]), required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write (default DB with the suffix).")
def export(db: Path, fmt: str, out: Path | None) -> None:
    """Write DB's annotations as the authors' .mat layout, CSV or JSON."""
    require_path(db, "DB")
    from unitscope.annotate.sources import export_annotations, load_annotations

    annotations = load_annotations(db)
    target = out or db.with_suffix(f".{fmt}")
    if target.resolve() == db.resolve():
        raise UsageError(f"--out {target} would overwrite the source; choose another file")
    export_annotations(annotations, target, fmt)
    click.echo(f"wrote {len(annotations)} annotations to {target}")


@command.command("agree")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the per-layer numbers as JSON.")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Scatter plot of precision vs IoU, one panel per layer titled with its table row "
                   "(default SOURCE's folder/agreement.png).")
def agree(source: Path, run: Path, as_json: bool, plot: Path | None) -> None:
    """How often humans agree with RUN's automatic labels: category, concept text, precision vs IoU."""
    require_path(source, "SOURCE")
    require_run(run)
    from unitscope.annotate.agree import agreement_summary, agreement_table, format_agreement, scatter_plot
    from unitscope.annotate.runview import read_run
    from unitscope.annotate.sources import load_annotations

    table = agreement_table(load_annotations(source), read_run(run))
    numbers = agreement_summary(table)
    picture = plot or source.with_name("agreement.png")
    scatter_plot(table, numbers, picture)
    if as_json:
        click.echo(json.dumps(numbers, indent=2))
        return
    click.echo(format_agreement(numbers), nl=False)
    click.echo(f"plot (the same numbers, one panel per layer): {picture}")
