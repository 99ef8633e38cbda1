"""Figures of a comparison (matplotlib ``Figure``, no pyplot): categories per layer, objects, ρ scatters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unitscope.analysis.compare.runs import Comparison

RUN_COLOURS: tuple[str, ...] = ("#3b6fb6", "#e08a2c", "#3a9a5b", "#c8463d", "#8a63b8", "#8c6d4f", "#d16ba5",
                                "#6b7b8c", "#b5a33a", "#2fa4a9")
LINE_STYLES: tuple[str, ...] = ("-", "--", ":", "-.")
MEASURE_TITLES: dict[str, str] = {
    "pixel_share": "pixel coverage in the probe set (log)",
    "image_frequency": "share of probe images containing it (log)",
    "scene_mi_bits": "mutual information with the scene (bits)",
}


CATEGORY_COLOURS: dict[str, str] = {"object": "#3b6fb6", "part": "#e08a2c", "scene": "#3a9a5b",
                                    "material": "#c8463d", "texture": "#8a63b8", "color": "#8c6d4f"}


def run_colour(k: int) -> str:
    """The colour of the k-th run (0-based) in every figure and on the page."""
    return RUN_COLOURS[k % len(RUN_COLOURS)]


def _percent(values: pd.Series) -> np.ndarray:
    return np.asarray(values, dtype=float) * 100


def categories_figure(comparison: Comparison) -> Figure:
    """Bars for one layer; for several, the paper's per-layer curves (one line per category and run).

    Detectors as shares of the layer's units (networks of different widths side by side), with the raw
    count on each bar."""
    if len(comparison.pairs) > 1:
        return _category_curves(comparison)
    table = comparison.categories[comparison.categories["category"] != "total"]
    runs = len(comparison.runs)
    width = 0.8 / runs
    fig = Figure(figsize=(max(6.0, (0.5 + 0.3 * runs) * len(table) + 2), 5.2), dpi=110, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    for ax, (what, title) in zip(axes, [("share", "detectors (% of the layer's units)"),
                                        ("unique", "unique concepts")], strict=True):
        for k, (side, name) in enumerate(zip(comparison.sides, comparison.names, strict=True)):
            values = _percent(table[f"share_{side}"]) if what == "share" else table[f"unique_{side}"]
            bars = ax.bar(x + (k - (runs - 1) / 2) * width, values, width=width, color=run_colour(k),
                          label=name)
            if what == "share":
                ax.bar_label(bars, labels=[str(v) for v in table[f"detectors_{side}"]], fontsize=7, padding=1)
            else:
                ax.bar_label(bars, fontsize=7, padding=1)
        ax.set_ylabel(title)
        ax.margins(y=0.15)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].set_xticks(x, list(table["category"]), fontsize=8)
    fig.suptitle(f"Semantic categories of detector units ({comparison.pairs[0].label}; bars labelled with counts)",
                 fontsize=10)
    return fig


def _category_curves(comparison: Comparison) -> Figure:
    """Detectors (% of the layer's units) and unique concepts per layer: line style = run, colour = category."""
    table = comparison.categories[comparison.categories["category"] != "total"]
    layers = [p.label for p in comparison.pairs]
    fig = Figure(figsize=(9.0, 4.2), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    extra = iter(["#d16ba5", "#6b7b8c", "#b5a33a", "#2fa4a9"])
    colours: dict[str, str] = {}
    for ax, (what, title) in zip(axes, [("share", "detectors (% of the layer's units)"),
                                        ("unique", "unique concepts")], strict=True):
        for category, frame in table.groupby("category", sort=False):
            colour = colours.setdefault(str(category), CATEGORY_COLOURS.get(str(category)) or next(extra, "#999999"))
            frame = frame.set_index("layer").reindex(layers)
            for k, (side, name) in enumerate(zip(comparison.sides, comparison.names, strict=True)):
                values = _percent(frame[f"share_{side}"]) if what == "share" else frame[f"unique_{side}"]
                ax.plot(layers, values, LINE_STYLES[k % len(LINE_STYLES)], marker="os^Dv"[k % 5], color=colour,
                        label=f"{category} ({name})")
        ax.set_ylabel(title)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), handlelength=3)
    styles = ", ".join(f"{name} ({'solid' if k == 0 else 'dashed' if k == 1 else 'dotted' if k == 2 else 'dash-dot'})"
                       for k, name in enumerate(comparison.names[:4]))
    fig.suptitle(f"Detector units per layer: {styles}", fontsize=10)
    return fig


def objects_figure(comparison: Comparison, layer: str, limit: int = 40) -> Figure:
    """Units per detected object class (histogram like the paper's) as shares of each layer's units,
    classes sorted by total share."""
    sides = comparison.sides
    runs = len(sides)
    frame = comparison.objects[comparison.objects["layer"] == layer]
    total = sum(frame[f"share_{side}"] for side in sides)
    frame = frame.assign(total=total)[total > 0].sort_values(
        ["total", "share_a", "name"], ascending=[False, False, True]).head(limit)
    width = 0.8 / runs
    fig = Figure(figsize=(max(6.0, (0.12 + 0.1 * runs) * len(frame) + 2), 4.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(frame))
    pair = next(p for p in comparison.pairs if p.label == layer)
    for k, (side, name) in enumerate(zip(sides, comparison.names, strict=True)):
        units = int(comparison.runs[k].layers[pair.layers[k]].shape[0])
        ax.bar(x + (k - (runs - 1) / 2) * width, _percent(frame[f"share_{side}"]), width=width, color=run_colour(k),
               label=f"{name} {pair.layers[k]} ({units} units, {int(frame[f'units_{side}'].astype(bool).sum())} "
                     "classes)")
    ax.set_xticks(x, frame["name"], rotation=70, ha="right", fontsize=8)
    ax.set_ylabel(f"units detecting the {comparison.category}\n(% of the layer's units)")
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
        runs = len(comparison.sides)
        for k, (side, name) in enumerate(zip(comparison.sides, comparison.names, strict=True)):
            jitter = (k - (runs - 1) / 2) * 0.12
            ax.scatter(valid[measure][~background], valid[f"units_{side}"][~background] + jitter, s=22, alpha=0.75,
                       color=run_colour(k), label=f"{name}:\n{_rho_text(comparison, layer, side, measure)}")
            if background.any():  # background regions (sky, wall…): hollow markers
                ax.scatter(valid[measure][background], valid[f"units_{side}"][background] + jitter, s=22,
                           facecolors="none", edgecolors=run_colour(k), alpha=0.75)
        if measure != "scene_mi_bits" and not valid.empty:
            ax.set_xscale("log")
        _label_top(ax, valid, measure, comparison.sides)
        ax.set_xlabel(MEASURE_TITLES[measure], fontsize=9)
        ax.set_ylabel(f"units detecting the {comparison.category}", fontsize=9)
        ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
        ax.spines[["top", "right"]].set_visible(False)
        if valid.empty:
            ax.text(0.5, 0.5, "not available", ha="center", transform=ax.transAxes)
    hollow = " (hollow: background regions)" if comparison.foreground is not None else ""
    fig.suptitle(f"What predicts the number of {comparison.category} detectors at {layer}?{hollow}", fontsize=10)
    return fig


def _label_top(ax: object, frame: pd.DataFrame, measure: str, sides: tuple[str, ...], count: int = 6) -> None:
    """Name the classes with the most units, so the scatter can be read."""
    columns = [f"units_{side}" for side in sides]
    top = frame.assign(total=frame[columns].sum(axis=1), most=frame[columns].max(axis=1)).nlargest(count, "total")
    for row in top.itertuples():
        if row.total > 0:
            ax.annotate(row.name, (getattr(row, measure), row.most), fontsize=7,  # type: ignore[attr-defined]
                        xytext=(3, 3), textcoords="offset points", color="#444")
