"""Annotations from any source (an app database, a CSV/JSON export, an authors' ``.mat``) and exports to each."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from unitscope.annotate.matfile import read_mat, write_mat
from unitscope.annotate.protocol import CATEGORIES, Annotation, category_code
from unitscope.errors import UsageError

FORMATS: tuple[str, ...] = ("mat", "csv", "json")
JSON_FORMAT = "unitscope-annotations/1"
FIELDS = ("layer", "unit", "annotator", "concept", "category", "precision")


def _kind(path: Path) -> str:
    if not path.is_file():
        raise UsageError(f"{path} is not a file; give an annotation database, a .csv/.json export or a .mat file")
    head = path.read_bytes()[:16]
    if head.startswith(b"SQLite format 3"):
        return "db"
    if head.startswith(b"MATLAB") or path.suffix.lower() == ".mat":
        return "mat"
    if path.suffix.lower() in (".csv", ".json"):
        return path.suffix.lower()[1:]
    raise UsageError(f"cannot tell what {path} holds; use a .db, .csv, .json or .mat file")


def _record(row: dict[str, object], where: str) -> Annotation:
    try:
        return Annotation(str(row["layer"]), int(str(row["unit"])), str(row["annotator"]), str(row["concept"]),
                          category_code(str(row["category"])), float(str(row["precision"])))
    except (KeyError, ValueError, TypeError) as err:
        raise UsageError(f"{where}: bad annotation row ({type(err).__name__}: {err}); "
                         f"rows need {', '.join(FIELDS)}") from None


def load_annotations(source: str | Path) -> list[Annotation]:
    """Every annotation in ``source``."""
    path = Path(source)
    kind = _kind(path)
    if kind == "db":
        from unitscope.annotate.store import Store

        return Store(path).annotations()
    if kind == "mat":
        return read_mat(path)
    if kind == "csv":
        with path.open(newline="") as handle:
            return [_record(row, f"{path}:{n + 2}") for n, row in enumerate(csv.DictReader(handle))]
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise UsageError(f"{path} is not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
        raise UsageError(f"{path} is not an annotation export ({JSON_FORMAT})")
    return [_record(row, str(path)) for row in data.get("annotations", [])]


def export_annotations(annotations: Sequence[Annotation], out: Path, fmt: str) -> None:
    """Write ``annotations`` to ``out`` as mat (authors' layout), csv or json."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "mat":
        write_mat(out, annotations)
        return
    rows = [{"layer": a.layer, "unit": a.unit, "annotator": a.annotator, "concept": a.concept,
             "category": CATEGORIES[a.category - 1], "precision": a.precision} for a in annotations]
    if fmt == "csv":
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(FIELDS))
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(json.dumps({"format": JSON_FORMAT, "annotations": rows}, indent=1))
