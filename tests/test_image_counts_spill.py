"""Per-image counts kept in files (``ImageCounts(spill=...)``): the same tables and bootstrap as in memory, memory
that does not grow with the probe set, and checkpoints that resume by cutting the files back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unitscope.stats import bootstrap
from unitscope.stats._state import StatsError
from unitscope.stats.bootstrap import ImageCounts, bootstrap_labels, draws_digest, resample_weights

UNITS, LABELS, CATEGORIES = 3, 4, 2


def _tables(images: range, seed: int) -> dict[str, torch.Tensor]:
    """Random but consistent per-image rows for ``images`` (in image order, as pass 2 writes them)."""
    rng = np.random.default_rng(seed)
    inter, active, area, annotated = [], [], [], []
    for image in images:
        for unit in range(UNITS):
            on = int(rng.integers(1, 50))
            active.append((image, unit, on))
            for label in rng.choice(LABELS, size=int(rng.integers(0, 3)), replace=False):
                inter.append((image, unit, int(label), int(rng.integers(0, on + 1))))
        for label in range(LABELS):
            area.append((image, label, int(rng.integers(10, 100))))
        annotated.append((image, *rng.integers(0, 2, CATEGORIES)))
    return {"num_units": UNITS, "num_labels": LABELS,  # type: ignore[dict-item]
            **{name: torch.tensor(np.array(rows, dtype=np.int32).reshape(len(rows), -1))
               for name, rows in (("inter", inter), ("active", active), ("label_area", area),
                                  ("annotated", annotated))}}


def _counts(state: dict[str, torch.Tensor], spill: Path | None) -> ImageCounts:
    counts = ImageCounts(UNITS, LABELS, spill)
    counts.load_state_dict(state)
    return counts


def _outcome(counts: ImageCounts) -> bootstrap.BootstrapOutcome:
    rng = np.random.default_rng(5)
    iou = rng.uniform(0, 0.3, (UNITS, LABELS))
    significant = rng.uniform(size=(UNITS, LABELS)) > 0.3
    category = np.array([0, 0, 1, 1])
    return bootstrap_labels(counts, category, iou.argmax(axis=1), iou, significant, 0.1, resamples=25, seed=3)


def test_spilled_tables_and_bootstrap_equal_the_in_memory_ones_at_any_chunking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _tables(range(0, 60), seed=0)
    memory = _counts(state, None)
    spilled = _counts(state, tmp_path / "spill")
    for name in ("inter", "active", "label_area", "annotated"):
        np.testing.assert_array_equal(spilled.table(name), memory.table(name))
    assert (tmp_path / "spill" / "inter.i32").stat().st_size == state["inter"].numel() * 4  # raw int32 rows
    whole = _outcome(memory)
    monkeypatch.setattr(bootstrap, "CHUNK_ROWS", 7)  # parts of 7 rows, 4 images' weights at a time
    monkeypatch.setattr(bootstrap, "IMAGES_AT_ONCE", 4)
    assert len(list(spilled.parts("inter"))) == -(-len(state["inter"]) // 7)
    for outcome in (_outcome(spilled), _outcome(memory)):
        for field in ("stability", "detectors", "unique", "iou_detectors", "by_category"):
            np.testing.assert_array_equal(getattr(outcome, field), getattr(whole, field))
        assert outcome.draws == whole.draws
    assert whole.detectors.std() > 0  # the resamples do differ


def test_resample_weights_are_the_whole_matrix_drawn_one_resample_at_a_time() -> None:
    weights, digest = resample_weights(n=11, resamples=6, seed=4)
    draws = np.random.default_rng(4).integers(0, 11, size=(6, 11))  # what the bootstrap drew before #29
    np.testing.assert_array_equal(weights, np.stack([np.bincount(d, minlength=11) for d in draws]))
    assert digest == draws_digest(draws) and weights.dtype == np.uint16


def test_a_checkpoint_records_row_counts_and_resuming_cuts_the_files_back(tmp_path: Path) -> None:
    first, second = _tables(range(0, 10), seed=1), _tables(range(10, 25), seed=2)
    spill = tmp_path / "spill"
    counts = _counts(first, spill)
    saved = counts.state_dict()
    assert saved["inter_rows"] == len(first["inter"]) and "inter" not in saved  # a small checkpoint
    assert torch.equal(saved["annotated"], first["annotated"])  # type: ignore[arg-type]
    counts.merge(_counts(second, None))  # rows written after the checkpoint (then the process dies)
    counts.close()
    assert (spill / "inter.i32").stat().st_size > len(first["inter"]) * 16
    resumed = ImageCounts(UNITS, LABELS, spill)
    resumed.load_state_dict(saved)
    np.testing.assert_array_equal(resumed.table("inter"), first["inter"].numpy())  # only the recorded rows
    resumed.merge(_counts(second, None))  # the batches counted again after resuming
    whole = _counts(first, None)
    whole.merge(_counts(second, None))
    for name in ("inter", "active", "label_area", "annotated"):
        np.testing.assert_array_equal(resumed.table(name), whole.table(name))
    assert (spill / "inter.i32").stat().st_size == len(whole.table("inter")) * 16  # cut back, then appended


def test_damaged_or_removed_spill_files_are_named_in_one_line(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    counts = _counts(_tables(range(0, 8), seed=3), spill)
    saved = counts.state_dict()
    counts.close()
    (spill / "active.i32").write_bytes(b"\0" * 12)  # one row left of many
    with pytest.raises(StatsError, match="active.i32 holds 1 rows where the checkpoint recorded"):
        ImageCounts(UNITS, LABELS, spill).load_state_dict(saved)
    (spill / "inter.i32").unlink()
    with pytest.raises(StatsError, match="inter.i32 is gone"):
        counts.table("inter")
    with pytest.raises(StatsError, match="spill file this statistic was not given"):
        ImageCounts(UNITS, LABELS).load_state_dict(saved)  # a spilled checkpoint needs its files
