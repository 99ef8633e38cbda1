"""``unitscope compare``: two or more dissections side by side (the paper's scene-vs-object network comparison,
and networks of different architectures and widths)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unitscope.cli.options import check_output_dir, check_positive, require_run
from unitscope.data import check_probe_spec
from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.analysis.compare.runs import Comparison


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--pair", "pairs", multiple=True, metavar="A:B[:C…]",
              help="Compare these layers, one per run in the runs' order (repeatable); default: same names, "
                   "else relative depth.")
@click.option("--force", is_flag=True, help="Compare runs of different probe sets or dissection settings anyway.")
@click.option("--data", default=None, help="Where the runs' probe set is now, if it moved (for frequencies).")
@click.option("--max-images", type=int, default=None, help="Use only the first N probe images for statistics.")
@click.option("--category", default="object", show_default=True, help="Concept category whose classes to count.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def command(runs: tuple[Path, ...], out: Path, pairs: tuple[str, ...], force: bool, data: str | None,
            max_images: int | None, category: str, overwrite: bool) -> None:
    """Detectors per layer and category of two or more RUNS (one column each), as counts and as shares of
    each layer's units, the objects they detect, and why (ρ). Layers of different names are paired by
    relative depth unless --pair says otherwise."""
    if len(runs) < 2:
        raise UsageError(f"compare needs two or more runs, got {len(runs)}; give RUN RUN [RUN ...]")
    for k, run in enumerate(runs):
        require_run(run, f"RUN {k + 1}" if len(runs) > 2 else ("RUN_A", "RUN_B")[k])
    check_positive(max_images=max_images)
    if data is not None:
        check_probe_spec(data)
    check_output_dir(out, overwrite)
    from unitscope.analysis.compare.from_runs import compare_run_folders

    comparison = compare_run_folders(runs, out, pairs=pairs, force=force, data=data, max_images=max_images,
                                     category=category)
    click.echo(comparison.pairing)
    _echo_counts(comparison)
    for row in comparison.correlations.itertuples():
        if not math.isnan(row.rho):
            click.echo(f"  {row.run} {row.layer} ({row.classes} classes): ρ(units, {row.measure}) = {row.rho:.2f} "
                       f"(p={row.p_value:.2g}, n={row.n})")
    click.echo(f"wrote {out / 'report.html'}")


def _joined(row: object, column: str, sides: tuple[str, ...]) -> str:
    """One value per run, " vs " between them; a value all runs share once."""
    values = [str(getattr(row, f"{column}_{side}")) for side in sides]
    return values[0] if len(set(values)) == 1 else " vs ".join(values)


def _each(values: list[str]) -> str:
    """One value per run, " vs " between them; for more than two runs that all say the same, said once."""
    return f"{values[0]} (all {len(values)})" if len(values) > 2 and len(set(values)) == 1 else " vs ".join(values)


def _echo_counts(comparison: Comparison) -> None:
    """Per layer group: each run's detectors (count and share), against its random twin, and the colour control."""
    table, category, sides = comparison.categories, comparison.category, comparison.sides
    for pair in comparison.pairs:
        row = table[(table["layer"] == pair.label) & (table["category"] == category)].iloc[0]
        total = table[(table["layer"] == pair.label) & (table["category"] == "total")].iloc[0]
        counts = " vs ".join(f"{name} {row[f'detectors_{s}']} ({row[f'share_{s}']:.1%} of {row[f'units_{s}']} units, "
                             f"{row[f'unique_{s}']} unique)" for s, name in zip(sides, comparison.names, strict=True))
        click.echo(f"{pair.label}: {category} detectors {counts}")
        alls = " vs ".join(f"{total[f'detectors_{s}']} [{total[f'detectors_ci_{s}'] or '–'}]" for s in sides)
        iou = " vs ".join(str(total[f"iou_detectors_{s}"]) for s in sides)
        click.echo(f"  all detectors {alls} (95% bootstrap intervals; IoU alone {iou})")
        twins = _each([str(row[f"random_detectors_{s}"]) for s in sides])
        twin_alls = _each([f"{total[f'random_detectors_{s}']} [{total[f'random_detectors_ci_{s}'] or '–'}]"
                           for s in sides])
        click.echo(f"  their random twins: {category} detectors {twins}; all {twin_alls}")
        rows = table[(table["layer"] == pair.label) & (table["category"] == category)]
        record = next(rows.itertuples())
        click.echo(f"  {category} detectors surviving the colour control: {_joined(record, 'survive_control', sides)}; "
                   f"their random twins': {_joined(record, 'random_survive_control', sides)}")
        for s, name in zip(sides, comparison.names, strict=True):
            click.echo(f"  {name}: {category} detectors {row[f'vs_random_{s}']}; "
                       f"all detectors {total[f'vs_random_{s}']}")

