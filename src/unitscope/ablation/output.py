"""What ``ablate`` writes: ``ablation.csv``, a concept × class heat map, and a self-contained report page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unitscope.ablation.sweep import ALL, AblationResult
from unitscope.report.html import figure_data_uri, render_template, write_html
from unitscope.staging import publish, staging_path


def heatmap(result: AblationResult, kind: str = "remove") -> Figure:
    """Two panels: accuracy drop per concept × class, and the drop minus the random-unit mean drop."""
    rows = result.table[(result.table["kind"] == kind) & (result.table["scene"] != ALL)]
    concepts = list(dict.fromkeys(rows["concept"]))
    classes = [c for c in result.class_names if c in set(rows["scene"])]
    fig = Figure(figsize=(2.2 + 0.55 * len(classes) * 2, 1.4 + 0.32 * len(concepts)), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    scale = max(0.25, float(rows[["drop", "excess_drop"]].abs().to_numpy().max(initial=0.0)))
    for ax, column, title in ((axes[0], "drop", "accuracy drop"), (axes[1], "excess_drop", "drop − random units")):
        grid = rows.pivot_table(index="concept", columns="scene", values=column).reindex(index=concepts,
                                                                                      columns=classes)
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto")
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
        sizes = rows.drop_duplicates("concept").set_index("concept")["n_units"]
        ax.set_yticks(range(len(concepts)), [f"{c} ({sizes[c]})" for c in concepts], fontsize=7)
        ax.set_title(f"{title} ({kind} detectors)", fontsize=8)
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v) and abs(v) >= 0.05:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 * scale else "black")
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def write_ablation(result: AblationResult, out: Path, model: str, top: int = 10) -> Path:
    """Stage ``out``: ``ablation.csv``, ``ablation.json``, ``heatmap_{remove,keep}.png``, ``report.html``."""
    stage = staging_path(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        result.table.to_csv(stage / "ablation.csv", index=False, float_format="%.6g")
        figures = {kind: heatmap(result, kind) for kind in ("remove", "keep")}
        for kind, fig in figures.items():
            fig.savefig(stage / f"heatmap_{kind}.png", dpi=130, facecolor="white")
        info = {"model": model, "layer": result.layer, "mode": result.mode, **result.info,
                "clean_accuracy": result.clean_accuracy}
        (stage / "ablation.json").write_text(json.dumps(info, indent=2, default=str))
        shown = result.top_drops(top)
        page = render_template(
            "ablation.html", model=model, layer=result.layer, mode=result.mode, info=result.info,
            clean=result.clean_accuracy, top=_rows(shown), weak=weak_rows(shown),
            keep=_rows(result.table[(result.table["kind"] == "keep") & (result.table["scene"] == ALL)]),
            heatmaps={k: figure_data_uri(f) for k, f in figures.items()})
        write_html(page, stage / "report.html")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return publish(stage, out)


def weak_rows(frame: pd.DataFrame) -> list[str]:
    """The rows whose drop does not beat random units', in words (concept → class, excess and its interval)."""
    return [f"{row.concept} → {row.scene}: excess {row.excess_drop:+.3f} [{row.excess_low:+.3f}, "
            f"{row.excess_high:+.3f}]" for row in frame.itertuples() if not row.beats_random]


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
