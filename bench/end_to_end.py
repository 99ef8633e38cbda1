"""End to end: the ``unitscope dissect`` CLI on a Broden directory vs decoding its images and one forward pass.

Setup (not timed): ``unitscope world`` writes a Broden-format SceneWorld export (``--n`` images at 224 px,
labels at 112 px); torchvision AlexNet and ResNet-18 get random weights drawn with a fixed seed, saved as
checkpoints so every process runs the same network. Then, interleaved, ``--reps`` times each:

- (a) ``unitscope dissect --model M --weights W --layer L --data DIR --out RUN`` with and without ``--no-report``;
- (b) a bare pass over the same directory: decode every image the way the Broden reader does, preprocess,
  run the network up to the same layer (batches of 32, one process).

Every command is its own process; CPU seconds are user + sys of the whole process tree (``RUSAGE_CHILDREN``
around each subprocess, DataLoader workers included), wall seconds beside them. Peak RSS is the largest
resident set of the command's main process (and, separately, of any worker it waited for); a process that only
loads the model and runs one batch is measured as the memory reference. Medians over repetitions.
Last line: ``ratio: X.XX`` = median CPU seconds of (a, no report) / (b) for AlexNet conv5. Goal <= 1.5
without the report, <= 1.8 with it.

``--kinds`` runs a subset of the commands (the report is the slowest); ``--before SRC`` also runs every dissect
command with ``PYTHONPATH=SRC`` (another checkout's ``src``, e.g. the main branch), interleaved with the
current tree's, so a before/after comparison shares the machine's load (rows ``...@before``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS: tuple[tuple[str, str], ...] = (("alexnet", "conv5"), ("resnet18", "layer4"))
BATCH = 32
SIZE = 224


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one command; its wall and process-tree CPU seconds and peak RSS (MB, from the rss file)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        rss_file = f.name
    env = {**env, "UNITSCOPE_BENCH_RSS": rss_file}
    cpu0, wall0 = _child_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall0, _child_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-3000:]}")
    rss = json.loads(Path(rss_file).read_text() or "{}")
    os.unlink(rss_file)
    return {"wall": wall, "cpu": cpu, "rss": rss.get("self", 0.0), "rss_workers": rss.get("children", 0.0)}


def _record_rss() -> None:
    path = os.environ.get("UNITSCOPE_BENCH_RSS")
    if path:
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        Path(path).write_text(json.dumps({"self": me, "children": kids}))


def run_cli(argv: list[str]) -> None:
    """Child mode: the unitscope CLI in this process, recording peak RSS on the way out."""
    from unitscope.cli.main import main

    try:
        main(argv)
    finally:
        _record_rss()


def run_bare(model: str, weights: str, layer: str, data: str, one_batch: bool) -> None:
    """Child mode: decode every image as the Broden reader does and run the network up to ``layer``."""
    from unitscope.capture import LayerCapture
    from unitscope.data.broden import BrodenProbe
    from unitscope.data.image_folder import read_rgb
    from unitscope.models.layers import resolve_layer
    from unitscope.models.loading import load_model

    loaded = load_model(model, weights)
    probe = BrodenProbe(data)
    n = BATCH if one_batch else len(probe)
    try:
        with LayerCapture(loaded.module, [resolve_layer(loaded.module, layer)], clone=False) as capture:
            for start in range(0, n, BATCH):
                images = [read_rgb(probe.image_path(i), "bench") for i in range(start, min(start + BATCH, n))]
                capture.run(loaded.preprocess.batch(images, loaded.device))
    finally:
        _record_rss()


def setup(work: Path, n: int, env: dict[str, str]) -> tuple[Path, dict[str, Path]]:
    """The Broden export and one seeded random-weight checkpoint per model."""
    import torch
    import torchvision

    data = work / f"broden-{n}"
    if not (data / "index.csv").is_file():
        subprocess.run([sys.executable, __file__, "--child-cli", "world", str(data), "--n", str(n), "--size",
                        str(SIZE), "--seed", "0", "--overwrite"], env=env, check=True, capture_output=True)
    weights = {}
    for model, _ in MODELS:
        path = work / f"{model}-seed0.pth"
        if not path.is_file():
            torch.manual_seed(0)
            torch.save(torchvision.models.get_model(model, weights=None).state_dict(), path)
        weights[model] = path
    return data, weights


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="images in the Broden export")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every command (interleaved)")
    parser.add_argument("--work", type=Path, default=None, help="keep the export and checkpoints here")
    parser.add_argument("--models", default="alexnet,resnet18", help="comma-separated subset of alexnet,resnet18")
    parser.add_argument("--extra", default="", help="extra dissect options, e.g. '--workers 0'")
    parser.add_argument("--json", type=Path, default=None, help="also write every raw measurement here")
    parser.add_argument("--kinds", default="bare,dissect,dissect+report",
                        help="comma-separated subset of bare,dissect,dissect+report (bare is always run)")
    parser.add_argument("--before", type=Path, default=None,
                        help="also run the dissect commands with PYTHONPATH set to this src folder, interleaved")
    args = parser.parse_args()
    env = dict(os.environ)
    work = args.work or Path(tempfile.mkdtemp(prefix="unitscope-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    data, weights = setup(work, args.n, env)
    chosen = [(m, layer) for m, layer in MODELS if m in args.models.split(",")]
    me = [sys.executable, __file__]
    wanted = ["bare", *(k for k in ("dissect", "dissect+report") if k in args.kinds.split(","))]
    kinds = tuple(wanted + ([f"{k}@before" for k in wanted[1:]] if args.before is not None else []))
    before_env = {**env, "PYTHONPATH": str(args.before.resolve())} if args.before is not None else env
    raw: dict[str, dict[str, list[dict[str, float]]]] = {m: {k: [] for k in kinds} for m, _ in chosen}
    for rep in range(args.reps):
        for model, layer in chosen:
            for kind in kinds:
                if kind == "bare":
                    argv = [*me, "--child-bare", model, str(weights[model]), layer, str(data)]
                else:
                    out = work / f"run-{model}-{kind}"
                    shutil.rmtree(out, ignore_errors=True)
                    shutil.rmtree(work / f"run-{model}-{kind}.partial", ignore_errors=True)
                    argv = [*me, "--child-cli", "dissect", "--model", model, "--weights", str(weights[model]),
                            "--layer", layer, "--data", str(data), "--out", str(out), *args.extra.split()]
                    if kind.startswith("dissect@") or kind == "dissect":
                        argv.append("--no-report")
                raw[model][kind].append(timed(argv, before_env if kind.endswith("@before") else env))
                m = raw[model][kind][-1]
                print(f"rep {rep + 1} {model:>9} {kind:<21} wall {m['wall']:6.2f} s  cpu {m['cpu']:6.2f} s  "
                      f"rss {m['rss']:6.0f} MB", flush=True)
    one = {model: timed([*me, "--child-bare", model, str(weights[model]), layer, str(data), "--one-batch"], env)
           for model, layer in chosen}
    print(f"\n{args.n} images, {SIZE} px, medians of {args.reps} interleaved runs; CPU = user+sys of process tree")
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'model, layer':<18}{'command':<22}{'wall s':>8}{'CPU s':>8}{'wall/bare':>10}{'CPU/bare':>9}"
          f"{'RSS MB':>8}{'workers':>8}")
    ratios: dict[str, float] = {}
    for model, layer in chosen:
        bare = raw[model]["bare"]
        bw, bc = _median([m["wall"] for m in bare]), _median([m["cpu"] for m in bare])
        for kind in kinds:
            ms = raw[model][kind]
            w, c = _median([m["wall"] for m in ms]), _median([m["cpu"] for m in ms])
            rss, kids = max(m["rss"] for m in ms), max(m["rss_workers"] for m in ms)
            print(f"{model + ' ' + layer:<18}{kind:<22}{w:8.2f}{c:8.2f}{w / bw:10.2f}{c / bc:9.2f}{rss:8.0f}"
                  f"{kids:8.0f}")
            if kind == "dissect":
                ratios[model] = c / bc
            if kind.endswith("@before") and raw[model][kind.split("@")[0]]:
                now = _median([m["cpu"] for m in raw[model][kind.split("@")[0]]])
                print(f"{'':<18}{'  after/before':<22}{'':>8}{now / c:8.2f}  (CPU of {kind.split('@')[0]})")
        print(f"{model + ' ' + layer:<18}{'load+1 batch':<22}{'':>8}{'':>8}{'':>10}{'':>9}{one[model]['rss']:8.0f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"n": args.n, "raw": raw, "one_batch": one}, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    first = "alexnet" if "alexnet" in ratios else next(iter(ratios))
    print(f"ratio: {ratios[first]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-cli":
        run_cli(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-bare":
        run_bare(*sys.argv[2:6], one_batch="--one-batch" in sys.argv)
    else:
        main()
