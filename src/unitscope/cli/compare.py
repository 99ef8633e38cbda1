"""``unitscope compare``: two dissections side by side (the paper's scene-vs-object network comparison)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive, require_run
from unitscope.data import check_probe_spec
from unitscope.errors import UsageError
from unitscope.staging import staged


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--force", is_flag=True, help="Compare runs of different layers, probe sets or settings anyway.")
@click.option("--data", default=None, help="Where the runs' probe set is now, if it moved (for frequencies).")
@click.option("--max-images", type=int, default=None, help="Use only the first N probe images for statistics.")
@click.option("--category", default="object", show_default=True, help="Concept category whose classes to count.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def command(run_a: Path, run_b: Path, out: Path, force: bool, data: str | None, max_images: int | None,
            category: str, overwrite: bool) -> None:
    """Detectors per layer and category of RUN_A and RUN_B, the objects they detect, and why (ρ)."""
    require_run(run_a, "RUN_A")
    require_run(run_b, "RUN_B")
    check_positive(max_images=max_images)
    if data is not None:
        check_probe_spec(data)
    check_output_dir(out, overwrite)
    from unitscope.analysis.compare.output import write_comparison
    from unitscope.analysis.compare.probe_reopen import run_statistics
    from unitscope.analysis.compare.runs import check_same_probe, compare_runs, pair_layers
    from unitscope.dissection.result import DissectionResult

    a, b = DissectionResult.load(run_a), DissectionResult.load(run_b)
    pair_layers(a, b, force)
    check_same_probe(a, b, force)
    known = tuple(a.concepts.categories)
    if category not in known:
        raise UsageError(f"--category {category!r} is not a category of {run_a}; choose one of {', '.join(known)}")
    stats, source = run_statistics(a, data, category, max_images, progress=True)
    comparison = compare_runs(a, b, stats, force, category, _foreground(a, data))
    comparison.notes.insert(0, f"Probe statistics from {source}.")
    with staged(out) as stage:
        write_comparison(comparison, stage)
    table = comparison.categories
    for pair in comparison.pairs:
        row = table[(table["layer"] == pair.label) & (table["category"] == category)].iloc[0]
        click.echo(f"{pair.label}: {category} detectors {comparison.names[0]} {row.detectors_a} "
                   f"({row.unique_a} unique) vs {comparison.names[1]} {row.detectors_b} ({row.unique_b} unique)")
        total = table[(table["layer"] == pair.label) & (table["category"] == "total")].iloc[0]
        click.echo(f"  all detectors {total.detectors_a} [{total.detectors_ci_a or '–'}] vs {total.detectors_b} "
                   f"[{total.detectors_ci_b or '–'}] (95% bootstrap intervals; IoU alone {total.iou_detectors_a} "
                   f"vs {total.iou_detectors_b})")
        click.echo(f"  their random twins: {category} detectors {row.random_detectors_a} vs {row.random_detectors_b}; "
                   f"all {total.random_detectors_a} [{total.random_detectors_ci_a or '–'}] vs "
                   f"{total.random_detectors_b} [{total.random_detectors_ci_b or '–'}]")
        survive = (row.survive_control_a if row.survive_control_a == row.survive_control_b
                   else f"{row.survive_control_a} vs {row.survive_control_b}")
        twins = (row.random_survive_control_a if row.random_survive_control_a == row.random_survive_control_b
                 else f"{row.random_survive_control_a} vs {row.random_survive_control_b}")
        click.echo(f"  {category} detectors surviving the colour control: {survive}; their random twins': {twins}")
        for side, name in zip(("a", "b"), comparison.names, strict=True):
            click.echo(f"  {name}: {category} detectors {getattr(row, f'vs_random_{side}')}; "
                       f"all detectors {getattr(total, f'vs_random_{side}')}")
    for row in comparison.correlations.itertuples():
        if not math.isnan(row.rho):
            click.echo(f"  {row.run} {row.layer} ({row.classes} classes): ρ(units, {row.measure}) = {row.rho:.2f} "
                       f"(p={row.p_value:.2g}, n={row.n})")
    click.echo(f"wrote {out / 'report.html'}")


def _foreground(run: object, data: str | None) -> tuple[str, ...] | None:
    """SceneWorld's objects proper (its background regions are object concepts too); None elsewhere."""
    from unitscope.data import SCENEWORLD_SPECS

    if (data or run.record.spec.data.data) not in SCENEWORLD_SPECS:  # type: ignore[attr-defined]
        return None
    from unitscope.data.sceneworld import OBJECT_CLASSES

    return tuple(OBJECT_CLASSES)
