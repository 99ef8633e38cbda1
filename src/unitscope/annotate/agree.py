"""How human annotations agree with a dissection's automatic labels.

Categories. The paper's six categories and Broden's six differ; a human category agrees with an automatic
one when the automatic category is in :data:`PAPER_TO_BRODEN` of the human one:
scene→scene; object→object; region or surface→object or material (Broden files surfaces such as sky, floor,
road and grass under object, and OpenSurfaces' under material); object part→part; texture or
material→texture or material; simple element or colour→color.

Concept text (:func:`match_rule`), after normalising both (lower case; Broden's one-letter suffix such as
``-s`` or ``-c`` dropped; ``_`` and ``-`` as spaces; a plural ``s`` dropped from words over 3 letters):
``exact`` when equal; ``synonym`` when both lie in one group of :data:`SYNONYMS`; ``substring`` when one is
a whole-word part of the other ("tree crown" ~ "crown"); otherwise no match. Rules are tried in that order.

Precision against IoU: per unit, the mean human precision against the automatic label's IoU, as a scatter
plot and Spearman's ρ (scipy).

The printed table (:func:`format_agreement`) and the plot (:func:`scatter_plot`) are written from the same
cells (:func:`agreement_cells`): each panel's title is its layer's row, and its legend counts the units the
row's category cell counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unitscope.annotate.protocol import CATEGORIES, Annotation
from unitscope.annotate.runview import RunView
from unitscope.annotate.summary import unit_verdicts
from unitscope.errors import UsageError

PAPER_TO_BRODEN: dict[str, tuple[str, ...]] = {
    "scene": ("scene",), "object": ("object",), "region": ("object", "material"), "part": ("part",),
    "texture": ("texture", "material"), "color": ("color",),
}
SYNONYMS: tuple[frozenset[str], ...] = tuple(frozenset(g) for g in (
    {"tv", "television", "monitor", "screen", "computer screen"}, {"sofa", "couch"}, {"car", "automobile", "auto"},
    {"boat", "ship"}, {"cow", "cattle"}, {"stove", "cooker", "cooktop", "hob"}, {"person", "people", "human"},
    {"tree", "trees"}, {"canopy", "tree top", "treetop", "crown", "foliage", "leaves"},
    {"bed", "bedspread", "duvet", "blanket"}, {"water", "sea", "lake"}, {"grass", "lawn"},
    {"color", "colour"}, {"grey", "gray"}, {"house", "building", "cabin"}))
RULES: tuple[str, ...] = ("exact", "synonym", "substring")


def normalise(text: str) -> str:
    text = re.sub(r"-[a-z]$", "", str(text).strip().lower())
    words = re.sub(r"[_\-]+", " ", text).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def match_rule(human: str, automatic: str) -> str | None:
    """The first rule under which ``human`` names ``automatic`` (exact, synonym, substring), or None."""
    a, b = normalise(human), normalise(automatic)
    if not a or not b:
        return None
    if a == b:
        return "exact"
    if any({a, b} <= {normalise(s) for s in group} for group in SYNONYMS):
        return "synonym"
    if re.search(rf"\b{re.escape(b)}\b", a) or re.search(rf"\b{re.escape(a)}\b", b):
        return "substring"
    return None


def agreement_table(annotations: Sequence[Annotation], view: RunView) -> pd.DataFrame:
    """One row per annotated unit found in the run: human verdict beside the automatic label."""
    rows = []
    for v in unit_verdicts(annotations):
        if v.layer not in view.units:
            continue
        table = view.units[v.layer].set_index("unit")
        if v.unit not in table.index:
            continue
        auto = table.loc[v.unit]
        label = "" if pd.isna(auto.get("label")) else str(auto.get("label"))
        category = "" if pd.isna(auto.get("category")) else str(auto.get("category"))
        concept = Counter(v.concepts).most_common(1)[0][0]
        rules = [match_rule(c, label) for c in v.concepts]
        any_label = [str(auto[f"{c}_label"]) for c in ("object", "part", "scene", "material", "texture", "color")
                     if f"{c}_label" in auto.index and not pd.isna(auto[f"{c}_label"])]
        rows.append({
            "layer": v.layer, "unit": v.unit, "annotations": v.annotations, "concept": concept,
            "human_category": CATEGORIES[v.majority - 1] if v.majority else "",
            "precision": v.precision, "label": label, "category": category,
            "iou": float(auto["iou"]) if "iou" in auto.index and not pd.isna(auto["iou"]) else np.nan,
            "category_agrees": bool(v.majority and category in PAPER_TO_BRODEN[CATEGORIES[v.majority - 1]]),
            "concept_rule": next((r for r in RULES if r in rules), ""),
            "concept_any_category": any(match_rule(c, lab) for c in v.concepts for lab in any_label),
        })
    if not rows:
        raise UsageError(f"none of the annotated units is in the run {view.directory}; pass the run they came from")
    return pd.DataFrame(rows)


def agreement_summary(table: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per layer: units, category agreement, concept matches per rule, Spearman ρ of precision and IoU."""
    from scipy.stats import spearmanr

    out: dict[str, dict[str, object]] = {}
    for layer, group in table.groupby("layer", sort=False):
        with_majority = group[group["human_category"] != ""]
        both = group.dropna(subset=["precision", "iou"])
        rho = (float(spearmanr(both["precision"], both["iou"]).statistic)
               if len(both) >= 3 and both["precision"].nunique() > 1 and both["iou"].nunique() > 1 else None)
        out[str(layer)] = {
            "units": len(group),
            "with_majority": len(with_majority),
            "category_agrees": int(with_majority["category_agrees"].sum()),
            "category_agreement": float(with_majority["category_agrees"].mean()) if len(with_majority) else None,
            "concept_match": {rule: int((group["concept_rule"] == rule).sum()) for rule in RULES},
            "concept_match_rate": float((group["concept_rule"] != "").mean()),
            "concept_matches_any_category_label": float(group["concept_any_category"].mean()),
            "concept_any_category_count": int(group["concept_any_category"].sum()),
            "spearman_precision_iou": rho,
        }
    return out


COLUMNS: tuple[tuple[str, str], ...] = (
    ("layer", "layer"), ("units", "units"), ("category", "category agrees"),
    ("concept", "concept matches (exact/synonym/substring)"), ("any", "any category's label"),
    ("rho", "Spearman ρ(precision, IoU)"))


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({count / total:.0%})" if total else "–"


def agreement_cells(layer: str, row: dict[str, object]) -> dict[str, str]:
    """One layer's numbers as the text both the table and the plot show."""
    units = int(str(row["units"]))
    match = row["concept_match"]
    if not isinstance(match, dict):
        raise TypeError("concept_match must be a dict of counts per rule")
    matched = sum(int(v) for v in match.values())
    rho = row["spearman_precision_iou"]
    return {
        "layer": layer, "units": str(units),
        "category": _share(int(str(row["category_agrees"])), int(str(row["with_majority"]))),
        "concept": f"{_share(matched, units)} {'/'.join(str(match[r]) for r in RULES)}",
        "any": _share(int(str(row["concept_any_category_count"])), units),
        "rho": "–" if rho is None else f"{float(str(rho)):.2f}",
    }


def format_agreement(numbers: dict[str, dict[str, object]]) -> str:
    """The per-layer agreement as an aligned text table, one row per layer."""
    rows = [[title for _, title in COLUMNS]]
    rows += [[agreement_cells(layer, row)[key] for key, _ in COLUMNS] for layer, row in numbers.items()]
    widths = [max(len(r[k]) for r in rows) for k in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def panel_title(cells: dict[str, str]) -> str:
    """A plot panel's title: its layer's table row."""
    return (f"{cells['layer']}: {cells['units']} units; category agrees {cells['category']}\n"
            f"concept matches {cells['concept']}; ρ = {cells['rho']}")


def scatter_plot(table: pd.DataFrame, numbers: dict[str, dict[str, object]], out: Path) -> list[str]:
    """Precision (human) against IoU (automatic), one panel per layer, one point per unit, coloured as the
    table counts categories (agree / differ / no majority); the panel titles written, in layer order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(numbers)
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 4.4), dpi=110, squeeze=False)
    titles = []
    for ax, layer in zip(axes[0], layers, strict=True):
        group = table[table["layer"] == layer]
        majority = group["human_category"] != ""
        for part, colour, name in ((group[majority & group["category_agrees"]], "#2da44e", "categories agree"),
                                   (group[majority & ~group["category_agrees"]], "#cf222e", "categories differ"),
                                   (group[~majority], "#8c959f", "no majority category")):
            if len(part):
                ax.scatter(part["iou"], part["precision"], s=28, c=colour, alpha=0.8, label=f"{name} ({len(part)})")
        ax.set_xlabel("IoU of the automatic label")
        ax.set_ylabel("human precision (mean over annotators)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right", fontsize=8)
        titles.append(panel_title(agreement_cells(layer, numbers[layer])))
        ax.set_title(titles[-1], fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return titles
