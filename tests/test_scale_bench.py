"""bench/scale.py stays runnable: at tiny sizes with the built-in net it measures both commands at every size,
fits the per-image lines and ends with ``marginal: X.XX`` (#29)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from unitscope.data import open_probe
from unitscope.data.broden_export import write_broden

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scale.py"


@pytest.mark.slow  # five process starts: ~16 CPU s
def test_scale_bench_dry_run_prints_rows_fits_and_the_marginal_line(tmp_path: Path) -> None:
    # The export the bench would make with `unitscope world`, made here (one process start fewer); it is reused.
    write_broden(tmp_path / "broden-4-32", open_probe("sceneworld", n=4, size=32), progress=False)
    done = subprocess.run([sys.executable, str(BENCH), "--sizes", "2,4", "--models", "sceneworld-scene:conv5",
                           "--image-size", "32", "--work", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"marginal: -?\d+\.\d\d", lines[-1]), lines[-1]
    rows = [line.split() for line in lines if line.startswith("sceneworld-scene conv5 ") and len(line.split()) == 9]
    assert [(r[2], r[3]) for r in rows] == [("bare", "2"), ("bare", "4"), ("dissect", "2"), ("dissect", "4")]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 and float(r[6]) > 0 for r in rows)  # wall, CPU, RSS measured
    assert all(float(r[8]) > 0 for r in rows[2:]), done.stdout[-3000:]  # the run's folders took disk while it ran
    assert sum("per image 2->4" in line and "intercept: dissect" in line for line in lines) == 2  # wall and CPU
    # The run's own phase clocks (summary.json) split the further image's CPU: both passes and the rest.
    split = [line for line in lines if "CPU ms per further image 2->4 by phase:" in line]
    assert len(split) == 1 and all(f"{name} " in split[0] for name in ("pass 1", "pass 2", "tables", "rest")), split
    assert (tmp_path / "broden-4-32" / "index.csv").is_file()
    assert len((tmp_path / "broden-2-32" / "index.csv").read_text().splitlines()) == 3  # header + 2 rows


SHARE = BENCH.with_name("statistics_share.py")


@pytest.mark.slow  # one process: ~10 CPU s
def test_statistics_share_bench_times_every_step_and_prints_the_share(tmp_path: Path) -> None:
    write_broden(tmp_path / "broden-64-32", open_probe("sceneworld", n=64, size=32), progress=False)
    done = subprocess.run([sys.executable, str(SHARE), "--work", str(tmp_path), "--images", "64", "--image-size",
                           "32", "--model", "sceneworld-scene", "--layer", "conv5", "--batches", "2", "--rounds", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    share = re.fullmatch(r"statistics share: (\d+\.\d\d)", lines[-1])
    assert share and float(share[1]) > 1.0, lines[-1]
    steps = [line.split(None, 1) for line in lines if re.match(r"\s+\d+\.\d{3}\s+pass [12]: ", line)]
    assert len(steps) == 14 and all(float(ms) >= 0 for ms, _ in steps), done.stdout
    assert "decode" in lines[1] and "forward" in lines[1] and "statistics" in lines[1]
