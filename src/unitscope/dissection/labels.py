"""From IoU matrices to unit labels and Network Dissection's per-layer detector table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from unitscope.data.probe import ConceptTable


def label_units(
    iou: torch.Tensor | None, concepts: ConceptTable, thresholds: torch.Tensor, iou_threshold: float
) -> pd.DataFrame:
    """One row per unit: its best concept overall and per category, with IoU.

    ``iou`` is [units, max_label + 1] with column = label number. Exact ties go to the lower label number,
    overall and per category (NetDissect-Lite's argmax picks the lowest label number within each category,
    then the first category in its category order, so it can differ on a tie across categories). A unit
    whose IoU is 0 for every concept gets no label: empty ``label``, category ``none``. Without labels
    (plain image folders) the label columns are empty.
    """
    units = len(thresholds)
    table = pd.DataFrame({"unit": np.arange(units)})
    if iou is None or len(concepts) == 0:
        table["label"] = ""
        table["category"] = ""
        table["iou"] = np.nan
        table["detector"] = False
        table["threshold"] = thresholds.double().numpy()
        return table
    matrix = iou.double().numpy()
    numbers = np.array([c.number for c in concepts.concepts])
    names = np.array([c.name for c in concepts.concepts], dtype=object)
    cats = np.array([c.category for c in concepts.concepts], dtype=object)
    order = np.argsort(numbers, kind="stable")
    numbers, names, cats = numbers[order], names[order], cats[order]
    values = matrix[:, numbers]  # [U, C] in label-number order: argmax picks the lowest number on ties
    best = values.argmax(axis=1)
    best_iou = values[np.arange(units), best]
    nothing = best_iou <= 0
    table["label"] = np.where(nothing, "", names[best])
    table["category"] = np.where(nothing, "none", cats[best])
    table["iou"] = best_iou
    table["detector"] = table["iou"] >= iou_threshold
    for category in concepts.categories:
        columns = np.flatnonzero(cats == category)
        if len(columns) == 0:
            continue
        sub = values[:, columns]
        pick = sub.argmax(axis=1)
        picked = sub[np.arange(units), pick]
        table[f"{category}_label"] = np.where(picked <= 0, "", names[columns][pick])
        table[f"{category}_iou"] = picked
    table["threshold"] = thresholds.double().numpy()
    return table


def detector_table(units: pd.DataFrame, categories: tuple[str, ...]) -> pd.DataFrame:
    """Per category: detector units and unique detected concepts (Network Dissection's Table 2)."""
    detectors = units[units["detector"]]
    rows = []
    for category in categories:
        in_cat = detectors[detectors["category"] == category]
        rows.append({"category": category, "detectors": len(in_cat), "unique": in_cat["label"].nunique()})
    rows.append({"category": "total", "detectors": len(detectors), "unique": detectors["label"].nunique()})
    return pd.DataFrame(rows)
