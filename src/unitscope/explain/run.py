"""``explain()``: a finished dissection run + a layer → the best formula per unit, never half-written.

Formulas are chosen on the fit images and scored on the held-out ones (``heldout.py``), and each unit's
held-out gain is tested against the random twin's at the same layer (``null.py``).

Work happens in ``OUT.partial``: the mask pass is checkpointed as ``masks.npz``, then units are
searched in batches, each batch written as ``parts/units-<first>.csv`` once done; then each random
twin's masks (``null_masks-<seed>.npz``, with its thresholds) and its units,
``parts/null-<seed>-<first>.csv``. Running the same command again resumes from there (a different
command refuses, unless ``overwrite``); the finished directory (``formulas.csv``, ``null.csv``,
``summary.json``, ``explain.html``) appears only when all is done. Unit batches are independent, so they
can also be spread over processes.
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
from unitscope.explain.heldout import (
    DEFAULT_HOLDOUT,
    DTYPES,
    ROW_COLUMNS,
    Split,
    check_holdout,
    explain_unit,
    heldout_counts,
    split_masks,
)
from unitscope.explain.masks import LayerMasks, RunInputs, compute_masks
from unitscope.explain.null import (
    FDR,
    check_null,
    gain_interval,
    gain_summary,
    judge_gains,
    null_summary,
    twin_masks,
    verdict,
)
from unitscope.explain.search import BeamSearch, check_ops, check_search_size
from unitscope.explain.source import RunLayer, read_run
from unitscope.staging import lock_output, publish, staging_path

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

GAIN_THRESHOLD: float = 0.02
# formulas.csv. fit_*: on the fit images, where the formula and the single concept (single_label) were chosen
# (fit_iou, fit_single_iou and fit_gain are what the columns iou, single_iou and gain meant before the split,
# when the search and its scores used every image); heldout_*: the same formula and concept on the held-out
# images; p_value, q_value: the held-out gain against the random twin's (empty with --null none); significant:
# q <= FDR and heldout_gain > GAIN_THRESHOLD.
COLUMNS: tuple[str, ...] = ("unit", "formula", "single_label", "fit_iou", "fit_single_iou", "fit_gain",
                            "heldout_iou", "heldout_single_iou", "heldout_gain", "p_value", "q_value", "significant",
                            "length", "candidates", "chain")
NULL_COLUMNS: tuple[str, ...] = ("seed", *ROW_COLUMNS, "threshold")  # null.csv: every unit of every random twin
MAX_TWINS: int = 64
DEFAULT_TWINS: int = 4  # one twin of U units cannot resolve p below 1/(U+1): BH then needs ~20 units above it


@dataclass
class ExplainResult:
    """``formulas`` (one row per unit, columns ``COLUMNS``), the per-layer ``summary`` and ``null`` (the random
    twin's units, columns ``NULL_COLUMNS``; None with ``null="none"``)."""

    formulas: pd.DataFrame
    summary: dict[str, object]
    out: Path
    null: pd.DataFrame | None = None


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


def _masks(run: RunLayer, staging: Path, inputs: RunInputs, batch_size: int,
           progress: bool) -> tuple[LayerMasks, float]:
    path = staging / "masks.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return LayerMasks.from_state(dict(saved)), 0.0
    started = time.perf_counter()
    masks = compute_masks(run, batch_size=batch_size, progress=progress, inputs=inputs)
    _atomic_savez(path, masks.state())
    return masks, time.perf_counter() - started


def _twin(run: RunLayer, masks: LayerMasks, staging: Path, seed: int, inputs: RunInputs, batch_size: int,
          progress: bool) -> tuple[LayerMasks, np.ndarray, float]:
    """A random twin's masks and thresholds, from ``null_masks-<seed>.npz`` if a run was interrupted after them."""
    path = staging / f"null_masks-{seed}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return LayerMasks(masks.bank, saved["bits"], saved["offsets"], masks.images), saved["thresholds"], 0.0
    started = time.perf_counter()
    twin, thresholds = twin_masks(run, masks, seed, batch_size=batch_size, progress=progress, inputs=inputs)
    _atomic_savez(path, {"bits": twin.bits, "offsets": twin.offsets, "thresholds": thresholds})
    return twin, thresholds, time.perf_counter() - started


def _search_batch(search: BeamSearch, split: Split, units: Sequence[int]) -> pd.DataFrame:
    return pd.DataFrame([explain_unit(search, split, int(unit)) for unit in units], columns=list(ROW_COLUMNS))


def _search_units(search: BeamSearch, split: Split, units: Sequence[int], unit_batch: int, staging: Path,
                  prefix: str, progress: bool, desc: str) -> pd.DataFrame:
    """Every unit's row, batch by batch, each batch saved as ``parts/<prefix>-<first>.csv`` (read back on resume)."""
    from unitscope.progress import progress_bar

    parts = []
    with progress_bar(total=len(units), desc=desc, unit="unit", disable=not progress) as bar:
        for group in (list(g) for g in batched(units, unit_batch)):
            path = staging / "parts" / f"{prefix}-{group[0]:06d}.csv"
            if path.is_file():
                part = pd.read_csv(path, keep_default_na=False)
            else:
                part = _search_batch(search, split, group)
                _atomic_csv(part, path)
            parts.append(part)
            bar.update(len(group))
    return _typed(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(ROW_COLUMNS)))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the column types of ``heldout.DTYPES`` (a CSV reads 0.0 back as the integer 0)."""
    return frame.astype({column: DTYPES[column] for column in frame.columns if column in DTYPES})


def summarise(formulas: pd.DataFrame, layer: str, settings: dict[str, object],
              null: dict[str, object] | None = None) -> dict[str, object]:
    """The per-layer summary: held-out IoU and gain, how many units beat the random twin ``null`` (its
    ``null_summary``), the verdict in words, and how the formulas are built."""
    gain = formulas["heldout_gain"].astype(float)
    significant = int(formulas["significant"].astype(bool).sum())
    patterns = {"AND": r" AND (?!NOT )", "OR": r" OR (?!NOT )", "AND NOT": r" AND NOT ", "OR NOT": r" OR NOT "}
    ops = {op: int(formulas["formula"].str.contains(pattern, regex=True).sum()) for op, pattern in patterns.items()}

    def mean(column: str) -> float:
        return float(formulas[column].astype(float).mean()) if len(formulas) else 0.0

    mean_gain = mean("heldout_gain")
    return {
        "layer": layer, **settings,
        "units": len(formulas),
        "gain_threshold": GAIN_THRESHOLD,
        "fdr": FDR,
        "units_significant": significant,
        "units_gaining_heldout": int((gain > GAIN_THRESHOLD).sum()),
        "units_gaining_fit": int((formulas["fit_gain"].astype(float) > GAIN_THRESHOLD).sum()),
        "mean_heldout_iou": mean("heldout_iou"),
        "mean_heldout_single_iou": mean("heldout_single_iou"),
        "mean_heldout_gain": mean_gain,
        "median_heldout_gain": float(gain.median()) if len(formulas) else 0.0,
        "mean_fit_iou": mean("fit_iou"),
        "mean_fit_single_iou": mean("fit_single_iou"),
        "null": null if null is not None else {"kind": "none"},
        "verdict": verdict(gain.to_numpy(), significant, null, GAIN_THRESHOLD),
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
    holdout: float = DEFAULT_HOLDOUT,
    null: str = "random",
    null_seed: int | None = None,
    null_twins: int = DEFAULT_TWINS,
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

    The formula and the best single concept are chosen on the fit images and scored on the ``holdout``
    fraction of the images; with ``null="random"`` each unit's held-out gain is tested against every unit of
    ``null_twins`` random twins (the architecture re-initialised from seeds ``null_seed``, ``null_seed + 1``, …;
    default the run's baseline seed). Returns the formulas table (``COLUMNS``), the summary and the twins' table.
    """
    try:
        ops = check_ops(ops)
    except ValueError as err:
        raise UsageError(f"--ops: {err}") from err
    if length < 1 or beam < 1 or unit_batch < 1 or batch_size < 1:
        raise UsageError(f"--length, --beam and batch sizes must be positive, got {length}, {beam}, "
                         f"{unit_batch}, {batch_size}")
    check_search_size(length, beam)
    check_holdout(holdout)
    check_null(null)
    if not 1 <= null_twins <= MAX_TWINS:
        raise UsageError(f"--null-twins {null_twins} is outside 1-{MAX_TWINS}; each twin costs a mask pass and a "
                         "search of every unit of the layer")
    run = _run_dir(run)
    source = read_run(run, layer)
    chosen = units if isinstance(units, list | tuple) else parse_units(units, source.units)  # type: ignore[arg-type]
    bad = [u for u in chosen if not 0 <= int(u) < source.units]
    if bad:
        raise UsageError(f"unit {bad[0]} is outside the layer's units 0-{source.units - 1}")
    seed = source.baseline_seed if null_seed is None else int(null_seed)
    out_path = Path(out)
    identity = {"run": str(Path(run).resolve()), "layer": source.layer, "length": length, "beam": beam,
                "ops": list(ops), "units": [int(u) for u in chosen], "holdout": float(holdout),
                "null": null, "null_seed": seed if null == "random" else None,
                "null_twins": null_twins if null == "random" else 0,
                # a run dissected again at the same path must not resume from the old run's masks
                "dissection": {"model": source.model, "data": source.data, "upsample": source.upsample,
                               "thresholds_crc": zlib.crc32(source.thresholds.tobytes())}}
    with lock_output(out_path):  # one writer per output (re-entrant: a caller may hold it already)
        if (out_path / "summary.json").is_file() and not overwrite:
            done = json.loads((out_path / "summary.json").read_text())
            if done.get("identity") == identity:
                return _read_back(out_path, done)
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
        seeds = tuple(range(seed, seed + null_twins)) if null == "random" else ()
        plan = _Plan(chosen, length, beam, ops, float(holdout), seeds, device, batch_size, unit_batch, page, progress,
                     trust)
        try:
            result = _explain_in(source, staging, identity, plan)
        except UsageError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging / "result", out_path)
        shutil.rmtree(staging)
        result.out = out_path
        return result


def _read_back(out: Path, summary: dict[str, object]) -> ExplainResult:
    """A finished output's tables (p and q are empty without a null: read as NaN, never as a concept name)."""
    formulas = pd.read_csv(out / "formulas.csv", keep_default_na=False, na_values={"p_value": [""], "q_value": [""]})
    null_path = out / "null.csv"
    null = _typed(pd.read_csv(null_path, keep_default_na=False)) if null_path.is_file() else None
    return ExplainResult(_typed(formulas), summary, out, null)


@dataclass(frozen=True)
class _Plan:
    """What one explain command does, past its checks."""

    units: Sequence[int]
    length: int
    beam: int
    ops: Sequence[str]
    holdout: float
    seeds: tuple[int, ...]  # of the random twins (none: no null)
    device: str
    batch_size: int
    unit_batch: int
    page: bool
    progress: bool
    trust: Trust | None


def _explain_in(source: RunLayer, staging: Path, identity: dict[str, object], plan: _Plan) -> ExplainResult:
    started, cpu = time.perf_counter(), time.process_time()
    inputs = RunInputs(source, plan.device, plan.trust)  # reopened once, only if something below needs them
    masks, mask_seconds = _masks(source, staging, inputs, plan.batch_size, plan.progress)
    split = split_masks(masks, plan.holdout)
    search = BeamSearch(split.fit.bank, plan.length, plan.beam, plan.ops)
    search_started = time.perf_counter()
    rows = _search_units(search, split, plan.units, plan.unit_batch, staging, "units", plan.progress,
                         "explain: search")
    search_seconds = time.perf_counter() - search_started
    null_rows: pd.DataFrame | None = None
    null_info: dict[str, object] | None = None
    null_seconds = interval_seconds = 0.0
    gain_vs_random: dict[str, object] | None = None
    if plan.seeds:
        null_started = time.perf_counter()
        tables = []
        twin_counts: list[np.ndarray] = []
        for seed in plan.seeds:
            twin, thresholds, _ = _twin(source, masks, staging, seed, inputs, plan.batch_size, plan.progress)
            # the twin's masks share the trained split's concept banks, so the search (and its formula cache) too
            twin_split = split_masks(twin, plan.holdout, like=split)
            table = _search_units(search, twin_split, list(range(twin.units)), plan.unit_batch, staging,
                                  f"null-{seed}", plan.progress, f"explain: random twin {seed}")
            twin_counts.append(heldout_counts(twin_split.heldout, table))
            table.insert(0, "seed", seed)
            table["threshold"] = thresholds[table["unit"].to_numpy(dtype=np.int64)]
            tables.append(table)
        null_rows = pd.concat(tables, ignore_index=True)
        null_info = null_summary(null_rows, list(plan.seeds), GAIN_THRESHOLD)
        null_seconds = time.perf_counter() - null_started
        interval_started = time.perf_counter()
        diff = gain_interval(heldout_counts(split.heldout, rows), np.concatenate(twin_counts), seed=plan.seeds[0])
        gain_vs_random = gain_summary(diff, len(plan.seeds))
        interval_seconds = time.perf_counter() - interval_started
    gains = rows["heldout_gain"].to_numpy(dtype=np.float64)
    p, q, significant = judge_gains(gains, None if null_rows is None else
                                    null_rows["heldout_gain"].to_numpy(dtype=np.float64), GAIN_THRESHOLD)
    formulas = rows.assign(p_value=p, q_value=q, significant=significant)[list(COLUMNS)]
    settings = {"length": plan.length, "beam": plan.beam, "ops": list(plan.ops), "holdout": plan.holdout}
    summary = summarise(formulas, source.layer, settings, null_info)
    summary.update({
        "identity": identity, "run": str(source.run_dir), "images": int(masks.bank.num_images),
        "images_fit": int(split.fit.bank.num_images), "images_heldout": int(split.heldout.bank.num_images),
        "concepts": len(masks.bank), "warnings": list(_warnings(source, split)),
        "seconds_masks": round(mask_seconds, 2), "seconds_search": round(search_seconds, 2),
        "seconds_null": round(null_seconds, 2), "seconds_interval": round(interval_seconds, 2),
        "gain_vs_random": gain_vs_random,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
    })
    result_dir = staging / "result"
    if result_dir.exists():
        shutil.rmtree(result_dir)
    result_dir.mkdir()
    formulas.to_csv(result_dir / "formulas.csv", index=False, float_format="%.6g")
    if null_rows is not None:
        null_rows[list(NULL_COLUMNS)].to_csv(result_dir / "null.csv", index=False, float_format="%.6g")
    (result_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if plan.page:
        from unitscope.explain.page import write_explain_page
        from unitscope.explain.pictures import unit_pictures

        pictures = unit_pictures(source, masks, formulas, probe=inputs.probe())
        write_explain_page(formulas, summary, result_dir / "explain.html", pictures)
    return ExplainResult(formulas, summary, result_dir, null_rows)


def _warnings(source: RunLayer, split: Split) -> tuple[str, ...]:
    """The run's warnings about the layer, and one when the held-out images alone are too few for it."""
    from unitscope.dissection.confidence import small_probe_warning

    shape = (source.units, *source.map_size)
    held = small_probe_warning(source.quantile, split.heldout.bank.num_images, shape, source.layer)
    extra = () if held is None else (f"{held} (explain scores formulas on the {split.heldout.bank.num_images} "
                                     "held-out images only)",)
    return (*source.warnings, *extra)
