"""Per-layer tables of human annotations, as the paper reports them.

For each layer: the units annotated; the share of annotations per category (the paper's figure 6 bars,
the authors' ``layerAverageCount``); units whose annotations agree (at least 2 on one category); and
detectors per category: units whose majority category (chosen by more than half of its annotators) is
that category and whose mean precision reaches the threshold (the paper's 75 %).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unitscope.annotate.matfile import category_shares
from unitscope.annotate.protocol import CATEGORIES, Annotation
from unitscope.errors import UsageError


@dataclass(frozen=True)
class UnitVerdict:
    """What a unit's annotators say together."""

    layer: str
    unit: int
    annotations: int
    majority: int | None  # category code chosen by more than half, or None
    agree: bool  # at least two annotations share a category
    precision: float  # mean precision
    concepts: tuple[str, ...]


def unit_verdicts(annotations: Sequence[Annotation]) -> list[UnitVerdict]:
    grouped: dict[tuple[str, int], list[Annotation]] = defaultdict(list)
    for a in annotations:
        grouped[(a.layer, a.unit)].append(a)
    out = []
    for (layer, unit), answers in grouped.items():
        counts = Counter(a.category for a in answers)
        code, top = counts.most_common(1)[0]
        majority = code if 2 * top > len(answers) else None
        out.append(UnitVerdict(layer, unit, len(answers), majority, top >= 2,
                               float(np.nanmean([a.precision for a in answers])), tuple(a.concept for a in answers)))
    return out


def summarize(annotations: Sequence[Annotation], precision: float = 0.75) -> dict[str, dict[str, object]]:
    """``{layer: {"units", "annotations", "category_share", "agree", "detectors"}}`` in first-seen layer order."""
    if not 0 <= precision <= 1:
        raise UsageError(f"--precision must be a fraction in [0, 1], got {precision}")
    verdicts = unit_verdicts(annotations)
    out: dict[str, dict[str, object]] = {}
    for layer in dict.fromkeys(a.layer for a in annotations):
        mine = [v for v in verdicts if v.layer == layer]
        shares = category_shares([a for a in annotations if a.layer == layer])
        detectors = Counter(v.majority for v in mine if v.majority is not None and v.precision >= precision)
        out[layer] = {
            "units": len(mine),
            "annotations": sum(v.annotations for v in mine),
            "category_share": {name: float(s) for name, s in zip(CATEGORIES, shares, strict=True)},
            "agree": sum(v.agree for v in mine),
            "detectors": {name: int(detectors.get(code + 1, 0)) for code, name in enumerate(CATEGORIES)},
        }
    return out


def format_summary(table: dict[str, dict[str, object]], precision: float) -> str:
    """The summary as aligned text, one column per layer."""
    layers = list(table)
    head = f"{'':<22}" + "".join(f"{n:>10}" for n in layers)
    lines = [head]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:<22}" + "".join(f"{c:>10}" for c in cells))

    row("units", [str(table[n]["units"]) for n in layers])
    row("annotations", [str(table[n]["annotations"]) for n in layers])
    row("units agreeing (>=2)", [str(table[n]["agree"]) for n in layers])
    lines.append("share of annotations per category")
    for name in CATEGORIES:
        row(f"  {name}", [f"{table[n]['category_share'][name]:.1%}" for n in layers])  # type: ignore[index]
    lines.append(f"detectors (majority category, mean precision >= {precision:g})")
    for name in CATEGORIES:
        row(f"  {name}", [str(table[n]["detectors"][name]) for n in layers])  # type: ignore[index]
    return "\n".join(lines)
