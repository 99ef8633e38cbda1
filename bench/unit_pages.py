"""CPU time of writing every unit page (HTML and histogram SVG) of a finished run, without drawing images.

    PYTHONPATH=src python bench/unit_pages.py RUN [--reps 3] [--fresh]

RUN: a dissection run directory (e.g. ``end_to_end.py --kinds dissect`` makes one). Each rep writes all pages
into a fresh temporary directory and times them with ``time.process_time`` (the per-layer preparation
included); prints each rep and the median as ``ms_per_page: X``. Each unit's folder is made beforehand,
untimed, as in a report, where the unit's images are written there before its page; ``--fresh`` times
making the folders too. Works on code from before
:class:`~unitscope.report.unit_pages.LayerPages` too (then it calls ``write_unit_page`` per unit), so the
same script gives the before and after numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from unitscope.dissection.result import DissectionResult
from unitscope.report import unit_pages
from unitscope.report.html import report_environment


def make_folders(result: DissectionResult, out: Path) -> None:
    """The unit folders ``units/<layer>/<unit>/`` that a report's image writer has made before the pages."""
    for name, layer in result.layers.items():
        for unit in layer.units["unit"]:
            (out / unit_pages.unit_page_path(name, int(unit))).with_suffix("").mkdir(parents=True, exist_ok=True)


def write_all(result: DissectionResult, out: Path) -> int:
    """Write every unit's page of every layer under ``out``, as the report does; returns the page count."""
    environment = report_environment()
    written = 0
    for name, layer in result.layers.items():
        shown = layer.top_images.groupby("unit").size().to_dict()
        units = [int(u) for u in layer.units["unit"]]
        layer_pages = getattr(unit_pages, "LayerPages", None)
        if layer_pages is not None:
            pages = layer_pages(result, name, environment)
            for unit in units:
                pages.write(out, unit, int(shown.get(unit, 0)))
        else:  # the per-unit path this replaced
            for unit in units:
                unit_pages.write_unit_page(result, out, name, unit, int(shown.get(unit, 0)), "", environment)
        written += len(units)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="time making the unit folders too")
    args = parser.parse_args()
    result = DissectionResult.load(args.run)
    with tempfile.TemporaryDirectory() as warm:
        write_all(result, Path(warm))  # compiles the template, warms imports and caches
    per_page = []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as folder:
            if not args.fresh:
                make_folders(result, Path(folder))
            started, before = time.process_time(), os.times()
            pages = write_all(result, Path(folder))
            seconds, after = time.process_time() - started, os.times()
        per_page.append(1000 * seconds / pages)
        print(f"rep {rep + 1}: {pages} pages, {seconds:.3f} CPU s ({after.user - before.user:.2f} user, "
              f"{after.system - before.system:.2f} system), {per_page[-1]:.2f} ms per page")
    print(f"ms_per_page: {statistics.median(per_page):.2f}")


if __name__ == "__main__":
    main()
