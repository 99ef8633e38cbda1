"""Matplotlib figures of a dissection, built on ``matplotlib.figure.Figure`` (no pyplot, no global state).

The bar chart is Network Dissection's "number of detectors per concept" plot: one bar per detected
concept, height = how many units of the layer detect it, coloured by the concept's category.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError

# Broden's six categories keep the same colours in every report; others take the remaining ones in order.
CATEGORY_COLORS: dict[str, str] = {
    "object": "#3b6fb6",
    "part": "#e08a2c",
    "scene": "#3a9a5b",
    "material": "#c8463d",
    "texture": "#8a63b8",
    "color": "#8c6d4f",
}
EXTRA_COLORS: tuple[str, ...] = ("#d16ba5", "#6b7b8c", "#b5a33a", "#2fa4a9", "#5c5c5c")
UNKNOWN_COLOR: str = "#9aa3ad"


def category_colors(categories: Sequence[str]) -> dict[str, str]:
    """A colour per category: fixed for Broden's categories, stable in order of appearance for others."""
    colors: dict[str, str] = {}
    extra = iter(EXTRA_COLORS)
    for category in categories:
        if category in colors:
            continue
        colors[category] = CATEGORY_COLORS.get(category) or next(extra, UNKNOWN_COLOR)
    return colors


def detector_counts(units: pd.DataFrame) -> pd.DataFrame:
    """Per detected concept: ``label, category, units`` (detector units), most detected first.

    Ties are broken by category, then label, so the order never depends on unit order.
    """
    detectors = units[units["detector"].astype(bool)] if "detector" in units else units.iloc[:0]
    if detectors.empty:
        return pd.DataFrame({"label": [], "category": [], "units": []})
    counts = detectors.groupby(["label", "category"], as_index=False).size().rename(columns={"size": "units"})
    counts = counts.sort_values(["units", "category", "label"], ascending=[False, True, True], kind="stable")
    return counts.reset_index(drop=True)


def _draw_counts(ax: Axes, counts: pd.DataFrame, colors: dict[str, str], title: str, hidden: int) -> None:
    """Vertical bars with the concept names under them, as in the Network Dissection paper."""
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold", color="#1d2733")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#8a94a0")
    ax.spines["bottom"].set_color("#8a94a0")
    ax.tick_params(colors="#36414d", labelsize=8)
    if counts.empty:
        ax.text(0.5, 0.5, "no detector units in this layer", ha="center", va="center",
                transform=ax.transAxes, color="#6b7580", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    positions = range(len(counts))
    ax.bar(positions, counts["units"], width=0.72,
           color=[colors.get(c, UNKNOWN_COLOR) for c in counts["category"]])
    ax.set_xticks(list(positions), list(counts["label"]), rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, max(len(counts), 5) - 0.4)
    ax.set_ylabel("detector units", fontsize=9, color="#36414d")
    cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)
    ax.grid(axis="y", color="#e3e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    if hidden:
        ax.text(1.0, 1.02, f"+{hidden} more concepts not shown", ha="right", va="bottom",
                transform=ax.transAxes, color="#6b7580", fontsize=8)


def plot_detector_counts(
    result: DissectionResult, layer: str | None = None, *, max_concepts: int = 40, titles: bool = True
) -> Figure:
    """Detector units per detected concept: one panel per layer (or only ``layer``), coloured by category.

    At most ``max_concepts`` bars per panel (the most detected); ``titles`` names each panel's layer.
    """
    if max_concepts < 1:
        raise UsageError(f"max_concepts must be at least 1, got {max_concepts}")
    if layer is not None and layer not in result.layers:
        raise UsageError(f"no layer {layer!r} in this dissection; choose one of {', '.join(result.layers)}")
    names = [layer] if layer is not None else list(result.layers)
    if not names:
        raise UsageError("the dissection holds no layers; dissect at least one layer first")
    per_layer = {name: detector_counts(result.layers[name].units) for name in names}
    colors = category_colors(result.concepts.categories)
    widest = max(min(len(c), max_concepts) for c in per_layer.values())
    width = min(max(3.8, 0.24 * widest + 1.6), 13.0)
    panel_height = 2.9
    figure = Figure(figsize=(width, panel_height * len(names) + 0.5), layout="constrained")
    axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
    present: list[str] = []
    for ax, name in zip(axes, names, strict=True):
        counts = per_layer[name]
        shown = counts.head(max_concepts)
        detectors = int(counts["units"].sum()) if not counts.empty else 0
        title = f"{name}: {detectors} detector units, {len(counts)} concepts" if titles else ""
        _draw_counts(ax, shown, colors, title, len(counts) - len(shown))
        present = list(dict.fromkeys([*present, *shown["category"]]))
    if present:
        order = {c: i for i, c in enumerate(colors)}
        present.sort(key=lambda c: order.get(c, len(order)))
        handles = [Patch(color=colors.get(c, UNKNOWN_COLOR), label=c) for c in present]
        figure.legend(handles=handles, loc="outside upper right", ncols=len(handles), frameon=False, fontsize=8)
    return figure
