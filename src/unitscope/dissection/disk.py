"""The disk a dissection needs, estimated before any work, so a run that cannot fit is refused in one line.

A run's bulk is pass 1's activation cache (per layer, in ``work/``: of each image's float32 [units, h, w] map only
the cells that may reach the final threshold and their neighbours, ``cache.py``), the label cache beside it and
pass 2's per-image counts (per layer, for the bootstrap); each null (``--control recolored``, ``--baseline
random``) runs its own engine in its own work folder under the same staging directory, which is kept until the run
is published, so their caches add up. The estimate comes from the layers' shapes (the shape probe run before pass
1) and the quantile: a resumed run subtracts what its staging directory already holds, since those files are
rewritten in place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from unitscope.data.probe import ProbeSet, has_labels
from unitscope.dissection.engine import TOP_MAPS_BYTES
from unitscope.dissection.settings import DissectSettings
from unitscope.stats.labels import LabelEncoder
from unitscope.stats.quantile import keep_count

FILES_MARGIN = 1.10  # checkpoints, tables and the result files beside the caches, in proportion
FILES_FLOOR = 64 * 2**10  # per layer: its checkpoint's and result's small tables
NEIGHBOURS = 9  # a hot cell keeps itself and up to 8 neighbours (hot cells cluster: measured about 3x fewer)
LABELS_PER_MASK = 4  # labels a unit's mask meets in an image, for the per-image counts (measured about 2.6)


def activation_cache_bytes(n_images: int, shape: tuple[int, int, int], quantile: float) -> int:
    """Estimate of a layer's sparse activation cache (``cache.ActivationCache``), generous for a probe in no
    particular order.

    Image i is written with its units' bounds at the ``keep``-th largest value of the i * h * w seen so far,
    which about ``keep / (i h w)`` of its cells exceed (every cell while i h w <= keep); each hot cell is
    counted with all its neighbours. Every record also holds up to 8 bytes per unit, a row at most the dense
    float32 map. A probe sorted by rising activation can come near that most.
    """
    units, h, w = shape
    pixels = h * w
    keep = keep_count(quantile, n_images * pixels)
    hot = np.minimum(1.0, keep / (pixels * np.arange(1, n_images + 1, dtype=np.float64))).sum()
    cells = min(float(n_images), NEIGHBOURS * hot) * pixels  # per unit
    position = 1 if pixels <= 2**8 else 2 if pixels <= 2**16 else 4
    most = n_images * units * (8 + 4 * pixels)
    return min(most, int(n_images * units * 8 + units * cells * (4 + position)))


def label_cache_bytes(n_images: int, pixels: int, categories: int, itemsize: int) -> int:
    """Upper bound of the label cache: per image a 12-byte header, at most one [P] map (stored whole at worst)
    and one whole-image label (int32) per category, and C category flags (``label_cache.LabelCache`` records)."""
    return n_images * (12 + categories * (pixels * itemsize + 4 + 1))


def evidence_bytes(n_images: int, units: int) -> int:
    """Per layer, the per-image counts pass 2 writes for the bootstrap (``stats.bootstrap.ImageCounts`` spill
    files): per (image, unit) an active-area row (3 int32) and a row (4 int32) per label its mask meets,
    LABELS_PER_MASK of them (AlexNet conv5 on SceneWorld: ~12 KB an image against this 19.5 KB)."""
    return n_images * units * (12 + 16 * LABELS_PER_MASK)


def layer_files_bytes(shape: tuple[int, int, int], topk: int, categories: int) -> int:
    """Per layer, besides its cache: top-k maps (kept up to TOP_MAPS_BYTES, in the checkpoint, its temporary
    copy and the result) and the unit × category tables."""
    units, h, w = shape
    maps = 4 * units * topk * h * w
    return 3 * (maps if maps <= TOP_MAPS_BYTES else 0) + 64 * units * max(categories, 1) + FILES_FLOOR


def run_bytes(shapes: dict[str, tuple[int, int, int]], n_images: int, topk: int, categories: int,
              label_bytes: int, engines: int, quantile: float) -> int:
    """What the run writes at its peak: ``engines`` copies (the run and its nulls) of every layer's activation
    cache, the label cache, the layers' per-image counts (a probe with labels) and files, times FILES_MARGIN."""
    per_engine = label_bytes + sum(activation_cache_bytes(n_images, shape, quantile)
                                   + layer_files_bytes(shape, topk, categories)
                                   + (evidence_bytes(n_images, shape[0]) if categories else 0)
                                   for shape in shapes.values())
    return int(engines * per_engine * FILES_MARGIN)


def estimate(shapes: dict[str, tuple[int, int, int]], probe: ProbeSet, settings: DissectSettings) -> int:
    """The run's upper bound (:func:`run_bytes`) for ``probe`` with ``settings``' nulls and top-k."""
    labels = categories = 0
    if has_labels(probe):
        encoder = LabelEncoder(probe.concepts, probe.label_size)
        categories = len(encoder.categories)
        itemsize = 2 if encoder.num_labels <= np.iinfo(np.int16).max else 4
        labels = label_cache_bytes(len(probe), encoder.num_pixels, categories, itemsize)
    engines = (2 if settings.control == "recolored" else 1) * (2 if settings.baseline == "random" else 1)
    return run_bytes(shapes, len(probe), settings.topk, categories, labels, engines, settings.quantile)


def held_bytes(staging: Path) -> int:
    """Bytes the files under ``staging`` already occupy on disk (a resumed run rewrites them in place)."""
    total = 0
    for root, _dirs, files in os.walk(staging):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def mount_point(path: Path) -> Path:
    """The filesystem's mount point that holds ``path`` (its nearest existing ancestor)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 10**8 else f"{nbytes / 1e6:.1f} MB"


def disk_problem(staging: Path, needed: int, resumed: bool) -> str | None:
    """Why a run whose estimate is ``needed`` (less what a resumed ``staging`` holds) cannot fit; None if it can."""
    left = max(needed - (held_bytes(staging) if resumed and staging.exists() else 0), 0)
    where = mount_point(staging)
    free = shutil.disk_usage(where).free
    if left <= free:
        return None
    return (f"this dissection needs about {_size(left)} for its activation cache and files but only "
            f"{_size(free)} are free on {where}; free space, dissect fewer images (--n) or layers, "
            "or choose another --out")
