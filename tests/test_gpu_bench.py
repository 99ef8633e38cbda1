"""bench/gpu.py stays runnable where no GPU is: its --dry-run takes the same path on CPU at tiny sizes (#29)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"
COLUMNS = ["model", "layer", "device", "amp", "images", "forward images/s", "dissection images/s", "engine s",
           "command s", "forward peak GPU MiB"]


def test_gpu_bench_dry_run_prints_its_table_on_cpu(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--dry-run"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = lines.index("| " + " | ".join(COLUMNS) + " |")
    assert lines[header - 1] == "card: CPU"
    assert lines[header + 1] == "|" + "---|" * len(COLUMNS)
    cells = [c.strip() for c in lines[header + 2].strip("|").split("|")]
    assert cells[:5] == ["resnet18", "layer4", "cpu", "off", "8"]
    assert all(float(c.replace(",", "")) > 0 for c in cells[5:9]), cells  # rates and times were measured
    assert cells[9] == "n/a"  # no GPU memory on CPU
    assert lines[header + 3] == "dry run on CPU: no GPU numbers"
    assert lines[-1] == "dry run on CPU: no GPU numbers"
