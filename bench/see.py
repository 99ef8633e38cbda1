"""``see`` against running ``segment`` and ``cam`` separately on the same images, and against a bare forward
pass with the same hooks (issue #28: goals ≥ 3× faster than the separate commands, ≤ 1.5× the bare pass).

1. Process start to finish (wall and CPU seconds of the child processes): ``unitscope see`` vs ``unitscope
   segment`` + ``unitscope cam`` (both ``--baseline none``, pictures for every image, as see draws a page per
   image) on the same N fresh SceneWorld images. All three fit nothing but segment's concept vectors and see's
   (the same fit), so the fit is in both.
2. In one process, after opening (vectors fitted once): see's pass per batch (forward, Grad-CAM's backward
   through the head, the vectors, boxes and units) vs a bare forward pass with the same hooks, images/second.

Run: .venv/bin/python bench/see.py --run RUN [--n 64] [--fit-n 400]   (RUN: a dissection of sceneworld-scene,
e.g. ``unitscope dissect --model sceneworld-scene --layer conv5 --layer pool5 --out RUN``)
"""

from __future__ import annotations

import argparse
import resource
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


def processes(run: str, n: int, fit_n: int, folder: Path) -> dict[str, tuple[float, float]]:
    data = ["--data", "sceneworld", "--n", str(n)]
    see = timed(["see", "--run", run, *data, "--fit-n", str(fit_n), "--out", str(folder / "see")])
    segment = timed(["segment", "--model", "sceneworld-scene", "--run", run, *data, "--fit-n", str(fit_n),
                     "--baseline", "none", "--pictures", str(n), "--out", str(folder / "segment")])
    cam = timed(["cam", "--model", "sceneworld-scene", *data, "--baseline", "none", "--pictures", str(n),
                 "--out", str(folder / "cam")])
    return {"see": see, "segment": segment, "cam": cam}


def in_process(run: str, n: int, fit_n: int, batch: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds per image of see's pass and of a bare forward pass with the same hooks (best of ``repeats``)."""
    import torch

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

    def best(work: object) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            work()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times) / n

    see()  # warm-up
    return best(see), best(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--fit-n", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = processes(args.run, args.n, args.fit_n, Path(tmp))
    separate = (times["segment"][0] + times["cam"][0], times["segment"][1] + times["cam"][1])
    print(f"process start to finish, {args.n} images (fit on {args.fit_n}):")
    for name, (wall, cpu) in times.items():
        print(f"  {name:18} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {args.n / wall:6.2f} images/s")
    print(f"  {'segment + cam':18} wall {separate[0]:7.2f} s  cpu {separate[1]:7.2f} s  "
          f"{args.n / separate[0]:6.2f} images/s")
    print(f"  see is {separate[0] / times['see'][0]:.2f}x faster than segment + cam (wall; "
          f"{separate[1] / times['see'][1]:.2f}x in CPU seconds); goal >= 3x")
    see_s, bare_s = in_process(args.run, args.n, args.fit_n, args.batch_size)
    print(f"in one process (after opening), batches of {args.batch_size}:")
    print(f"  see's pass       {1 / see_s:7.1f} images/s\n  bare forward     {1 / bare_s:7.1f} images/s "
          "(same hooks, no grad)")
    print(f"  see costs {see_s / bare_s:.2f}x a bare forward pass with the same hooks; goal <= 1.5x")


if __name__ == "__main__":
    main()
