"""The label cache: run-length records read back exactly, earlier caches resume, damage is one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unitscope.dissection.label_cache import LabelCache
from unitscope.errors import UsageError
from unitscope.stats.labels import SampleLabels

PIXELS, CATEGORIES = 48, 3


def _samples() -> list[SampleLabels]:
    rng = np.random.default_rng(0)
    blocky = np.repeat(rng.integers(-1, 400, (5, 2, 8)), 6, axis=2).astype(np.int32)  # runs of 6 pixels
    noisy = rng.integers(-1, 400, (2, PIXELS)).astype(np.int32)  # no runs: stored whole
    whole = [np.array([3, 9], np.int64), np.zeros(0, np.int64)]
    samples = [SampleLabels(table, whole[i % 2], rng.random(CATEGORIES) < 0.5) for i, table in enumerate(blocky)]
    return [*samples, SampleLabels(noisy, whole[0], np.ones(CATEGORIES, bool)),
            SampleLabels(np.zeros((0, PIXELS), np.int32), whole[0], np.zeros(CATEGORIES, bool))]


def _same(a: SampleLabels, b: SampleLabels) -> bool:
    return (a.table.dtype == b.table.dtype == np.int32 and np.array_equal(a.table, b.table)
            and np.array_equal(a.whole, b.whole) and np.array_equal(a.annotated, b.annotated))


@pytest.mark.parametrize("old_format", [False, True])
def test_records_read_back_exactly_in_any_order(tmp_path: Path, old_format: bool) -> None:
    samples = _samples()
    cache = LabelCache(tmp_path / "labels.bin", len(samples), PIXELS, CATEGORIES, num_labels=400)
    if old_format:  # a checkpoint written before run-length records: no "format", every table whole
        state = cache.state_dict()
        state.pop("format")
        cache.resume(state)
    cache.write([0, 2, 4, 6], [samples[i] for i in (0, 2, 4, 6)])
    cache.write([1, 3, 5], [samples[i] for i in (1, 3, 5)])
    order = np.array([6, 0, 5, 1, 2, 3, 4])
    assert all(_same(got, samples[i]) for got, i in zip(cache.read(order), order, strict=True))
    whole_size = 4 * (2 if old_format else 3) + 2 * 2 * PIXELS + 4 * 2 + CATEGORIES
    if old_format:
        assert cache.sizes[0] == whole_size and cache.state_dict()["format"] == 1
    else:  # two maps of 8 runs: 16 lengths and 16 labels, about half the table stored whole
        assert cache.sizes[0] == 12 + 16 * (4 + 2) + 4 * 2 + CATEGORIES < whole_size
        assert cache.sizes[5] == whole_size  # the noisy table: runs would be larger
    cache.close()


def test_a_damaged_record_is_one_usage_error(tmp_path: Path) -> None:
    samples = _samples()
    cache = LabelCache(tmp_path / "labels.bin", len(samples), PIXELS, CATEGORIES, num_labels=400)
    cache.write(list(range(len(samples))), samples)
    os.pwrite(os.open(tmp_path / "labels.bin", os.O_WRONLY), np.int32(7).tobytes(), int(cache.offsets[0]) + 12)
    with pytest.raises(UsageError, match="damaged at image 0.*--overwrite"):
        cache.read(np.array([0]))
    assert _same(cache.read(np.array([1]))[0], samples[1])  # the other records are untouched
    state = cache.state_dict()
    state["format"] = 9
    with pytest.raises(UsageError, match="does not fit its checkpoint"):
        cache.resume(state)
