"""Distribution overhead at equal cores: 1 process x 2 threads against 2 torchrun ranks x 1 thread.

Same work: ``unitscope dissect`` of the SceneWorld scene net conv5 + pool5 over N SceneWorld images
(default 240 at 112 px), with the same batches. Prints, for each configuration, the median over repeats
(interleaved) of the wall time of the whole command (process start-up included), the engine's own time
(``seconds`` in summary.json: both passes and the merges), the CPU seconds of all processes, then the
ratios (2 ranks / 1 process; the goal is overhead <= 10 %, not speed-up) and the bytes each rank sent
in collectives. Checks that both runs wrote byte-identical units.csv, top_images.csv and iou.npy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = ["conv5/units.csv", "conv5/top_images.csv", "conv5/iou.npy", "pool5/units.csv", "pool5/iou.npy"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(ranks: int, n: int, size: int, out: Path, traffic: Path) -> tuple[float, float, float]:
    """(wall seconds, engine seconds, CPU seconds) of one dissection with ``ranks`` processes."""
    threads = 2 if ranks == 1 else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "UNITSCOPE_DIST_TRAFFIC": str(traffic)}
    args = ["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--layer", "pool5", "--images", str(n),
            "--size", str(size), "--batch-size", "16", "--no-report", "--out", str(out)]
    if ranks == 1:
        cmd = [sys.executable, "-m", "unitscope", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "-m", "unitscope", *args]
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    engine = float(json.loads((out / "summary.json").read_text())["seconds"])
    return wall, engine, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=240)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    results: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        traffic = root / "traffic"
        traffic.mkdir()
        for repeat in range(opts.repeats):
            for ranks in (1, 2) if repeat % 2 == 0 else (2, 1):  # interleaved: load drifts on a shared machine
                out = root / f"run-{ranks}-{repeat}"
                results[ranks].append(run_once(ranks, opts.n, opts.size, out, traffic))
        identical = all((root / "run-1-0" / f).read_bytes() == (root / "run-2-0" / f).read_bytes() for f in FILES)
        sent = {p.stem: [int(v) for v in p.read_text().split()] for p in sorted(traffic.glob("rank*.txt"))}
    print(f"dissect sceneworld-scene conv5+pool5, {opts.n} images at {opts.size} px, median of {opts.repeats}")
    med = {r: [statistics.median(x[i] for x in results[r]) for i in range(3)] for r in results}
    for ranks, label in ((1, "1 process x 2 threads"), (2, "2 ranks x 1 thread  ")):
        wall, engine, cpu = med[ranks]
        print(f"{label}: wall {wall:6.2f} s   engine {engine:6.2f} s   cpu {cpu:6.2f} s")
    two_rank_bytes = {k: v for k, v in sent.items() if k in ("rank0", "rank1")}
    for name, values in two_rank_bytes.items():
        print(f"bytes sent by {name} per run: {statistics.median(values):,.0f}")
    print(f"outputs byte-identical: {identical}")
    print(f"engine ratio (2 ranks / 1 process): {med[2][1] / med[1][1]:.3f}")
    print(f"ratio: {med[2][0] / med[1][0]:.3f}  (whole command, start-up included; goal <= 1.10)")


if __name__ == "__main__":
    main()
