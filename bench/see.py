"""``see`` against running ``segment`` and ``cam`` separately on the same images, and against a bare forward
pass with the same hooks (issue #28: goals ≥ 3× faster than the separate commands, ≤ 1.5× the bare pass).

1. Process start to finish (wall and CPU seconds of the child processes): ``unitscope see`` vs ``unitscope
   segment`` + ``unitscope cam`` (both ``--baseline none``, pictures for every image, as see draws a page per
   image) on the same N fresh SceneWorld images, twice: **cold** (a copy of the run without cached concept
   vectors: see fits them, and so does segment, each on its own copy) and **warm** (both read the vectors
   see cached in the run: ``RUN/vectors/``). cam fits nothing.
2. In one process, after opening: see's pass per batch (forward, Grad-CAM's backward through the head, the
   concept scores, regions, boxes and units) vs a bare forward pass with the same hooks (no grad), CPU
   seconds (``time.process_time``, one torch thread) and wall, best of 3.

Run: .venv/bin/python bench/see.py --run RUN [--n 64] [--fit-n 400]   (RUN: a dissection of sceneworld-scene,
e.g. ``unitscope dissect --model sceneworld-scene --layer conv5 --layer pool5 --out RUN``)
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m unitscope ARGS`` from process start to exit."""
    cpu, start = child_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "unitscope", *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, child_cpu() - cpu


def copy_run(run: str, where: Path) -> str:
    """The run without its cached vectors (a cold start)."""
    shutil.copytree(run, where, ignore=shutil.ignore_patterns("vectors"))
    return str(where)


def processes(run: str, n: int, fit_n: int, folder: Path, tag: str, see_run: str,
              segment_run: str) -> dict[str, tuple[float, float]]:
    data = ["--data", "sceneworld", "--n", str(n)]
    see = timed(["see", "--run", see_run, *data, "--fit-n", str(fit_n), "--out", str(folder / f"see-{tag}")])
    segment = timed(["segment", "--model", "sceneworld-scene", "--run", segment_run, *data, "--fit-n", str(fit_n),
                     "--baseline", "none", "--pictures", str(n), "--out", str(folder / f"segment-{tag}")])
    cam = timed(["cam", "--model", "sceneworld-scene", *data, "--baseline", "none", "--pictures", str(n),
                 "--out", str(folder / f"cam-{tag}")])
    return {"see": see, "segment": segment, "cam": cam}


def in_process(run: str, n: int, fit_n: int, batch: int, repeats: int = 3) -> dict[str, tuple[float, float]]:
    """CPU and wall seconds per image of see's pass and of a bare forward pass with the same hooks (best of
    ``repeats``)."""
    import torch

    torch.set_num_threads(1)
    from unitscope.capture import LayerRecorder
    from unitscope.data import open_probe
    from unitscope.defaults import FRESH_SEED
    from unitscope.see import SeeOptions, SeeSystem

    system = SeeSystem.open(run, options=SeeOptions(fit_n=fit_n, batch_size=batch))
    probe = open_probe("sceneworld", n=n, seed=FRESH_SEED, size=system.image_size[0])
    images = [probe[i].image for i in range(n)]
    names = [str(i) for i in range(n)]
    module = system.model.module
    paths = [*system.features.paths, system.cam.layer]

    def see() -> None:
        for start in range(0, n, batch):
            system.see_arrays(images[start:start + batch], names[start:start + batch])

    def bare() -> None:
        for start in range(0, n, batch):
            x = system.model.preprocess.batch(images[start:start + batch], system.model.device)
            with torch.no_grad(), ExitStack() as stack:
                for path in paths:
                    stack.enter_context(LayerRecorder(module, path))
                module(x)

    def best(work: object) -> tuple[float, float]:
        cpu, wall = [], []
        for _ in range(repeats):
            start, clock = time.process_time(), time.perf_counter()
            work()  # type: ignore[operator]
            cpu.append(time.process_time() - start)
            wall.append(time.perf_counter() - clock)
        return min(cpu) / n, min(wall) / n

    see()  # warm-up
    bare()
    return {"see": best(see), "bare": best(bare)}


def report(times: dict[str, tuple[float, float]], n: int, title: str) -> None:
    separate = (times["segment"][0] + times["cam"][0], times["segment"][1] + times["cam"][1])
    print(f"process start to finish, {n} images, {title}:")
    for name, (wall, cpu) in [*times.items(), ("segment + cam", separate)]:
        print(f"  {name:14} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {n / wall:6.2f} images/s")
    print(f"  see is {separate[0] / times['see'][0]:.2f}x faster than segment + cam (wall; "
          f"{separate[1] / times['see'][1]:.2f}x in CPU seconds); goal >= 3x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--fit-n", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        see_run, segment_run = copy_run(args.run, folder / "run-see"), copy_run(args.run, folder / "run-segment")
        cold = processes(args.run, args.n, args.fit_n, folder, "cold", see_run, segment_run)
        warm = processes(args.run, args.n, args.fit_n, folder, "warm", see_run, see_run)  # see's cache, both
        report(cold, args.n, f"cold (each fits its concept vectors on {args.fit_n} images)")
        report(warm, args.n, "warm (both read the vectors cached in the run)")
        pass_times = in_process(see_run, args.n, args.fit_n, args.batch_size)
    (see_cpu, see_wall), (bare_cpu, bare_wall) = pass_times["see"], pass_times["bare"]
    print(f"in one process (after opening), batches of {args.batch_size}, one torch thread:")
    print(f"  see's pass     {1 / see_cpu:7.1f} images/CPU-s  {1 / see_wall:7.1f} images/s")
    print(f"  bare forward   {1 / bare_cpu:7.1f} images/CPU-s  {1 / bare_wall:7.1f} images/s (same hooks, no grad)")
    print(f"  see costs {see_cpu / bare_cpu:.2f}x a bare forward pass with the same hooks in CPU seconds "
          f"({see_wall / bare_wall:.2f}x wall); goal <= 1.5x")


if __name__ == "__main__":
    main()
