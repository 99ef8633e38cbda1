"""Read a Broden-format probe directory (broden1_224, broden1_227, or a SceneWorld export).

Layout, as written by NetDissect's ``unify`` and read by NetDissect-Lite:

- ``index.csv``: ``image,split,ih,iw,sh,sw,<category>…`` with any category columns in any order.
  ``image`` is a path under ``images/``. A category cell holds ``;``-separated items: a PNG name
  under ``images/`` (a label map, label = R + 256·G) or a decimal label number (the label covers the
  whole image). An empty cell means "not annotated in this image".
- ``label.csv``: ``number,name,category,frequency,coverage,syns`` with ``category`` like
  ``material(3);object(1)``. Row 0 (``-``, unlabeled) may be present or absent.
- ``category.csv`` and ``c_<category>.csv`` carry statistics only; this reader does not need them.

What a sample looks like: a cell whose items are all numbers becomes ``image_labels[cat]`` (a tuple);
a cell with at least one PNG becomes ``pixel_labels[cat]``, int32 ``[k, sh, sw]`` with one layer per
item (a number item becomes a constant layer, as NetDissect-Lite does). Label numbers are global.
A concept's category is the primary one: the category with the largest count in ``label.csv`` among
the categories being read (ties: the first listed). Labels outside the categories being read, and
label 0, read as 0 in label maps and are left out of image-label tuples, so every non-zero number a
sample carries is in ``concepts``. Every row is kept, even one with no annotation in the categories
being read (it still counts towards activation quantiles).

Everything except file contents is validated when the directory is opened (a bad row names its
line); a missing or corrupt image or label PNG is found when the sample is read and raises
:class:`~unitscope.data.errors.BadSampleError`, which ``--skip-bad`` can step over.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from unitscope.data.errors import BadSampleError
from unitscope.data.image_folder import READ_ERRORS, read_rgb
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.errors import UsageError

META_COLUMNS: tuple[str, ...] = ("image", "split", "ih", "iw", "sh", "sw")
LABEL_COLUMNS: tuple[str, ...] = ("number", "name", "category")
LABEL_PNG_MODES: tuple[str, ...] = ("RGB", "RGBA", "P")
_CATEGORY_COUNT = re.compile(r"^\s*([^();]+?)\s*\(\s*(\d+)\s*\)\s*$")
_LAYOUT_HINT = "a Broden directory holds index.csv, label.csv and images/"


@dataclass(frozen=True, slots=True)
class _Cell:
    """One annotated category cell: PNG names / constant labels (pixel) or label numbers (image)."""

    pixel: bool
    items: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Row:
    """One validated line of index.csv; ``cells`` aligns with the categories being read."""

    line: int
    image: str
    split: str
    ih: int
    iw: int
    sh: int
    sw: int
    cells: tuple[_Cell | None, ...]


def is_broden_dir(path: str | Path) -> bool:
    """Whether ``path`` is meant as a Broden directory (it has an index.csv)."""
    p = Path(path)
    return p.is_dir() and (p / "index.csv").is_file()


def parse_category_counts(text: str, where: str) -> tuple[tuple[str, int], ...]:
    """``"material(3);object(1)"`` -> ``(("material", 3), ("object", 1))``."""
    counts = []
    for part in (s for s in text.split(";") if s.strip()):
        match = _CATEGORY_COUNT.match(part)
        if match is None:
            raise UsageError(
                f"{where}: category {text!r} is malformed; write it as name(count)[;name(count)…], "
                "e.g. material(3);object(1)"
            )
        counts.append((match.group(1), int(match.group(2))))
    return tuple(counts)


def primary_category(counts: Sequence[tuple[str, int]], allowed: Sequence[str]) -> str | None:
    """The allowed category with the largest count (ties: first listed); None when none is allowed."""
    best: tuple[str, int] | None = None
    for name, count in counts:
        if name in allowed and (best is None or count > best[1]):
            best = (name, count)
    return None if best is None else best[0]


def read_label_csv(path: Path) -> dict[int, tuple[str, tuple[tuple[str, int], ...]]]:
    """label number -> (name, category counts), without label 0."""
    labels: dict[int, tuple[str, tuple[tuple[str, int], ...]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(
                f"{path} lacks column(s) {', '.join(missing)}; its header must start "
                "number,name,category,frequency,coverage,syns"
            )
        for row in reader:
            where = f"{path} line {reader.line_num}"
            number_text = (row["number"] or "").strip()
            if not number_text.isdigit():
                raise UsageError(f"{where}: label number {number_text!r} is not a non-negative integer")
            number = int(number_text)
            if number in labels:
                raise UsageError(f"{where}: label number {number} is listed twice; keep one row per number")
            if number != 0:  # row 0 ("-", unlabeled) may be listed; it is never a concept
                counts = parse_category_counts(row["category"] or "", where)
                labels[number] = ((row["name"] or "").strip(), counts)
    return labels


def _int_field(text: str, column: str, where: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) <= 0:
        raise UsageError(f"{where}: {column} is {text!r}; it must be a positive integer (pixels)")
    return int(value)


class _IndexParser:
    """Validates index.csv lines against the header and the label numbers label.csv knows."""

    def __init__(self, path: Path, header: list[str], wanted: Sequence[str], known: set[int]) -> None:
        self.path = path
        self.width = len(header)
        self.meta = [header.index(c) for c in META_COLUMNS]
        self.category_columns = [header.index(c) for c in wanted]
        self.wanted = list(wanted)
        self.known = known

    def row(self, fields: list[str], line: int) -> _Row:
        where = f"{self.path} line {line}"
        if len(fields) != self.width:
            raise UsageError(
                f"{where} has {len(fields)} fields but the header has {self.width}; "
                "fix the row (a cell with a comma must be quoted)"
            )
        image, split, ih, iw, sh, sw = (fields[k] for k in self.meta)
        if not image.strip():
            raise UsageError(f"{where}: the image column is empty; give a path under images/")
        cells = tuple(
            self._cell(fields[k], cat, where) for k, cat in zip(self.category_columns, self.wanted, strict=True)
        )
        return _Row(
            line=line,
            image=image.strip(),
            split=split.strip(),
            ih=_int_field(ih, "ih", where),
            iw=_int_field(iw, "iw", where),
            sh=_int_field(sh, "sh", where),
            sw=_int_field(sw, "sw", where),
            cells=cells,
        )

    def _cell(self, text: str, category: str, where: str) -> _Cell | None:
        raw = [s.strip() for s in text.split(";") if s.strip()]
        if not raw:
            return None
        items: list[str | int] = []
        for item in raw:
            if item.isdigit():
                number = int(item)
                if number != 0 and number not in self.known:
                    raise UsageError(
                        f"{where}: {category} label {number} is not in label.csv; add it there or fix the cell"
                    )
                items.append(number)
            elif item.lower().endswith(".png"):
                items.append(item)
            else:
                raise UsageError(
                    f"{where}: {category} cell holds {item!r}; cells hold ;-separated label numbers "
                    "or PNG names under images/"
                )
        return _Cell(pixel=any(isinstance(x, str) for x in items), items=tuple(items))


def _read_index(
    path: Path, categories: Sequence[str] | None, known: set[int]
) -> tuple[list[str], list[_Row]]:
    """Validated rows of index.csv and the category columns being read (in file order)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in META_COLUMNS if c not in header]
        if missing:
            raise UsageError(
                f"{path} lacks column(s) {', '.join(missing)}; its header must start "
                "image,split,ih,iw,sh,sw followed by category columns"
            )
        if len(set(header)) != len(header):
            raise UsageError(f"{path} repeats a column name in its header; keep each column once")
        present = [h for h in header if h not in META_COLUMNS]
        if categories is None:
            wanted = present
        else:
            unknown = [c for c in categories if c not in present]
            if unknown:
                raise UsageError(
                    f"categories {', '.join(unknown)} are not columns of {path}; "
                    f"choose from {', '.join(present) or '(none)'}"
                )
            wanted = [h for h in present if h in categories]
        parser = _IndexParser(path, header, wanted, known)
        rows = [parser.row(fields, reader.line_num) for fields in reader if fields]
    return wanted, rows


class BrodenProbe:
    """A Broden-format directory as a :class:`~unitscope.data.probe.ProbeSet`.

    ``split`` keeps only rows of that split; ``categories`` reads only those category columns;
    ``max_images`` keeps the first N rows (after the split filter). Images come at native size.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        categories: Sequence[str] | None = None,
        max_images: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UsageError(f"Broden directory {self.root} does not exist; {_LAYOUT_HINT}")
        for required in ("index.csv", "label.csv"):
            if not (self.root / required).is_file():
                raise UsageError(f"no {required} in {self.root}; {_LAYOUT_HINT}")
        self.images_dir = self.root / "images"
        if not self.images_dir.is_dir():
            raise UsageError(f"no images/ folder in {self.root}; {_LAYOUT_HINT}")
        if max_images is not None and max_images <= 0:
            raise UsageError(f"max_images must be positive, got {max_images}")
        labels = read_label_csv(self.root / "label.csv")
        wanted, rows = _read_index(self.root / "index.csv", categories, set(labels))
        self.splits: tuple[str, ...] = tuple(sorted({r.split for r in rows}))
        if split is not None:
            rows = [r for r in rows if r.split == split]
            if not rows:
                raise UsageError(
                    f"no rows of split {split!r} in {self.root}/index.csv; splits there: "
                    f"{', '.join(self.splits) or '(none)'}"
                )
        if not rows:
            raise UsageError(f"{self.root}/index.csv lists no images; {_LAYOUT_HINT}")
        self._rows: list[_Row] = rows[:max_images] if max_images is not None else rows
        first = self._rows[0]
        for r in self._rows:
            if (r.sh, r.sw) != (first.sh, first.sw):
                raise UsageError(
                    f"{self.root}/index.csv line {r.line}: label size {r.sh}x{r.sw} differs from the first "
                    f"row's {first.sh}x{first.sw}; one probe set needs one label size (use --split or fix sh,sw)"
                )
        self.name: str = self.root.resolve().name
        self.image_size: tuple[int, int] = (first.ih, first.iw)
        self.label_size: tuple[int, int] = (first.sh, first.sw)
        self.concepts: ConceptTable = self._concept_table(labels, wanted)
        self._categories: tuple[str, ...] = tuple(wanted)
        self._lut = self._label_lut(labels)
        self._rows = [self._resolve_numbers(r) for r in self._rows]

    def _concept_table(
        self, labels: dict[int, tuple[str, tuple[tuple[str, int], ...]]], wanted: Sequence[str]
    ) -> ConceptTable:
        concepts = []
        for number in sorted(labels):
            name, counts = labels[number]
            category = primary_category(counts, wanted)
            if category is not None:
                concepts.append(Concept(number, name, category))
        return ConceptTable(tuple(concepts), tuple(wanted))

    def _label_lut(self, labels: dict[int, tuple[str, tuple[tuple[str, int], ...]]]) -> np.ndarray:
        """raw label -> concept number; 0 for label 0 and labels not read; -1 for numbers label.csv lacks."""
        lut = np.full(max(labels, default=0) + 1, -1, dtype=np.int32)
        lut[0] = 0
        lut[list(labels)] = 0
        for concept in self.concepts.concepts:
            lut[concept.number] = concept.number
        return lut

    def _resolve_numbers(self, row: _Row) -> _Row:
        """Map number items through the lookup table once, so samples need not do it again."""
        cells: list[_Cell | None] = []
        for cell in row.cells:
            if cell is None:
                cells.append(None)
            elif cell.pixel:
                items = tuple(x if isinstance(x, str) else int(self._lut[x]) for x in cell.items)
                cells.append(_Cell(True, items))
            else:
                numbers = tuple(int(self._lut[x]) for x in cell.items)
                cells.append(_Cell(False, tuple(n for n in numbers if n != 0)))
        return _Row(row.line, row.image, row.split, row.ih, row.iw, row.sh, row.sw, tuple(cells))

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, i: int) -> _Row:
        if not 0 <= i < len(self._rows):
            raise IndexError(f"sample index {i} out of range for {len(self._rows)} samples")
        return self._rows[i]

    def image_path(self, i: int) -> Path:
        """The image file of sample ``i``."""
        return self.images_dir / self._row(i).image

    def split_of(self, i: int) -> str:
        """The ``split`` column of sample ``i``."""
        return self._row(i).split

    def __getitem__(self, i: int) -> ProbeSample:
        row = self._row(i)
        where = f"index.csv line {row.line}"
        image = read_rgb(self.images_dir / row.image, where)
        if image.shape[:2] != (row.ih, row.iw):
            raise BadSampleError(
                f"image {self.images_dir / row.image} is {image.shape[0]}x{image.shape[1]} but {where} says "
                f"{row.ih}x{row.iw}; fix ih,iw in index.csv or replace the image",
                self.images_dir / row.image,
            )
        pixel: dict[str, np.ndarray] = {}
        whole: dict[str, tuple[int, ...]] = {}
        for category, cell in zip(self._categories, row.cells, strict=True):
            if cell is None:
                continue
            if cell.pixel:
                pixel[category] = self._label_stack(cell.items, row)
            else:
                whole[category] = cell.items  # type: ignore[assignment]
        return ProbeSample(index=i, image=image, pixel_labels=pixel, image_labels=whole)

    def _label_stack(self, items: tuple[str | int, ...], row: _Row) -> np.ndarray:
        """Decode the label layers of one cell into int32 [k, sh, sw] of concept numbers."""
        raw = np.empty((len(items), row.sh, row.sw), dtype=np.int32)
        for k, item in enumerate(items):
            if isinstance(item, int):
                raw[k] = item
            else:
                self._decode_png(self.images_dir / item, raw[k], row)
        if raw.size and int(raw.max()) >= self._lut.size:
            bad = int(raw.max())
            raise BadSampleError(
                f"a label map of index.csv line {row.line} holds label {bad}, which label.csv lacks; "
                "add the label to label.csv or fix the PNG"
            )
        labels = self._lut[raw]
        if labels.size and int(labels.min()) < 0:
            bad = int(np.unique(raw[labels < 0])[0])
            raise BadSampleError(
                f"a label map of index.csv line {row.line} holds label {bad}, which label.csv lacks; "
                "add the label to label.csv or fix the PNG"
            )
        return labels

    def _decode_png(self, path: Path, out: np.ndarray, row: _Row) -> None:
        """label = R + 256·G, written into ``out`` (sh x sw)."""
        where = f"index.csv line {row.line}"
        if not path.is_file():
            raise BadSampleError(f"label map {path} ({where}) is missing; restore it or drop the row", path)
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode not in LABEL_PNG_MODES:
                    raise BadSampleError(
                        f"label map {path} ({where}) is a {im.mode} image; Broden label maps are RGB PNGs "
                        "with label = R + 256*G",
                        path,
                    )
                rgb = np.asarray(im if im.mode != "P" else im.convert("RGB"))
        except READ_ERRORS as err:
            raise BadSampleError(
                f"label map {path} ({where}) cannot be decoded ({err}); replace it or drop the row", path
            ) from err
        if rgb.shape[:2] != out.shape:
            raise BadSampleError(
                f"label map {path} is {rgb.shape[0]}x{rgb.shape[1]} but {where} says sh,sw = "
                f"{out.shape[0]}x{out.shape[1]}; fix sh,sw or rewrite the label map",
                path,
            )
        np.left_shift(rgb[..., 1], 8, out=out, dtype=np.int32)
        out |= rgb[..., 0]
