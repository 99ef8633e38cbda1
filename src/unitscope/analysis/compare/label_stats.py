"""How frequent each object is in a probe set, and how much its presence says about the scene.

One pass over the probe's labels gives, per concept of the category (``object`` by default):

- ``pixel_area``: labelled pixels carrying it (a pixel counts once even if several maps carry it);
  ``pixel_share`` = pixel_area / all pixels of images where the category is annotated (coverage);
- ``image_count``: images where it appears; ``image_frequency`` = image_count / annotated images;
- ``scene_mi_bits``: :func:`~unitscope.analysis.compare.discriminative.presence_mutual_information` with the
  images' scene labels (the first ``scene`` label of each image; NaN when the probe has none).

A run may also store per-label areas (``RUN/<layer>/label_stats.csv`` with ``number`` and ``label_area``;
optional ``image_count``): :func:`run_label_stats` reads them, for when the probe cannot be reopened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unitscope.analysis.compare.discriminative import presence_mutual_information
from unitscope.data.probe import ConceptTable, ProbeSample, ProbeSet
from unitscope.dissection.run_files import LABEL_STATS_COLUMNS, RunFiles, corrupt
from unitscope.progress import progress_iter

STAT_COLUMNS: tuple[str, ...] = ("pixel_area", "pixel_share", "image_count", "image_frequency", "scene_mi_bits")


def _labels(probe: ProbeSet, i: int) -> ProbeSample:
    loader = getattr(probe, "load_labels", None)  # Broden: skip decoding the image
    return loader(i) if loader is not None else probe[i]


def _present(maps: np.ndarray, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label number: pixels carrying it (once per pixel) and whether it occurs."""
    maps = maps[None] if maps.ndim == 2 else maps
    flat = maps.reshape(maps.shape[0], -1).astype(np.int64)
    if flat.shape[0] == 1:
        area = np.bincount(flat[0], minlength=num_labels)[:num_labels]
    else:
        pixel = np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
        pairs = np.unique(flat * flat.shape[1] + pixel)
        area = np.bincount(pairs // flat.shape[1], minlength=num_labels)[:num_labels]
    area[0] = 0
    return area, area > 0


def probe_label_stats(
    probe: ProbeSet, category: str = "object", max_images: int | None = None, progress: bool = False
) -> pd.DataFrame:
    """One row per concept of ``category``: number, name and :data:`STAT_COLUMNS`."""
    concepts = probe.concepts
    num_labels = concepts.max_number + 1
    n = len(probe) if max_images is None else min(max_images, len(probe))
    area = np.zeros(num_labels, dtype=np.int64)
    counts = np.zeros(num_labels, dtype=np.int64)
    presence: list[np.ndarray] = []
    scenes: list[int] = []
    total_pixels = annotated = 0
    for i in progress_iter(range(n), desc="label statistics", unit="img", disable=not progress):
        sample = _labels(probe, i)
        maps = sample.pixel_labels.get(category)
        if maps is None:
            continue
        image_area, present = _present(np.asarray(maps), num_labels)
        area += image_area
        counts += present
        total_pixels += int(np.prod(maps.shape[-2:]))
        annotated += 1
        scene = sample.image_labels.get("scene") or ()
        if scene:
            presence.append(present)
            scenes.append(int(scene[0]))
    mi = presence_mutual_information(np.array(presence), np.array(scenes)) if scenes else np.full(num_labels, np.nan)
    return _table(concepts, category, area, counts, mi, total_pixels, annotated)


def _table(concepts: ConceptTable, category: str, area: np.ndarray, counts: np.ndarray, mi: np.ndarray,
           total_pixels: int, annotated: int) -> pd.DataFrame:
    rows = [{
        "number": c.number, "name": c.name,
        "pixel_area": int(area[c.number]),
        "pixel_share": area[c.number] / total_pixels if total_pixels else np.nan,
        "image_count": int(counts[c.number]),
        "image_frequency": counts[c.number] / annotated if annotated else np.nan,
        "scene_mi_bits": float(mi[c.number]),
    } for c in concepts.in_category(category)]
    return pd.DataFrame(rows, columns=["number", "name", *STAT_COLUMNS])


def run_label_stats(
    run_dir: Path, layer_dir: str, concepts: ConceptTable, category: str = "object"
) -> pd.DataFrame | None:
    """Frequencies stored by the dissection (``label_stats.csv``), or None when the run has none.

    ``pixel_share`` is then the share of the category's labelled pixels (the run stores no image areas).
    """
    files = RunFiles(run_dir)  # a run file: checked like every other (dissection/run_files.py)
    path = files.path(layer_dir, "label_stats.csv")
    if not path.is_file():
        return None
    stored = files.table(path, LABEL_STATS_COLUMNS, {"image_count": "number"})
    if stored["number"].duplicated().any() or (stored["label_area"] < 0).any():
        raise corrupt(path, "a label listed twice or a negative area")
    stored = stored.set_index("number")
    numbers = [c.number for c in concepts.in_category(category)]
    area = stored["label_area"].reindex(numbers).fillna(0).astype(np.int64)
    total = int(area.sum())
    table = pd.DataFrame({"number": numbers, "name": [concepts[k].name for k in numbers],
                          "pixel_area": area.to_numpy(), "pixel_share": area.to_numpy() / total if total else np.nan})
    if "image_count" in stored.columns:
        table["image_count"] = stored["image_count"].reindex(numbers).fillna(0).astype(np.int64).to_numpy()
    else:
        table["image_count"] = np.nan
    table["image_frequency"] = np.nan
    table["scene_mi_bits"] = np.nan
    return table
