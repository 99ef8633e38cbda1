"""The authors' released annotation files (``unitAnnotation_places205-alexnet.mat``), read and written exactly.

``layerAnnotation`` is an L×2 cell array (L = 5 in their files): row i holds (a) a units×9 cell array whose
columns are, for annotators 1-3 in turn, the concept text, the category code (1 scene, 2 object, 3 region
or surface, 4 object part, 5 texture or material, 6 simple element or colour) and the precision (a
fraction), and (b) the layer name. ``layerAverageCount`` is L×6: the share of annotations per category
per layer, in the same category order. A slot whose code is not 1-6 is an empty slot and is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io

from unitscope.annotate.protocol import CATEGORIES, Annotation
from unitscope.errors import UsageError


def _scalar(value: object) -> object:
    """A MATLAB cell's content as a Python value (str, float) or None when empty."""
    while isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        if value.dtype.kind == "U":
            return "".join(str(v) for v in value.flat)
        if value.size != 1:
            raise UsageError(f"expected one value in a cell, found an array of shape {value.shape}")
        value = value.flat[0]
    if isinstance(value, np.generic):
        return value.item()
    return value


def category_shares(annotations: Sequence[Annotation]) -> np.ndarray:
    """[6] share of ``annotations`` per category code 1..6 (zeros when there are none)."""
    counts = np.bincount([a.category - 1 for a in annotations], minlength=len(CATEGORIES)).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def read_mat(path: str | Path) -> list[Annotation]:
    """Every filled annotator slot of an annotation ``.mat`` file in the authors' layout."""
    try:
        data = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as err:
        raise UsageError(f"cannot read {path} as a MATLAB file ({err})") from None
    cells = data.get("layerAnnotation")
    if not isinstance(cells, np.ndarray) or cells.ndim != 2 or cells.shape[1] != 2:
        raise UsageError(f"{path} has no L×2 cell array layerAnnotation; is it an authors' unitAnnotation file?")
    out: list[Annotation] = []
    for row in range(cells.shape[0]):
        table, layer = cells[row, 0], _scalar(cells[row, 1])
        if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] % 3:
            raise UsageError(f"{path}: layerAnnotation{{{row + 1},1}} is not a units×(3·annotators) cell array")
        for unit in range(table.shape[0]):
            for slot in range(table.shape[1] // 3):
                concept, code, precision = (_scalar(table[unit, 3 * slot + k]) for k in range(3))
                if not isinstance(code, int | float) or not float(code).is_integer() or not 1 <= code <= 6:
                    continue
                prec = float(precision) if isinstance(precision, int | float) else float("nan")
                out.append(Annotation(str(layer), unit, f"annotator{slot + 1}", str(concept or ""), int(code), prec))
    return out


def write_mat(path: str | Path, annotations: Sequence[Annotation], layers: Sequence[str] | None = None) -> None:
    """Write ``annotations`` in the authors' layout; rows are units 0..max, slots in the order given."""
    by_layer: dict[str, dict[int, list[Annotation]]] = defaultdict(lambda: defaultdict(list))
    for a in annotations:
        by_layer[a.layer][a.unit].append(a)
    names = list(layers) if layers is not None else list(by_layer)
    if not names:
        raise UsageError("no annotations to write")
    slots = max([3] + [len(v) for units in by_layer.values() for v in units.values()])
    cells = np.empty((len(names), 2), dtype=object)
    average = np.zeros((len(names), len(CATEGORIES)))
    for row, name in enumerate(names):
        units = by_layer.get(name, {})
        n_units = max(units) + 1 if units else 0
        table = np.empty((n_units, 3 * slots), dtype=object)
        for unit in range(n_units):
            answers = units.get(unit, [])
            for slot in range(slots):
                found = answers[slot] if slot < len(answers) else None
                table[unit, 3 * slot] = found.concept if found else ""
                table[unit, 3 * slot + 1] = float(found.category) if found else np.nan
                table[unit, 3 * slot + 2] = float(found.precision) if found else np.nan
        cells[row, 0] = table
        cells[row, 1] = name
        average[row] = category_shares([a for v in units.values() for a in v])
    scipy.io.savemat(str(path), {"layerAnnotation": cells, "layerAverageCount": average})


def read_average_count(path: str | Path) -> np.ndarray | None:
    """The file's ``layerAverageCount`` (L×6), or None when absent."""
    data = scipy.io.loadmat(str(path))
    value = data.get("layerAverageCount")
    return np.asarray(value, dtype=float) if value is not None else None
