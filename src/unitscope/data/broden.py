"""Read a Broden-format probe directory (broden1_224, broden1_227, or a SceneWorld export).

Layout, as written by NetDissect's ``unify`` and read by NetDissect-Lite:

- ``index.csv``: ``image,split,ih,iw,sh,sw,<category>…`` with any category columns in any order.
  ``image`` is a path under ``images/``. A category cell holds ``;``-separated items: a PNG name
  under ``images/`` (a label map, label = R + 256·G) or a decimal label number (the label covers the
  whole image). An empty cell means "not annotated in this image".
- ``label.csv``: ``number,name,category,frequency,coverage,syns`` with ``category`` like
  ``material(3);object(1)``. Row 0 (``-``, unlabeled) may be present or absent.
- ``category.csv`` and ``c_<category>.csv``: statistics, of which the coverage decides each label's
  primary category (``broden_categories``: NetDissect's rule; label.csv counts where they are missing).

What a sample looks like: a cell whose items are all numbers becomes ``image_labels[cat]`` (a tuple);
a cell with at least one PNG becomes ``pixel_labels[cat]``, int32 ``[k, sh, sw]`` with one layer per
item (a number item becomes a constant layer, as NetDissect-Lite does). Label numbers are global.
A concept's category is its primary one among the categories being read: the largest ``coverage`` in
``c_<category>.csv``, ties to the later category of ``category.csv``. Labels outside those categories, and
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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from unitscope.data.broden_categories import PrimaryCategories, primary_categories, readable_csv
from unitscope.data.errors import BadSampleError
from unitscope.data.image_folder import READ_ERRORS, read_rgb
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.errors import UsageError

META_COLUMNS: tuple[str, ...] = ("image", "split", "ih", "iw", "sh", "sw")
LABEL_COLUMNS: tuple[str, ...] = ("number", "name", "category")
LABEL_PNG_MODES: tuple[str, ...] = ("RGB", "RGBA", "P")
_CATEGORY_COUNT = re.compile(r"^\s*([^();]+?)\s*\(\s*(\d+)\s*\)\s*$")
_LAYOUT_HINT = "a Broden directory holds index.csv, label.csv and images/"


LabelInfo = tuple[str, tuple[tuple[str, int], ...]]


class _Row(NamedTuple):
    """One validated line of index.csv; ``cells`` aligns with the categories being read.

    A cell is None (not annotated), a tuple of concept numbers (image labels, 0 dropped), or, for a
    cell with label maps, its validated text (split again when read: a string costs far less memory
    than a tuple of names, which matters for 63,305 rows).
    """

    line: int
    image: str
    split: str
    ih: int
    iw: int
    sh: int
    sw: int
    cells: tuple[str | tuple[int, ...] | None, ...]


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


def read_label_csv(path: Path) -> dict[int, LabelInfo]:
    """label number -> (name, category counts), without label 0."""
    labels: dict[int, LabelInfo] = {}
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
            if not (number_text.isascii() and number_text.isdigit()):
                raise UsageError(f"{where}: label number {number_text!r} is not a non-negative integer")
            number = int(number_text)
            if number in labels:
                raise UsageError(f"{where}: label number {number} is listed twice; keep one row per number")
            if number != 0:  # row 0 ("-", unlabeled) may be listed; it is never a concept
                counts = parse_category_counts(row["category"] or "", where)
                labels[number] = ((row["name"] or "").strip(), counts)
    return labels


def concept_table(labels: dict[int, LabelInfo], wanted: Sequence[str], primary: PrimaryCategories) -> ConceptTable:
    """Concepts of the categories being read, each with its primary category among them."""
    concepts = tuple(Concept(n, labels[n][0], primary.by_label[n]) for n in sorted(labels) if n in primary.by_label)
    return ConceptTable(concepts, tuple(wanted))


def label_lut(labels: dict[int, LabelInfo], concepts: ConceptTable) -> np.ndarray:
    """raw label -> concept number; 0 for label 0 and labels not read; -1 for numbers label.csv lacks."""
    lut = np.full(max(labels, default=0) + 1, -1, dtype=np.int32)
    lut[0] = 0
    lut[list(labels)] = 0
    for concept in concepts.concepts:
        lut[concept.number] = concept.number
    return lut


def _category_columns(path: Path, header: list[str], categories: Sequence[str] | None) -> list[str]:
    """Validate the header; the category columns to read, in file order."""
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
        return present
    unknown = [c for c in categories if c not in present]
    if unknown:
        raise UsageError(
            f"categories {', '.join(unknown)} are not columns of {path}; choose from {', '.join(present) or '(none)'}"
        )
    return [h for h in present if h in categories]


class _IndexParser:
    """Validates index.csv lines and maps their label numbers to concept numbers in the same pass."""

    def __init__(self, path: Path, header: list[str], wanted: Sequence[str], lut: np.ndarray) -> None:
        self.path = path
        self.width = len(header)
        self.meta = [header.index(c) for c in META_COLUMNS]
        self.columns = [(header.index(c), c) for c in wanted]
        self.lut: list[int] = lut.tolist()

    def row(self, fields: list[str], line: int) -> _Row:
        if len(fields) != self.width:
            raise UsageError(
                f"{self.path} line {line} has {len(fields)} fields but the header has {self.width}; "
                "fix the row (a cell with a comma must be quoted)"
            )
        image, split, ih, iw, sh, sw = (fields[k] for k in self.meta)
        image = image.strip()
        if not image:
            raise UsageError(f"{self.path} line {line}: the image column is empty; give a path under images/")
        sizes = [self._size(text, column, line) for text, column in ((ih, "ih"), (iw, "iw"), (sh, "sh"), (sw, "sw"))]
        cells = tuple(self._cell(fields[k], category, line) for k, category in self.columns)
        return _Row(line, image, split.strip(), sizes[0], sizes[1], sizes[2], sizes[3], cells)

    def _size(self, text: str, column: str, line: int) -> int:
        value = text.strip()
        if not (value.isascii() and value.isdigit()) or int(value) <= 0:
            raise UsageError(f"{self.path} line {line}: {column} is {text!r}; it must be a positive integer (pixels)")
        return int(value)

    def _cell(self, text: str, category: str, line: int) -> str | tuple[int, ...] | None:
        if not text:
            return None
        numbers: list[int] = []
        pixel = False
        for part in text.split(";"):
            item = part.strip()
            if not item:
                continue
            if item.isascii() and item.isdigit():
                number = int(item)
                mapped = self.lut[number] if number < len(self.lut) else -1
                if mapped < 0:
                    raise UsageError(
                        f"{self.path} line {line}: {category} label {number} is not in label.csv; "
                        "add it there or fix the cell"
                    )
                numbers.append(mapped)
            elif item[-4:].lower() == ".png":
                pixel = True
            else:
                raise UsageError(
                    f"{self.path} line {line}: {category} cell holds {item!r}; cells hold ;-separated label "
                    "numbers or PNG names under images/"
                )
        if pixel:
            return text
        return tuple(n for n in numbers if n) if numbers else None


def _read_index(
    path: Path, categories: Sequence[str] | None, labels: dict[int, LabelInfo]
) -> tuple[ConceptTable, PrimaryCategories, np.ndarray, list[_Row]]:
    """The concepts being read, how their categories were decided, the raw-label lookup table, and every
    validated row of index.csv."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        wanted = _category_columns(path, header, categories)
        primary = primary_categories(path.parent, {n: counts for n, (_, counts) in labels.items()}, wanted)
        concepts = concept_table(labels, wanted, primary)
        lut = label_lut(labels, concepts)
        parser = _IndexParser(path, header, wanted, lut)
        rows = [parser.row(fields, reader.line_num) for fields in reader if fields]
    return concepts, primary, lut, rows


class BrodenProbe:
    """A Broden-format directory as a :class:`~unitscope.data.probe.ProbeSet`.

    ``split`` keeps only rows of that split; ``categories`` reads only those category columns;
    ``max_images`` keeps the first N rows (after the split filter): ``limit`` records it (None: every row)
    and ``rows_taken`` how many rows that left, which with the directory defines the subset. Images come
    at native size. ``primary`` says how each concept's category was decided; a fallback to label.csv
    counts is noted in one line on stderr.
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
        labels = readable_csv(read_label_csv, self.root / "label.csv")
        self.concepts: ConceptTable
        self.primary: PrimaryCategories
        self.concepts, self.primary, self._lut, rows = readable_csv(
            _read_index, self.root / "index.csv", categories, labels)
        if self.primary.note is not None:
            print(self.primary.note, file=sys.stderr)
        self._categories: tuple[str, ...] = self.concepts.categories
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
        self.limit: int | None = max_images
        self.rows_taken: int = len(self._rows)
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

    def load_image(self, i: int) -> np.ndarray:
        """Sample ``i``'s image alone (checked against index.csv), without decoding its label files."""
        row = self._row(i)
        where = f"index.csv line {row.line}"
        image = read_rgb(self.images_dir / row.image, where)
        if image.shape[:2] != (row.ih, row.iw):
            raise BadSampleError(
                f"image {self.images_dir / row.image} is {image.shape[0]}x{image.shape[1]} but {where} says "
                f"{row.ih}x{row.iw}; fix ih,iw in index.csv or replace the image",
                self.images_dir / row.image,
            )
        return image

    def __getitem__(self, i: int) -> ProbeSample:
        return self._with_labels(i, self._row(i), self.load_image(i))

    def load_labels(self, i: int) -> ProbeSample:
        """Sample ``i``'s labels without decoding its image (``image`` is empty, 0x0x3)."""
        return self._with_labels(i, self._row(i), np.zeros((0, 0, 3), dtype=np.uint8))

    def _with_labels(self, i: int, row: _Row, image: np.ndarray) -> ProbeSample:
        pixel: dict[str, np.ndarray] = {}
        whole: dict[str, tuple[int, ...]] = {}
        for category, cell in zip(self._categories, row.cells, strict=True):
            if cell is None:
                continue
            if isinstance(cell, str):
                pixel[category] = self._label_stack(cell, row)
            else:
                whole[category] = cell
        return ProbeSample(index=i, image=image, pixel_labels=pixel, image_labels=whole)

    def _label_stack(self, cell: str, row: _Row) -> np.ndarray:
        """Decode the label layers of one cell into int32 [k, sh, sw] of concept numbers."""
        items = [item for item in (part.strip() for part in cell.split(";")) if item]
        raw = np.empty((len(items), row.sh, row.sw), dtype=np.int32)
        for k, item in enumerate(items):
            if item.isdigit():
                raw[k] = int(item)  # a whole-image label as a constant layer (checked against label.csv)
            else:
                self._decode_png(self.images_dir / item, raw[k], row)
        if raw.size and int(raw.max()) >= self._lut.size:
            self._unknown_label(raw, raw >= self._lut.size, items, row)
        labels = self._lut[raw]
        if labels.size and int(labels.min()) < 0:
            self._unknown_label(raw, labels < 0, items, row)
        return labels

    def _unknown_label(self, raw: np.ndarray, bad: np.ndarray, items: list[str], row: _Row) -> None:
        """Raise for the first layer holding a label number that label.csv lacks, naming its PNG."""
        k = int(np.flatnonzero(bad.reshape(len(items), -1).any(axis=1))[0])
        number = int(raw[k][bad[k]].min())
        path = self.images_dir / items[k]
        raise BadSampleError(
            f"label map {path} (index.csv line {row.line}) holds label {number}, which label.csv lacks; "
            "add the label to label.csv or fix the PNG",
            path,
        )

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
