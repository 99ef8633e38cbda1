"""A dissection that cannot fit on its disk is refused before any work, in one line (issue #29)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_usage_error, run_cli
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden
from unitscope.dissection import disk
from unitscope.dissection.disk import (
    activation_cache_bytes,
    evidence_bytes,
    held_bytes,
    label_cache_bytes,
    layer_files_bytes,
    run_bytes,
)

N = 40


def test_estimate_by_hand() -> None:
    # 10 images, one layer of 2 units at 3 x 4, quantile 0.3: so few that every row is kept whole, 8 bytes of
    # fill and count per unit and 4 per cell: 10 * 2 * (8 + 4 * 12) = 1,120 bytes of cache.
    assert activation_cache_bytes(10, (2, 3, 4), 0.3) == 1120
    files = layer_files_bytes((2, 3, 4), topk=5, categories=3)
    assert files == 3 * (4 * 2 * 5 * 12) + 64 * 2 * 3 + disk.FILES_FLOOR
    labels = label_cache_bytes(10, pixels=16, categories=3, itemsize=2)
    assert labels == 10 * (12 + 3 * (16 * 2 + 4 + 1))
    # per-image counts: per (image, unit) a 12-byte area row and 4 label rows of 16 bytes
    evidence = evidence_bytes(10, 2)
    assert evidence == 10 * 2 * (12 + 4 * 16)
    once = run_bytes({"a": (2, 3, 4)}, 10, 5, 3, labels, engines=1, quantile=0.3)
    assert once == int((1120 + files + evidence + labels) * disk.FILES_MARGIN)
    assert run_bytes({"a": (2, 3, 4)}, 10, 5, 3, labels, engines=4, quantile=0.3) == int(
        4 * (1120 + files + evidence + labels) * disk.FILES_MARGIN)
    assert run_bytes({"a": (2, 3, 4)}, 10, 5, 0, 0, engines=1, quantile=0.3) == int(  # no labels: no counts
        (1120 + layer_files_bytes((2, 3, 4), topk=5, categories=0)) * disk.FILES_MARGIN)


def test_sparse_cache_estimate_by_hand() -> None:
    # 1,000 images of one unit at 10 x 10, quantile 0.01: keep = 1,002 of 100,000 values. Image i has about
    # 1002 / (100 i) of its cells above the bound (all of them for i <= 10), each with 8 neighbours; a cell
    # costs 4 bytes and a 1-byte position, a record 8 bytes.
    harmonic = sum(1 / i for i in range(11, 1001))
    hot = 10 + 10.02 * harmonic
    expected = 1000 * 8 + 9 * hot * 100 * 5
    assert activation_cache_bytes(1000, (1, 10, 10), 0.01) == pytest.approx(expected, abs=1)
    assert expected < 0.65 * 1000 * 4 * 100  # well under the dense float32 cache


def test_a_resumed_run_needs_only_what_is_left(tmp_path: Path) -> None:
    staging = tmp_path / "run.partial"
    staging.mkdir()
    (staging / "activations.f32").write_bytes(b"\1" * 200_000)
    held = held_bytes(staging)
    assert held >= 200_000
    free = shutil.disk_usage(tmp_path).free
    need = free + held // 2  # over the free space, but not once the staged files are counted
    assert disk.disk_problem(staging, need, resumed=False) is not None
    assert disk.disk_problem(staging, need, resumed=True) is None


def _dissect_args(tmp_path: Path, out: Path) -> list[str]:
    data = tmp_path / "broden"
    if not data.exists():
        write_broden(data, PlantedProbe(N), progress=False)
    return ["dissect", "--model", write_model(tmp_path), "--layer", "0", "--data", str(data), "--quantile", "0.3",
            "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--no-report", "--out", str(out)]


def _refused_before_pass_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count pass 1's starts: a refused run must have none."""
    from unitscope.dissection.engine import DissectionEngine

    starts: list[int] = []
    original = DissectionEngine._pass_one

    def counted(self: DissectionEngine):  # type: ignore[no-untyped-def]
        starts.append(1)
        return original(self)

    monkeypatch.setattr(DissectionEngine, "_pass_one", counted)
    return starts


def test_refused_when_free_space_is_short(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Always runs: the free space is reported as 1 kB."""
    out = tmp_path / "run"
    args = _dissect_args(tmp_path, out)
    starts = _refused_before_pass_one(monkeypatch)
    real = shutil.disk_usage

    def tiny(path: object) -> object:
        usage = real(path)  # type: ignore[arg-type]
        return usage._replace(free=1000)

    monkeypatch.setattr(disk.shutil, "disk_usage", tiny)
    result = run_cli(capsys, *args)
    assert_usage_error(result, "for its activation cache and files but only 0.0 MB are free on")
    assert "--n" in result.err and "another --out" in result.err
    assert starts == []
    assert not out.exists() and not (tmp_path / "run.partial").exists()
    monkeypatch.setattr(disk.shutil, "disk_usage", real)
    assert run_cli(capsys, *args).code == 0
    assert starts == [1] and (out / "summary.json").is_file()


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root: mounting is what makes the disk really full)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_refused_when_free_space_is_short covers the check")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        # Lazily: a run that failed mid-write may still hold a file open on it.
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_small_tmpfs_refuses_a_run_that_cannot_fit_and_runs_one_that_can(
        tmp_path: Path, small_tmpfs: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = small_tmpfs / "run"
    args = _dissect_args(tmp_path, out)
    starts = _refused_before_pass_one(monkeypatch)
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (2 * 2**20 - 64 * 2**10))  # leaves about 64 kB free
    result = run_cli(capsys, *args)
    assert_usage_error(result, f"are free on {small_tmpfs}; free space, dissect fewer images (--n) or layers")
    assert starts == []
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]  # no .partial, no cache, no lock
    filler.unlink()
    assert run_cli(capsys, *args).code == 0
    assert starts == [1] and (out / "summary.json").is_file()
