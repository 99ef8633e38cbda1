"""Writing an ``rf`` run: rf.json, rf.csv, rf.png and per-layer averaged maps, all or nothing.

Files are staged in ``RUN.partial`` and the directory is renamed to ``RUN`` once complete, so ``RUN``
either does not exist or is whole.

```
RUN/rf.json              per layer: theoretical size/stride/start, empirical mean/std, per-unit sizes
RUN/rf.csv               one row per layer (the same numbers as a table)
RUN/rf.png               theoretical vs empirical size by layer
RUN/<layer>/unit_<u>.png each unit's averaged re-centred discrepancy map (brighter = larger change)
RUN/<layer>/maps.npz     the maps as arrays (``units``, ``maps`` [U, S, S])
```
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from unitscope.rf.empirical import LayerFields
from unitscope.staging import publish, staging_path

MIN_PNG_SIDE: int = 128


def layer_record(fields: LayerFields) -> dict[str, Any]:
    """The rf.json entry of one layer."""
    return {
        "path": fields.layer,
        "theoretical": fields.theoretical.to_dict() if fields.theoretical_defined else None,
        "empirical": fields.summary(),
        "units": {str(u.unit): u.size for u in fields.units},
        "top_images": {str(u.unit): u.images for u in fields.units},
        "engine": fields.engine,
        "input_size": list(fields.input_size),
    }


def summary_table(layers: Mapping[str, LayerFields]) -> pd.DataFrame:
    """One row per layer: theoretical geometry beside the empirical mean and standard deviation."""
    rows = []
    for name, fields in layers.items():
        summary = fields.summary()
        theory = fields.theoretical if fields.theoretical_defined else None
        rows.append({
            "layer": name, "path": fields.layer, "theoretical_size": None if theory is None else theory.size,
            "stride": None if theory is None else theory.stride, "start": None if theory is None else theory.start,
            "empirical_mean": summary["mean"], "empirical_std": summary["std"],
            "units": summary["units"], "dead_units": summary["dead_units"],
        })
    return pd.DataFrame(rows)


def map_image(values: np.ndarray) -> Image.Image:
    """A map as an RGB image (inferno colours, scaled to its own maximum, enlarged without smoothing)."""
    peak = float(values.max())
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    rgb = (colormaps["inferno"](scaled)[..., :3] * 255).astype(np.uint8)
    image = Image.fromarray(rgb)
    factor = max(1, -(-MIN_PNG_SIDE // max(values.shape)))
    return image.resize((values.shape[1] * factor, values.shape[0] * factor), Image.Resampling.NEAREST)


def size_plot(table: pd.DataFrame) -> Figure:
    """Theoretical size and empirical mean ± std per layer, in input pixels."""
    figure = Figure(figsize=(max(4.0, 0.9 * len(table) + 2), 3.6), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(table))
    ax.plot(x, table["theoretical_size"].astype(float), "o-", color="#3b6fb6", label="theoretical")
    mean = table["empirical_mean"].astype(float)
    ax.errorbar(x, mean, yerr=table["empirical_std"].astype(float), fmt="s-", color="#c8463d", capsize=3,
                label="empirical (mean ± std)")
    ax.set_xticks(x, table["layer"])
    ax.set_ylabel("receptive field size (pixels)")
    ax.set_title("Theoretical vs empirical receptive fields", loc="left", fontsize=11)
    ax.legend(frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return figure


def write_run(out: Path, layers: Mapping[str, LayerFields], info: Mapping[str, Any]) -> Path:
    """Write the run to ``out`` through a staging directory renamed into place at the end."""
    stage = staging_path(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        table = summary_table(layers)
        record = {**info, "layers": {name: layer_record(fields) for name, fields in layers.items()}}
        (stage / "rf.json").write_text(json.dumps(record, indent=2))
        table.to_csv(stage / "rf.csv", index=False)
        size_plot(table).savefig(stage / "rf.png", dpi=120)
        for fields in layers.values():
            folder = stage / fields.layer
            folder.mkdir()
            maps = np.stack([u.mean_map.float().numpy() for u in fields.units]) if fields.units else np.zeros((0,))
            np.savez_compressed(folder / "maps.npz", units=np.array([u.unit for u in fields.units]), maps=maps)
            for unit, values in zip(fields.units, maps, strict=True):
                map_image(values).save(folder / f"unit_{unit.unit}.png")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return publish(stage, out)
