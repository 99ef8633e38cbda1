"""Figures of a comparison (matplotlib ``Figure``, no pyplot): categories per layer, objects, ρ scatters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unitscope.analysis.compare.runs import SIDES, Comparison

SIDE_COLOURS: dict[str, str] = {"a": "#3b6fb6", "b": "#e08a2c"}
MEASURE_TITLES: dict[str, str] = {
    "pixel_share": "pixel coverage in the probe set (log)",
    "image_frequency": "share of probe images containing it (log)",
    "scene_mi_bits": "mutual information with the scene (bits)",
}


CATEGORY_COLOURS: dict[str, str] = {"object": "#3b6fb6", "part": "#e08a2c", "scene": "#3a9a5b",
                                    "material": "#c8463d", "texture": "#8a63b8", "color": "#8c6d4f"}


def categories_figure(comparison: Comparison) -> Figure:
    """Bars for one layer; for several, the paper's per-layer curves (one line per category and run)."""
    if len(comparison.pairs) > 1:
        return _category_curves(comparison)
    table = comparison.categories[comparison.categories["category"] != "total"]
    fig = Figure(figsize=(max(6.0, 0.9 * len(table) + 2), 5.2), dpi=110, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    ticks = [f"{row.category}" if len(comparison.pairs) == 1 else f"{row.layer}\n{row.category}"
             for row in table.itertuples()]
    for ax, (what, title) in zip(axes, [("detectors", "detector units"), ("unique", "unique concepts")],
                                 strict=True):
        for k, (side, name) in enumerate(zip(SIDES, comparison.names, strict=True)):
            bars = ax.bar(x + (k - 0.5) * 0.4, table[f"{what}_{side}"], width=0.4, color=SIDE_COLOURS[side],
                          label=name)
            ax.bar_label(bars, fontsize=7, padding=1)
        ax.set_ylabel(title)
        ax.margins(y=0.15)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].set_xticks(x, ticks, fontsize=8)
    layers = ", ".join(p.label for p in comparison.pairs)
    fig.suptitle(f"Semantic categories of detector units ({layers})", fontsize=10)
    return fig


def _category_curves(comparison: Comparison) -> Figure:
    """Detector units and unique concepts per layer: solid lines run A, dashed run B, colour = category."""
    table = comparison.categories[comparison.categories["category"] != "total"]
    layers = [p.label for p in comparison.pairs]
    fig = Figure(figsize=(9.0, 4.2), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    extra = iter(["#d16ba5", "#6b7b8c", "#b5a33a", "#2fa4a9"])
    for ax, (what, title) in zip(axes, [("detectors", "detector units"), ("unique", "unique concepts")], strict=True):
        for category, frame in table.groupby("category", sort=False):
            colour = CATEGORY_COLOURS.get(str(category)) or next(extra, "#999999")
            frame = frame.set_index("layer").reindex(layers)
            for side, style, name in zip(SIDES, ("-", "--"), comparison.names, strict=True):
                ax.plot(layers, frame[f"{what}_{side}"], style, marker="o", color=colour,
                        label=f"{category} ({name})")
        ax.set_ylabel(title)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), handlelength=3)
    fig.suptitle(f"Detector units per layer: {comparison.names[0]} (solid) vs {comparison.names[1]} (dashed)",
                 fontsize=10)
    return fig


def objects_figure(comparison: Comparison, layer: str, limit: int = 40) -> Figure:
    """Units per detected object class (histogram like the paper's), classes sorted by total units."""
    frame = comparison.objects[comparison.objects["layer"] == layer]
    frame = frame[(frame["units_a"] + frame["units_b"]) > 0]
    frame = frame.assign(total=frame["units_a"] + frame["units_b"]).sort_values(
        ["total", "units_a", "name"], ascending=[False, False, True]).head(limit)
    fig = Figure(figsize=(max(6.0, 0.32 * len(frame) + 2), 4.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(frame))
    for k, (side, name) in enumerate(zip(SIDES, comparison.names, strict=True)):
        ax.bar(x + (k - 0.5) * 0.4, frame[f"units_{side}"], width=0.4, color=SIDE_COLOURS[side],
               label=f"{name} ({int(frame[f'units_{side}'].astype(bool).sum())} classes)")
    ax.set_xticks(x, frame["name"], rotation=70, ha="right", fontsize=8)
    ax.set_ylabel(f"units detecting the {comparison.category}")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    if frame.empty:
        ax.text(0.5, 0.5, f"no {comparison.category} detectors in {layer}", ha="center", transform=ax.transAxes)
    ax.set_title(f"{comparison.category.capitalize()} classes detected at {layer}", fontsize=10)
    return fig


def _rho_text(comparison: Comparison, layer: str, side: str, measure: str) -> str:
    rows = comparison.correlations
    parts = []
    for subset, prefix in (("all", "ρ"), ("foreground", "foreground ρ")):
        row = rows[(rows["layer"] == layer) & (rows["side"] == side) & (rows["measure"] == measure)
                   & (rows["classes"] == subset)]
        if not row.empty and not math.isnan(float(row["rho"].iloc[0])):
            parts.append(f"{prefix} = {float(row['rho'].iloc[0]):.2f} (p = {float(row['p_value'].iloc[0]):.2g})")
    return "\n".join(parts) or "ρ n/a"


def scatter_figure(comparison: Comparison, layer: str) -> Figure:
    """Units per object class against frequency (pixel, image) and scene discriminativeness, with ρ."""
    frame = comparison.objects[comparison.objects["layer"] == layer]
    frame = frame[~(frame["image_count"] == 0)]
    fig = Figure(figsize=(13.5, 5.0), dpi=110, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, measure in zip(axes, ("pixel_share", "image_frequency", "scene_mi_bits"), strict=True):
        valid = frame[frame[measure].notna() & (frame[measure] > 0 if measure != "scene_mi_bits" else True)]
        background = ~valid["name"].isin(comparison.foreground) if comparison.foreground is not None else \
            pd.Series(False, index=valid.index)
        for k, (side, name) in enumerate(zip(SIDES, comparison.names, strict=True)):
            jitter = (k - 0.5) * 0.12
            ax.scatter(valid[measure][~background], valid[f"units_{side}"][~background] + jitter, s=22, alpha=0.75,
                       color=SIDE_COLOURS[side], label=f"{name}:\n{_rho_text(comparison, layer, side, measure)}")
            if background.any():  # background regions (sky, wall…): hollow markers
                ax.scatter(valid[measure][background], valid[f"units_{side}"][background] + jitter, s=22,
                           facecolors="none", edgecolors=SIDE_COLOURS[side], alpha=0.75)
        if measure != "scene_mi_bits" and not valid.empty:
            ax.set_xscale("log")
        _label_top(ax, valid, measure)
        ax.set_xlabel(MEASURE_TITLES[measure], fontsize=9)
        ax.set_ylabel(f"units detecting the {comparison.category}", fontsize=9)
        ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
        ax.spines[["top", "right"]].set_visible(False)
        if valid.empty:
            ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
    hollow = " (hollow: background regions)" if comparison.foreground is not None else ""
    fig.suptitle(f"What predicts the number of {comparison.category} detectors at {layer}?{hollow}", fontsize=10)
    return fig


def _label_top(ax: object, frame: pd.DataFrame, measure: str, count: int = 6) -> None:
    """Name the classes with the most units, so the scatter can be read."""
    top = frame.assign(total=frame["units_a"] + frame["units_b"]).nlargest(count, "total")
    for row in top.itertuples():
        if row.total > 0:
            ax.annotate(row.name, (getattr(row, measure), max(row.units_a, row.units_b)), fontsize=7,  # type: ignore[attr-defined]
                        xytext=(3, 3), textcoords="offset points", color="#444")
