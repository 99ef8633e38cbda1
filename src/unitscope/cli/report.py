"""``unitscope report RUN``: render a finished run's report again, without recomputing its statistics."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import require_path, require_run, run_model_options, run_trust
from unitscope.errors import UsageError


def parse_units(value: str) -> int | None:
    """``all`` → None (every unit), else a positive count."""
    if value == "all":
        return None
    try:
        count = int(value)
    except ValueError as err:
        raise UsageError(f"--units takes a number or 'all', got {value!r}") from err
    if count < 1:
        raise UsageError(f"--units must be at least 1, got {count}")
    return count


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--regions", type=click.Choice(["activation", "field"]), default=None,
              help="Outline the thresholded map (activation) or the paper's receptive-field segmentation (field; "
                   "default when --field-sizes is given).")
@click.option("--field-sizes", type=click.Path(path_type=Path), default=None,
              help="An `unitscope rf --empirical` run whose empirical field sizes the field regions use.")
@click.option("--units", "units", default="all", show_default=True, help="Units per layer on the page, or 'all'.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where report.html and units/ go (default: the run directory).")
@click.option("--png", is_flag=True,
              help="Also write every top image as a lossless PNG file, units/<layer>/<unit>/<rank>.png (for papers; "
                   "the pages show one JPEG per unit).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the top images' maps.")
@run_model_options
def command(run_dir: Path, regions: str | None, field_sizes: Path | None, units: str, out: Path | None, png: bool,
            device: str) -> None:
    """Render RUN's report.html and a page per unit (RUN/units/<layer>/<unit>.html) from the run's data."""
    require_run(run_dir)
    max_units = parse_units(units)
    require_path(field_sizes, "--field-sizes")
    from unitscope.dissection.result import DissectionResult
    from unitscope.report.dissection import ReportOptions
    from unitscope.report.regions import field_sizes_from_rf, unit_field_sizes_from_rf
    from unitscope.report.run_report import render_report

    run = DissectionResult.load(run_dir)
    measured = field_sizes_from_rf(field_sizes) if field_sizes is not None else {}
    sizes = {name: side for name, side in measured.items() if name in run.layers} or None
    per_unit = unit_field_sizes_from_rf(field_sizes) if field_sizes is not None else {}
    options = ReportOptions(max_units=max_units, regions=regions or ("field" if sizes else "activation"),
                            field_sizes=sizes, png=png,
                            unit_field_sizes={name: units for name, units in per_unit.items() if name in run.layers})
    from unitscope.staging import lock_output

    with lock_output(out if out is not None else run_dir):  # no report written while a dissect writes the run
        page = render_report(run, options, out=out, device=device, trust=run_trust())
    click.echo(f"wrote {page} and a page per unit under {page.parent / 'units'}/")
