"""The emergence study's charts, drawn from its data alone (matplotlib ``Figure``, no pyplot state).

- ``claim.png``: per architecture at the last stage, object detectors of the scene net, the object net and
  their random twin, each with its 95 % interval, and (hatched) those surviving the colour control.
- ``netdissect.png``: Network Dissection's comparison of networks: unique detected concepts per category at
  the last stage, one bar group per network (random twins included).
- ``depth.png``: one panel per category: detectors at each relative depth, one line per network (scene
  solid, object dashed, random twin dotted), with intervals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unitscope.report.figures import category_colors
from unitscope.study.emergence_metrics import arch_name

ARCH_COLORS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d68910", "#5d6d7e")
CLAIM_CHART, NETDISSECT_CHART, DEPTH_CHART = "claim.png", "netdissect.png", "depth.png"


def _name(arch: str) -> str:
    return arch_name(arch)


def _errors(value: float, interval: list[float]) -> tuple[float, float]:
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def _last(network: dict[str, Any]) -> dict[str, Any]:
    picked = max(network["layers"], key=lambda p: p["target"])
    return dict(network["metrics"][picked["layer"]], layer=picked["layer"])


def claim_chart(data: dict[str, Any], path: Path) -> Path:
    """Object detectors at the last stage: scene, object, random twin per architecture (with survivors)."""
    claims = [c for c in data["claims"] if c["target"] == max(x["target"] for x in data["claims"])]
    fig = Figure(figsize=(max(4.5, 2.2 * len(claims) + 1.5), 3.6))
    ax = fig.add_subplot()
    width = 0.26
    bars = (("scene", "scene net", "#1f5fa8"), ("object", "object net", "#d68910"), ("twin", "random twin", "#9aa3ad"))
    for i, claim in enumerate(claims):
        for j, (key, label, colour) in enumerate(bars):
            x = i + (j - 1) * width
            value = claim[key] or 0
            interval = claim.get(f"{key}_ci") or [math.nan, math.nan]
            low, high = _errors(value, interval)
            ax.bar(x, value, width, color=colour, label=label if i == 0 else None,
                   yerr=[[low], [high]] if low or high else None, capsize=3)
            kept = claim.get(f"{key}_survive")
            if kept is not None:
                ax.bar(x, kept, width * 0.6, color="white", edgecolor="black", hatch="///", linewidth=0.6,
                       label="surviving the colour control" if i == 0 and j == 0 else None)
    ax.set_xticks(range(len(claims)))
    ax.set_xticklabels([f"{_name(c['arch'])} {c['scene_layer']}\nscene − object {c['difference'][0]:+.0f}"
                        for c in claims], fontsize=8)
    ax.set_ylabel("object detectors")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Object detectors at the last stage (95% intervals)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def netdissect_chart(data: dict[str, Any], path: Path) -> Path:
    """Unique detected concepts per category at the last stage, one bar group per network and twin."""
    groups: list[tuple[str, dict[str, int]]] = []
    categories: list[str] = []
    for network in data["networks"]:
        m = _last(network)
        cats = [c for c in m["categories"] if c != "total"]
        categories = categories or cats
        groups.append((f"{_name(network['arch'])} {network['task']}\n{m['layer']}",
                       {c: m["categories"][c]["unique"] for c in cats}))
        if network["task"] == "scene":  # one twin per architecture (the object net reuses it)
            groups.append((f"{_name(network['arch'])} random\n{m['layer']}",
                           {c: m["categories"][c]["twin_unique"] or 0 for c in cats}))
    colours = category_colors(categories)
    fig = Figure(figsize=(max(5.0, 1.15 * len(groups) + 1.5), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / max(len(categories), 1)
    for k, category in enumerate(categories):
        xs = [i - 0.4 + (k + 0.5) * width for i in range(len(groups))]
        ax.bar(xs, [g[1].get(category, 0) for g in groups], width, color=colours[category], label=category)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize=7)
    ax.set_ylabel("unique detected concepts")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Unique detectors per category at the last stage (Network Dissection's comparison)", fontsize=9)
    ax.legend(fontsize=7, frameon=False, ncol=min(len(categories), 6))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def depth_chart(data: dict[str, Any], path: Path) -> Path:
    """Detectors per category against relative depth, one line per network, twins dotted."""
    first = data["networks"][0]
    categories = [c for c in _last(first)["categories"] if c != "total"]
    columns = min(3, len(categories))
    rows = math.ceil(len(categories) / columns)
    fig = Figure(figsize=(4.0 * columns, 2.9 * rows))
    archs = list(dict.fromkeys(n["arch"] for n in data["networks"]))
    for index, category in enumerate(categories):
        ax = fig.add_subplot(rows, columns, index + 1)
        for network in data["networks"]:
            colour = ARCH_COLORS[archs.index(network["arch"]) % len(ARCH_COLORS)]
            layers = sorted(network["layers"], key=lambda p: p["target"])
            xs = [100 * p["depth"] for p in layers]
            cells = [network["metrics"][p["layer"]]["categories"].get(category, {}) for p in layers]
            ys = [c.get("detectors", 0) for c in cells]
            err = [_errors(y, c.get("detectors_ci", [math.nan, math.nan])) for y, c in zip(ys, cells, strict=True)]
            ax.errorbar(xs, ys, yerr=[[e[0] for e in err], [e[1] for e in err]], color=colour, marker="o",
                        markersize=3, linestyle="-" if network["task"] == "scene" else "--", capsize=2,
                        linewidth=1.2, label=f"{_name(network['arch'])} {network['task']}")
            if network["task"] == "scene":
                ax.plot(xs, [c.get("twin_detectors") or 0 for c in cells], color=colour, linestyle=":",
                        linewidth=1, label=f"{_name(network['arch'])} random")
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("relative depth (%)", fontsize=8)
        ax.set_ylabel("detectors", fontsize=8)
        ax.set_xlim(0, 105)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if index == 0:
            ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def draw_charts(data: dict[str, Any], folder: Path) -> dict[str, str]:
    """Every chart of the study into ``folder``; their file names by role."""
    made = {"netdissect": netdissect_chart(data, folder / NETDISSECT_CHART).name,
            "depth": depth_chart(data, folder / DEPTH_CHART).name}
    if data["claims"]:
        made["claim"] = claim_chart(data, folder / CLAIM_CHART).name
    return made
