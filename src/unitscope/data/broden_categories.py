"""A Broden label's primary category, by NetDissect's rule (``primary_categories_per_index``).

NetDissect's ``SegmentationData`` (and NetDissect-Lite's) reads ``category.csv`` (``name,first,last,
count,frequency``: the categories, in order) and one ``c_<category>.csv`` per category (``code,number,
name,frequency,coverage``), builds a labels × categories matrix of ``coverage`` (0 where a category does
not list the label) and gives each label the category of largest coverage, ties to the category listed
later in ``category.csv``. ``label.csv``'s ``name(count)`` pairs do not enter: a label marked
``object(10);part(2)`` whose ``c_part.csv`` coverage is the larger is a part.

unitscope applies that rule among the categories being read. Where it cannot decide, ``label.csv``'s
largest count does (ties: the first listed), and the probe says so in one line: for a label that no
``c_<category>.csv`` of those categories lists (NetDissect would give it the last category, listed or
not), and for every label when ``category.csv`` or a ``c_<category>.csv`` is missing. A row with code 0
means "not in this category" to NetDissect, and so here. A label listed with coverage 0 everywhere takes
the latest category listing it (NetDissect's would be the last category read, listing it or not).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from unitscope.errors import UsageError

T = TypeVar("T")

CATEGORY_HEADER = "name,first,last,count,frequency"
COVERAGE_COLUMNS: tuple[str, ...] = ("code", "number", "coverage")
COVERAGE_HEADER = "code,number,name,frequency,coverage"
_NOTE_EXAMPLES = 3


@dataclass(frozen=True)
class PrimaryCategories:
    """Each label's primary category among the categories being read, and which labels the fallback decided.

    ``by_label`` omits labels of none of those categories. ``from_counts``: labels whose category came from
    ``label.csv`` counts instead of ``c_<category>.csv`` coverage; ``note`` says so in one line (None when
    every label followed NetDissect's rule).
    """

    by_label: dict[int, str]
    from_counts: tuple[int, ...] = ()
    note: str | None = None


def readable_csv(read: Callable[..., T], path: Path, *args: object) -> T:
    """``read(path, *args)``, with a binary or non-UTF-8 file refused in one line."""
    try:
        return read(path, *args)
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8 CSV") from None
    except csv.Error as err:
        raise UsageError(f"{path} is not a readable CSV ({err}); save it as UTF-8 CSV") from None


def primary_by_count(counts: Sequence[tuple[str, int]], allowed: Sequence[str]) -> str | None:
    """The allowed category with the largest ``label.csv`` count (ties: first listed); None when none is allowed."""
    best: tuple[str, int] | None = None
    for name, count in counts:
        if name in allowed and (best is None or count > best[1]):
            best = (name, count)
    return None if best is None else best[0]


def primary_by_coverage(listed: Sequence[tuple[str, float]]) -> str | None:
    """The category of largest coverage; ``listed`` in ``category.csv`` order, so ties go to the later one."""
    best: tuple[str, float] | None = None
    for name, coverage in listed:
        if best is None or coverage >= best[1]:
            best = (name, coverage)
    return None if best is None else best[0]


def read_category_order(path: Path) -> tuple[str, ...]:
    """The category names of ``category.csv``, in file order."""
    names: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
        if "name" not in reader.fieldnames:
            raise UsageError(f"{path} lacks column name; its header must be {CATEGORY_HEADER}")
        for row in reader:
            name = (row["name"] or "").strip()
            where = f"{path} line {reader.line_num}"
            if not name:
                raise UsageError(f"{where}: the category name is empty; give each row a name or delete the row")
            if name in names:
                raise UsageError(f"{where}: category {name!r} is listed twice; keep one row per category")
            names.append(name)
    return tuple(names)


def read_coverage(path: Path) -> dict[int, float]:
    """``c_<category>.csv``: label number -> coverage, for rows with a non-zero code and number."""
    coverage: dict[int, float] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in COVERAGE_COLUMNS if c not in reader.fieldnames]
        if missing:
            raise UsageError(f"{path} lacks column(s) {', '.join(missing)}; its header must be {COVERAGE_HEADER}")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            code = _count(row["code"], "code", where)
            number = _count(row["number"], "label number", where)
            value = _coverage(row["coverage"], where)
            if code == 0 or number == 0:  # code 0: not in this category (NetDissect); label 0: unlabeled
                continue
            if number in coverage:
                raise UsageError(f"{where}: label number {number} is listed twice; keep one row per number")
            coverage[number] = value
    return coverage


def _count(text: str | None, what: str, where: str) -> int:
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()):
        raise UsageError(f"{where}: {what} {text!r} is not a non-negative integer; fix the row or delete it")
    return int(value)


def _coverage(text: str | None, where: str) -> float:
    value = (text or "").strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"{where}: coverage {text!r} is not a non-negative number (the label's area in whole "
                         "images, e.g. 0.25); fix the row or delete it")
    return number


def coverage_columns(root: Path, wanted: Sequence[str]) -> dict[str, dict[int, float]] | str:
    """Coverage per wanted category, in ``category.csv`` order; or why the files cannot give it."""
    if not (root / "category.csv").is_file():
        return "it has no category.csv"
    order = readable_csv(read_category_order, root / "category.csv")
    absent = [c for c in wanted if c not in order]
    if absent:
        return f"category.csv does not list {', '.join(absent)}"
    columns: dict[str, dict[int, float]] = {}
    for category in (c for c in order if c in wanted):
        path = root / f"c_{category}.csv"
        if Path(category).name != category or not path.is_file():  # a name with a path separator: not a file here
            return f"it has no c_{category}.csv"
        columns[category] = readable_csv(read_coverage, path)
    return columns


def primary_categories(
    root: Path, counts: Mapping[int, Sequence[tuple[str, int]]], wanted: Sequence[str]
) -> PrimaryCategories:
    """Every label's primary category among ``wanted``; ``counts``: label.csv's (category, count) pairs."""
    columns = coverage_columns(root, wanted)
    by_label: dict[int, str] = {}
    fallback: list[int] = []
    for number in sorted(counts):
        listed = [] if isinstance(columns, str) else [
            (category, column[number]) for category, column in columns.items() if number in column
        ]
        category = primary_by_coverage(listed)
        if category is None:
            category = primary_by_count(counts[number], wanted)
            if category is not None:
                fallback.append(number)
        if category is not None:
            by_label[number] = category
    return PrimaryCategories(by_label, tuple(fallback), _note(root, columns, fallback))


def _note(root: Path, columns: dict[str, dict[int, float]] | str, fallback: Sequence[int]) -> str | None:
    if not fallback:
        return None
    rule = ("label.csv counts decide primary categories, not NetDissect's c_<category>.csv coverage")
    if isinstance(columns, str):
        return f"unitscope: note: {root} is read without category statistics ({columns}): {rule}"
    shown = ", ".join(str(n) for n in fallback[:_NOTE_EXAMPLES]) + (", …" if len(fallback) > _NOTE_EXAMPLES else "")
    return (f"unitscope: note: {len(fallback)} label(s) of {root} are in no c_<category>.csv of the categories "
            f"read (label {shown}): for those, {rule}")
