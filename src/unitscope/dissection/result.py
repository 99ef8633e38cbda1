"""The result of a dissection: pandas tables in memory, and their files in a run directory."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from unitscope.data.probe import Concept, ConceptTable
from unitscope.dissection.record import SUMMARY, LayerRecord, RunRecord, read_record, write_record
from unitscope.dissection.run_files import (
    CONCEPTS_COLUMNS,
    TOP_IMAGES_COLUMNS,
    UNITS_COLUMNS,
    UNITS_OPTIONAL,
    RunFiles,
    check_concepts,
    check_iou,
    check_top_images,
    check_units,
    corrupt,
)
from unitscope.errors import UsageError
from unitscope.stats.histogram import NUM_BINS, bin_edges

TOP_MAPS = "top_maps.npy"
HISTOGRAM = "histogram.npz"


@dataclass(frozen=True)
class ResampledCounts:
    """Detectors per category (and ``total``) in each bootstrap resample of the probe images, and the digest
    of those resamples (``stats.bootstrap.draws_digest``): two networks' counts pair only under equal digests."""

    draws: str
    counts: dict[str, np.ndarray]  # category (and "total") -> int [R]

    def to_record(self) -> dict[str, object]:
        """As ``summary.json`` keeps it: the digest, and per category one short line "3 1 0 2 …" (small ints)."""
        return {"draws": self.draws, "counts": {k: " ".join(str(int(v)) for v in c) for k, c in self.counts.items()}}

    @classmethod
    def from_record(cls, recorded: object) -> ResampledCounts | None:
        """What :meth:`to_record` wrote; None when absent or malformed (a run recorded before it)."""
        draws = recorded.get("draws") if isinstance(recorded, dict) else None
        counts = recorded.get("counts") if isinstance(recorded, dict) else None
        if not isinstance(draws, str) or not isinstance(counts, dict):
            return None
        if not all(isinstance(c, str) and all(v.isdigit() for v in c.split()) for c in counts.values()):
            return None
        return cls(draws, {str(k): np.asarray([int(v) for v in c.split()], dtype=np.int64)
                           for k, c in counts.items()})


@dataclass
class LayerResult:
    """One dissected layer: unit labels, top images, and the full IoU matrix (None without labels).

    ``top_maps`` [U, k, h, w] float32: each unit's map on each of its top images, in ``top_images`` order,
    as pass 1 saw them (None: not kept, an older run or a layer too large); ``histogram`` [U, bins] int64:
    every activation of each unit counted in the bins of :func:`unitscope.stats.histogram.bin_edges`.
    """

    name: str
    path: str
    shape: tuple[int, int, int]
    units: pd.DataFrame
    table: pd.DataFrame
    top_images: pd.DataFrame
    iou: np.ndarray | None = None
    intervals: dict[str, object] = field(default_factory=dict)  # bootstrap intervals of the layer's counts
    top_maps: np.ndarray | None = None
    histogram: np.ndarray | None = None
    resampled: ResampledCounts | None = None  # pairs the run with its random twin, or two runs (LayerRecord.resampled)


@dataclass
class DissectionResult:
    """Everything a dissection found; ``summary`` stacks every layer's detector table."""

    layers: dict[str, LayerResult]
    concepts: ConceptTable
    record: RunRecord
    run_dir: Path | None = None
    label_pixels: np.ndarray | None = None  # [max_label + 1] labelled pixels per concept over the probe set

    @property
    def units(self) -> dict[str, pd.DataFrame]:
        return {name: layer.units for name, layer in self.layers.items()}

    @property
    def summary(self) -> pd.DataFrame:
        frames = [layer.table.assign(layer=name) for name, layer in self.layers.items()]
        table = pd.concat(frames, ignore_index=True)
        return table[["layer", "category", "detectors", "unique"]]

    def write(self, directory: Path) -> None:
        """Write units.csv, top_images.csv, iou.npy per layer, concepts.csv and summary.json."""
        directory.mkdir(parents=True, exist_ok=True)
        concept_rows = [
            {"number": c.number, "name": c.name, "category": c.category,
             "pixels": float(self.label_pixels[c.number]) if self.label_pixels is not None else np.nan}
            for c in self.concepts.concepts
        ]
        pd.DataFrame(concept_rows, columns=["number", "name", "category", "pixels"]).to_csv(
            directory / "concepts.csv", index=False
        )
        for name, layer in self.layers.items():
            layer_dir = directory / layer_dirname(name)
            layer_dir.mkdir(exist_ok=True)
            layer.units.to_csv(layer_dir / "units.csv", index=False, float_format="%.6g")
            layer.top_images.to_csv(layer_dir / "top_images.csv", index=False, float_format="%.6g")
            if layer.iou is not None:
                np.save(layer_dir / "iou.npy", layer.iou.astype(np.float32))
            if "threshold" in layer.units:  # exact: units.csv rounds to 6 digits, masks need every bit
                np.save(layer_dir / "thresholds.npy", layer.units["threshold"].to_numpy(dtype=np.float64))
            if layer.top_maps is not None:
                np.save(layer_dir / TOP_MAPS, np.ascontiguousarray(layer.top_maps, dtype=np.float32))
            if layer.histogram is not None:
                save_npz(layer_dir / HISTOGRAM, counts=layer.histogram.astype(np.int64), edges=bin_edges())
        write_record(self.record, directory)

    @classmethod
    def load(cls, directory: str | Path) -> DissectionResult:
        """Read a finished run directory back, every file checked (``run_files``: untrusted input)."""
        directory = Path(directory)
        record = read_record(directory)
        files = RunFiles(directory)
        path = files.path("concepts.csv")
        frame = files.table(path, CONCEPTS_COLUMNS, keep_default_na=False, na_values={"pixels": [""]})
        check_concepts(frame, path, record.categories)
        concepts = ConceptTable(
            tuple(Concept(int(r.number), str(r.name), str(r.category)) for r in frame.itertuples()),
            record.categories,
        )
        columns = int(frame["number"].max()) + 1 if len(frame) else None  # the IoU matrix has one per label number
        layers = {}
        for info in record.layers:
            layers[info.name] = _load_layer(files, info, record.n_images, columns)
        label_pixels = None
        if len(frame) and frame["pixels"].notna().all():
            label_pixels = np.zeros(int(frame["number"].max()) + 1)
            label_pixels[frame["number"].to_numpy()] = frame["pixels"].to_numpy(dtype=float)
        return cls(layers, concepts, record, directory, label_pixels)


def _load_layer(files: RunFiles, info: LayerRecord, n_images: int, columns: int | None) -> LayerResult:
    """One layer's files, each checked against the record (units, map size) and the others."""
    if info.directory != layer_dirname(info.name):  # consumers also find a layer's files by its name
        raise corrupt(files.path(SUMMARY), f"layer {info.name!r} has directory {info.directory!r}, not "
                                           f"{layer_dirname(info.name)!r}")
    layer_dir = files.path(info.directory)
    if not layer_dir.is_dir():
        raise UsageError(f"{layer_dir} is missing (layer {info.name} of the run); run dissect again with --overwrite")
    path = files.path(info.directory, "units.csv")
    units = files.table(path, UNITS_COLUMNS, UNITS_OPTIONAL, keep_default_na=False, na_values={"iou": ["", "nan"]})
    check_units(units, path, info.units)
    path = files.path(info.directory, "top_images.csv")
    top_images = files.table(path, TOP_IMAGES_COLUMNS)
    check_top_images(top_images, path, info.units, info.map_size, n_images)
    iou_path = files.path(info.directory, "iou.npy")
    iou = None
    if iou_path.exists():
        iou = check_iou(files.array(iou_path, "float", (info.units, None)), iou_path)
        if columns is not None and iou.shape[1] < columns:
            raise corrupt(iou_path, f"{iou.shape[1]} label columns, the run's concepts need {columns}")
    thresholds = files.path(info.directory, "thresholds.npy")
    if thresholds.exists():  # read by explain (exact thresholds): checked here, where every run file is
        files.array(thresholds, "float", (info.units,))
    ranks = int(top_images["rank"].max()) + 1 if len(top_images) else None
    return LayerResult(
        name=info.name,
        path=info.path,
        shape=(info.units, *info.map_size),
        units=units,
        table=pd.DataFrame(list(info.table)),
        top_images=top_images,
        iou=iou,
        intervals=dict(info.intervals),
        top_maps=_top_maps(files, info, ranks),
        histogram=_histogram(files, info),
        resampled=ResampledCounts.from_record(info.resampled),
    )


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so equal arrays give equal bytes (runs compare bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, buffer.getvalue())


def _top_maps(files: RunFiles, info: LayerRecord, ranks: int | None) -> np.ndarray | None:
    """The layer's stored top-image maps [U, k, h, w], memory-mapped (None when the run did not keep them)."""
    if info.top_maps is None or not files.path(info.directory, info.top_maps).is_file():
        return None
    return files.array(files.path(info.directory, info.top_maps), "float", (info.units, ranks, *info.map_size),
                       mmap=True)


def _histogram(files: RunFiles, info: LayerRecord) -> np.ndarray | None:
    """The layer's activation counts per unit and bin (None when the run did not keep them)."""
    if info.histogram is None or not files.path(info.directory, info.histogram).is_file():
        return None
    path = files.path(info.directory, info.histogram)
    counts = files.npz_entry(path, "counts", "int", (info.units, NUM_BINS))
    if counts.size and int(counts.min()) < 0:
        raise corrupt(path, "negative counts")
    return counts


def layer_dirname(name: str) -> str:
    """A file-system-safe directory name for a layer name or module path."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
