"""``explain()``: a finished dissection run + a layer → the best formula per unit, never half-written.

Work happens in ``OUT.partial``: the mask pass is checkpointed as ``masks.npz``, then units are
searched in batches, each batch written as ``parts/units-<first>.csv`` once done. Running the same
command again resumes from there (a different command refuses, unless ``overwrite``); the finished
directory (``formulas.csv``, ``summary.json``, ``explain.html``) appears only when all is done.
Unit batches are independent, so they can also be spread over processes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from unitscope.batching import batched
from unitscope.errors import UsageError
from unitscope.explain.bank import UnitMask
from unitscope.explain.formulas import chain
from unitscope.explain.masks import LayerMasks, compute_masks
from unitscope.explain.search import BeamSearch, check_ops, check_search_size
from unitscope.explain.source import RunLayer, read_run
from unitscope.staging import lock_output, publish, staging_path

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

GAIN_THRESHOLD: float = 0.02
COLUMNS: tuple[str, ...] = ("unit", "formula", "iou", "single_label", "single_iou", "gain", "length", "candidates",
                            "chain")


@dataclass
class ExplainResult:
    """``formulas`` (one row per unit, columns ``COLUMNS``) and the per-layer ``summary``."""

    formulas: pd.DataFrame
    summary: dict[str, object]
    out: Path


def parse_units(text: str | None, count: int) -> list[int]:
    """``0,3,5-9`` → units; None → every unit."""
    if text is None or text.strip() == "":
        return list(range(count))
    units: set[int] = set()
    for part in text.split(","):
        try:
            first, _, last = part.strip().partition("-")
            lo, hi = int(first), int(last or first)
        except ValueError as err:
            raise UsageError(f"--units takes numbers and ranges like 0,3,5-9, got {text!r}") from err
        if lo > hi or lo < 0 or hi >= count:
            raise UsageError(f"--units {part.strip()} is outside the layer's units 0-{count - 1}")
        units.update(range(lo, hi + 1))
    return sorted(units)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, path)


def _masks(run: RunLayer, staging: Path, device: str, batch_size: int, progress: bool,
           trust: Trust | None = None) -> tuple[LayerMasks, float]:
    path = staging / "masks.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return LayerMasks.from_state(dict(saved)), 0.0
    started = time.perf_counter()
    masks = compute_masks(run, device, batch_size, progress, trust)
    _atomic_savez(path, masks.state())
    return masks, time.perf_counter() - started


def _search_batch(search: BeamSearch, masks: LayerMasks, units: Sequence[int]) -> pd.DataFrame:
    rows = []
    for unit in units:
        found = search.explain(UnitMask.from_bits(masks.unit_bits(unit), masks.bank))
        rows.append({"unit": unit, "formula": str(found.formula), "iou": found.iou,
                     "single_label": str(found.single), "single_iou": found.single_iou, "gain": found.gain,
                     "length": len(found.formula.leaves), "candidates": found.candidates,
                     "chain": chain(found.formula)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def summarise(formulas: pd.DataFrame, layer: str, settings: dict[str, object]) -> dict[str, object]:
    """The per-layer summary: how many units gain more than ``GAIN_THRESHOLD`` IoU from composition."""
    gain = formulas["gain"]
    patterns = {"AND": r" AND (?!NOT )", "OR": r" OR (?!NOT )", "AND NOT": r" AND NOT ", "OR NOT": r" OR NOT "}
    ops = {op: int(formulas["formula"].str.contains(pattern, regex=True).sum()) for op, pattern in patterns.items()}
    return {
        "layer": layer, **settings,
        "units": len(formulas),
        "gain_threshold": GAIN_THRESHOLD,
        "units_gaining": int((gain > GAIN_THRESHOLD).sum()),
        "mean_iou": float(formulas["iou"].mean()) if len(formulas) else 0.0,
        "mean_single_iou": float(formulas["single_iou"].mean()) if len(formulas) else 0.0,
        "median_gain": float(gain.median()) if len(formulas) else 0.0,
        "formulas_using": ops,
        "lengths": {str(k): int(v) for k, v in formulas["length"].value_counts().sort_index().items()},
        "candidates_scored": int(formulas["candidates"].sum()),
    }


def _run_dir(run: object) -> str | Path:
    """A run directory from a path, a ``DissectionResult`` or the API's ``Dissection`` (written to disk)."""
    result = getattr(run, "result", run)
    directory = getattr(result, "run_dir", result)
    if not isinstance(directory, str | Path):
        raise UsageError("explain needs a dissection run written to disk; pass its directory (dissect --out RUN)")
    return directory


def explain(
    run: str | Path | object,
    layer: str,
    out: str | Path,
    *,
    length: int = 3,
    beam: int = 5,
    ops: Sequence[str] = ("and", "or", "not"),
    units: Sequence[int] | str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    unit_batch: int = 16,
    overwrite: bool = False,
    page: bool = True,
    progress: bool = True,
    trust: Trust | None = None,
) -> ExplainResult:
    """Label each unit of ``layer`` in the dissection ``run`` with its best formula of up to ``length``
    concepts (Mu & Andreas's beam search over IoU, Broden's annotated-category rule), written to ``out``.

    Returns the formulas table (unit, formula, iou, single_label, single_iou, gain, …) and the summary.
    """
    try:
        ops = check_ops(ops)
    except ValueError as err:
        raise UsageError(f"--ops: {err}") from err
    if length < 1 or beam < 1 or unit_batch < 1 or batch_size < 1:
        raise UsageError(f"--length, --beam and batch sizes must be positive, got {length}, {beam}, "
                         f"{unit_batch}, {batch_size}")
    check_search_size(length, beam)
    run = _run_dir(run)
    source = read_run(run, layer)
    chosen = units if isinstance(units, list | tuple) else parse_units(units, source.units)  # type: ignore[arg-type]
    bad = [u for u in chosen if not 0 <= int(u) < source.units]
    if bad:
        raise UsageError(f"unit {bad[0]} is outside the layer's units 0-{source.units - 1}")
    out_path = Path(out)
    identity = {"run": str(Path(run).resolve()), "layer": source.layer, "length": length, "beam": beam,
                "ops": list(ops), "units": [int(u) for u in chosen],
                # a run dissected again at the same path must not resume from the old run's masks
                "dissection": {"model": source.model, "data": source.data, "upsample": source.upsample,
                               "thresholds_crc": zlib.crc32(source.thresholds.tobytes())}}
    with lock_output(out_path):  # one writer per output (re-entrant: a caller may hold it already)
        if (out_path / "summary.json").is_file() and not overwrite:
            done = json.loads((out_path / "summary.json").read_text())
            if done.get("identity") == identity:
                return ExplainResult(pd.read_csv(out_path / "formulas.csv", keep_default_na=False), done, out_path)
            raise UsageError(f"{out_path} holds other explanations; choose another --out or pass --overwrite")
        if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())) and not overwrite:
            raise UsageError(f"{out_path} exists and is not empty; choose another --out or pass --overwrite")
        staging = staging_path(out_path)
        config = staging / "config.json"
        if staging.exists() and (not config.is_file() or json.loads(config.read_text()) != identity):
            if not overwrite:
                raise UsageError(f"{staging} holds an interrupted explain of a different command; rerun that "
                                 "command, or pass --overwrite to discard it")
            shutil.rmtree(staging)
        (staging / "parts").mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(identity, indent=2))
        try:
            result = _explain_in(source, staging, identity, chosen, length, beam, ops, device, batch_size,
                                 unit_batch, page, progress, trust)
        except UsageError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging / "result", out_path)
        shutil.rmtree(staging)
        result.out = out_path
        return result


def _explain_in(source: RunLayer, staging: Path, identity: dict[str, object], chosen: Sequence[int], length: int,
                beam: int, ops: Sequence[str], device: str, batch_size: int, unit_batch: int, page: bool,
                progress: bool, trust: Trust | None = None) -> ExplainResult:
    from unitscope.progress import progress_bar

    started, cpu = time.perf_counter(), time.process_time()
    masks, mask_seconds = _masks(source, staging, device, batch_size, progress, trust)
    search = BeamSearch(masks.bank, length, beam, ops)
    parts = []
    batches = [list(group) for group in batched(chosen, unit_batch)]
    search_started = time.perf_counter()
    with progress_bar(total=len(chosen), desc="explain: search", unit="unit", disable=not progress) as bar:
        for group in batches:
            path = staging / "parts" / f"units-{group[0]:06d}.csv"
            if path.is_file():
                part = pd.read_csv(path, keep_default_na=False)
            else:
                part = _search_batch(search, masks, group)
                _atomic_csv(part, path)
            parts.append(part)
            bar.update(len(group))
    formulas = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
    settings = {"length": length, "beam": beam, "ops": list(ops)}
    summary = summarise(formulas, source.layer, settings)
    summary.update({
        "identity": identity, "run": str(source.run_dir), "images": int(masks.bank.num_images),
        "concepts": len(masks.bank), "seconds_masks": round(mask_seconds, 2),
        "seconds_search": round(time.perf_counter() - search_started, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
    })
    result_dir = staging / "result"
    if result_dir.exists():
        shutil.rmtree(result_dir)
    result_dir.mkdir()
    formulas.to_csv(result_dir / "formulas.csv", index=False, float_format="%.6g")
    (result_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if page:
        from unitscope.explain.page import write_explain_page
        from unitscope.explain.pictures import unit_pictures

        pictures = unit_pictures(source, masks, formulas)
        write_explain_page(formulas, summary, result_dir / "explain.html", pictures)
    return ExplainResult(formulas, summary, result_dir)
