"""Write any labelled probe set as a Broden-format directory (how SceneWorld is exported).

The files follow NetDissect's ``unify`` writer, so NetDissect-Lite and :class:`BrodenProbe` read them:

- ``images/<name>/<index>.png`` (or ``.jpg``); pixel labels in ``images/<name>/<index>_<category>.png``
  (``_<category>_<j>.png``, j = 1…k, when a category has k > 1 layers), label = R + 256·G. ``<name>``
  is the probe's name with characters other than letters, digits, ``_.-`` replaced by ``_``;
  ``<index>`` is zero-padded to six digits.
- ``preview/<name>/<index>_<category>.png``: for people, the image beside its label map in colour, and
  ``preview/legend_<category>.png`` (``label_preview``); readers ignore the folder.
- ``index.csv``: ``image,split,ih,iw,sh,sw`` then one column per category, in the order of the probe's
  ``concepts.categories``; image categories hold ``;``-separated label numbers (0 omitted). A category
  missing from a sample's dicts is written as an empty cell (not annotated). ``split`` is ``train``.
- ``label.csv``: ``number,name,category,frequency,coverage,syns``. As in real Broden there is no row
  for label 0. ``category`` lists ``cat(count)`` for every category the label occurs in, largest count
  first (the concept's own category first on a tie).
- ``c_<category>.csv``: ``code,number,name,frequency,coverage``; ``code`` 1… dense within the category,
  by decreasing frequency (then coverage, then number); like real Broden, no row for code 0.
- ``category.csv``: ``name,first,last,count,frequency``: smallest and largest label number of the
  category, number of labels in it, and the sum of their frequencies; rows in index.csv's column order.

A reader gives each label the category of its largest ``c_*.csv`` coverage, ties to the later category
(NetDissect's rule, ``broden_categories``); a label that would so leave its concept's category is warned of.

Statistics mean what they mean in real Broden: ``frequency`` is the number of images in which the label
occurs (per category in ``c_*.csv`` and in ``category``'s counts; summed over categories in
``label.csv``); ``coverage`` is the label's area summed over those images in units of whole images:
for a label map, pixels carrying the label (over all layers) divided by sh·sw; an image label adds 1.0.
With ``frequency_stats=False`` no counting is done: frequencies and coverages are 0 and each label
lists only its own category.

The directory appears whole or not at all: everything goes into a hidden sibling first, which is then
renamed into place.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from unitscope.data.broden import is_broden_dir
from unitscope.data.broden_categories import primary_by_coverage
from unitscope.data.label_preview import LabelPreviews
from unitscope.data.probe import ConceptTable, ProbeSample, ProbeSet
from unitscope.errors import UsageError
from unitscope.progress import progress_iter
from unitscope.staging import staged

IMAGE_FORMATS: dict[str, tuple[str, str]] = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "jpeg": ("JPEG", ".jpg")}
MAX_LABEL: int = 256 * 256 - 1
SPLIT: str = "train"


class _Stats:
    """Per (label, category) image frequency and summed coverage, gathered while writing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.frequency: dict[tuple[int, str], int] = defaultdict(int)
        self.coverage: dict[tuple[int, str], float] = defaultdict(float)

    def add_maps(self, category: str, maps: np.ndarray) -> None:
        if not self.enabled:
            return
        counts = np.bincount(maps.ravel())
        pixels = maps.shape[-2] * maps.shape[-1]
        for number in np.flatnonzero(counts[1:]) + 1:
            key = (int(number), category)
            self.frequency[key] += 1
            self.coverage[key] += float(counts[number]) / pixels

    def add_numbers(self, category: str, numbers: tuple[int, ...]) -> None:
        if not self.enabled:
            return
        for number in set(numbers) - {0}:
            self.frequency[(number, category)] += 1
            self.coverage[(number, category)] += 1.0


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return cleaned or "probe"


def _check_sample(sample: ProbeSample, i: int, label_size: tuple[int, ...], concepts: ConceptTable) -> None:
    image = sample.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UsageError(f"sample {i}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    for category, maps in sample.pixel_labels.items():
        if maps.ndim != 3 or tuple(maps.shape[1:]) != label_size or maps.shape[0] < 1:
            raise UsageError(
                f"sample {i}: {category} label maps must be [k, {label_size[0]}, {label_size[1]}] "
                f"(the probe's label_size), got {tuple(maps.shape)}"
            )
        if maps.size and (int(maps.min()) < 0 or int(maps.max()) > MAX_LABEL):
            raise UsageError(f"sample {i}: {category} labels must lie in 0…{MAX_LABEL} to fit R + 256*G")
        _check_known(np.unique(maps), category, i, concepts)
    for category, numbers in sample.image_labels.items():
        _check_known(np.asarray(numbers, dtype=np.int64), category, i, concepts)


def _check_known(numbers: np.ndarray, category: str, i: int, concepts: ConceptTable) -> None:
    unknown = [int(n) for n in numbers if n != 0 and int(n) not in concepts]
    if unknown:
        raise UsageError(
            f"sample {i}: {category} label(s) {unknown[:5]} are not in the probe's concept table; "
            "every label a sample carries needs a Concept"
        )


def _encode_rg(labels: np.ndarray) -> np.ndarray:
    rgb = np.zeros((*labels.shape, 3), dtype=np.uint8)
    rgb[..., 0] = labels & 0xFF
    rgb[..., 1] = labels >> 8
    return rgb


class _Writer:
    """Writes images, label PNGs and index rows into a staging directory."""

    def __init__(self, stage: Path, probe: ProbeSet, image_format: str, frequency_stats: bool,
                 previews: int | None) -> None:
        self.stage = stage
        self.previews = LabelPreviews(stage / "preview", probe.concepts)
        self.preview_count = len(probe) if previews is None else previews
        self.probe = probe
        self.pil_format, self.suffix = IMAGE_FORMATS[image_format]
        self.subdir = _safe_name(probe.name)
        (stage / "images" / self.subdir).mkdir(parents=True)
        self.categories: list[str] = list(probe.concepts.categories)
        for concept in probe.concepts.concepts:
            self._note_category(concept.category)
        self.stats = _Stats(frequency_stats)
        self.rows: list[dict[str, object]] = []
        self.width = max(6, len(str(max(len(probe) - 1, 0))))

    def add(self, i: int) -> None:
        sample = self.probe[i]
        _check_sample(sample, i, tuple(self.probe.label_size), self.probe.concepts)
        stem = f"{self.subdir}/{i:0{self.width}d}"
        image_name = stem + self.suffix
        options = {"quality": 95} if self.pil_format == "JPEG" else {"compress_level": 1}
        Image.fromarray(sample.image).save(self.stage / "images" / image_name, self.pil_format, **options)
        sh, sw = self.probe.label_size
        row: dict[str, object] = {
            "image": image_name, "split": SPLIT,
            "ih": sample.image.shape[0], "iw": sample.image.shape[1], "sh": sh, "sw": sw,
        }
        for category, maps in sample.pixel_labels.items():
            self._note_category(category)
            maps = np.asarray(maps, dtype=np.int64)
            names = []
            for j, layer in enumerate(maps, start=1):
                name = f"{stem}_{category}.png" if len(maps) == 1 else f"{stem}_{category}_{j}.png"
                Image.fromarray(_encode_rg(layer)).save(self.stage / "images" / name, "PNG", compress_level=1)
                if i < self.preview_count:
                    self.previews.write(name, sample.image, layer, category)
                names.append(name)
            row[category] = ";".join(names)
            self.stats.add_maps(category, maps)
        for category, numbers in sample.image_labels.items():
            self._note_category(category)
            row[category] = ";".join(str(int(n)) for n in numbers if int(n) != 0)
            self.stats.add_numbers(category, tuple(int(n) for n in numbers))
        self.rows.append(row)

    def _note_category(self, category: str) -> None:
        if category not in self.categories:
            self.categories.append(category)

    def finish(self) -> None:
        """Write the four kinds of CSV once every sample is in."""
        self.previews.write_legends()
        fields = ["image", "split", "ih", "iw", "sh", "sw", *self.categories]
        _write_csv(self.stage / "index.csv", fields, self.rows)
        per_category = self._category_members()
        self._warn_moved(per_category)
        _write_label_csv(self.stage / "label.csv", self.probe.concepts, self._label_counts(), self.stats)
        category_rows = []
        for category in self.categories:
            members = per_category.get(category, [])
            rows = [
                {"code": code, "number": n, "name": self.probe.concepts[n].name,
                 "frequency": self.stats.frequency.get((n, category), 0),
                 "coverage": repr(self.stats.coverage.get((n, category), 0.0))}
                for code, n in enumerate(members, start=1)
            ]
            _write_csv(self.stage / f"c_{category}.csv", ["code", "number", "name", "frequency", "coverage"], rows)
            category_rows.append({
                "name": category,
                "first": min(members, default=""), "last": max(members, default=""), "count": len(members),
                "frequency": sum(self.stats.frequency.get((n, category), 0) for n in members),
            })
        _write_csv(self.stage / "category.csv", ["name", "first", "last", "count", "frequency"], category_rows)

    def _label_counts(self) -> dict[int, list[tuple[str, int]]]:
        """label -> [(category, frequency)] largest first; the concept's own category wins ties."""
        counts: dict[int, list[tuple[str, int]]] = {c.number: [] for c in self.probe.concepts.concepts}
        for (number, category), freq in self.stats.frequency.items():
            counts[number].append((category, freq))
        for concept in self.probe.concepts.concepts:
            listed = counts[concept.number]
            if all(cat != concept.category for cat, _ in listed):
                listed.append((concept.category, 0))
            listed.sort(key=lambda cf: (-cf[1], cf[0] != concept.category))
        return counts

    def _warn_moved(self, per_category: dict[str, list[int]]) -> None:
        """Warn of labels whose c_*.csv coverage gives a reader another category than their concept's."""
        moved = []
        for concept in self.probe.concepts.concepts:
            listed = [(category, self.stats.coverage.get((concept.number, category), 0.0))
                      for category in self.categories if concept.number in per_category.get(category, ())]
            primary = primary_by_coverage(listed)
            if primary != concept.category:
                moved.append(f"{concept.name} ({concept.category} -> {primary})")
        if moved:
            warnings.warn(
                "these labels cover more area in another category than their own (or as much, in a later "
                f"one), so a Broden reader will give them that category: {', '.join(moved[:5])}",
                stacklevel=4,
            )

    def _category_members(self) -> dict[str, list[int]]:
        """category -> label numbers in dense-code order (frequency, coverage down; number up)."""
        members: dict[str, set[int]] = defaultdict(set)
        for number, category in self.stats.frequency:
            members[category].add(number)
        for concept in self.probe.concepts.concepts:
            members[concept.category].add(concept.number)
        ordered: dict[str, list[int]] = {}
        for category, numbers in members.items():
            def key(n: int, c: str = category) -> tuple[int, float, int]:
                return (-self.stats.frequency.get((n, c), 0), -self.stats.coverage.get((n, c), 0.0), n)
            ordered[category] = sorted(numbers, key=key)
        return ordered


def _write_csv(path: Path, fields: list[str], rows: Sequence[Mapping[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_label_csv(
    path: Path, concepts: ConceptTable, counts: dict[int, list[tuple[str, int]]], stats: _Stats
) -> None:
    rows = []
    for concept in sorted(concepts.concepts, key=lambda c: c.number):
        listed = counts[concept.number]
        rows.append({
            "number": concept.number, "name": concept.name,
            "category": ";".join(f"{cat}({freq})" for cat, freq in listed),
            "frequency": sum(freq for _, freq in listed),
            "coverage": f"{sum(stats.coverage.get((concept.number, cat), 0.0) for cat, _ in listed):f}",
            "syns": "",
        })
    _write_csv(path, ["number", "name", "category", "frequency", "coverage", "syns"], rows)


def _prepare_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is a file; choose a directory path for the Broden export")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} is not empty; choose a new directory or pass overwrite (--overwrite)")
        if not is_broden_dir(out):
            raise UsageError(f"refusing to replace {out}: it is not a Broden directory (no index.csv)")


def write_broden(
    out_dir: str | Path,
    probe: ProbeSet,
    image_format: str = "png",
    progress: bool = True,
    frequency_stats: bool = True,
    overwrite: bool = False,
    previews: int | None = None,
) -> Path:
    """Write ``probe`` as a Broden directory at ``out_dir`` and return its path.

    ``previews``: how many images (the first ones; None = all) also get human previews of their label
    PNGs under ``preview/`` (see ``label_preview``); 0 writes none.
    """
    fmt = image_format.lower()
    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"image format {image_format!r} is not supported; use one of {', '.join(IMAGE_FORMATS)}")
    if len(probe.concepts) == 0:
        raise UsageError(f"probe set {probe.name!r} has no concept labels; only a labelled set can be written")
    out = Path(out_dir)
    _prepare_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged(out) as stage:  # OUT.partial, renamed into place when complete, removed on any error
        writer = _Writer(stage, probe, fmt, frequency_stats, previews)
        for i in progress_iter(range(len(probe)), desc="writing Broden", unit="img", disable=not progress):
            writer.add(i)
        writer.finish()
    return out
