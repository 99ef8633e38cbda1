"""At the user's scale: what each further image costs ``unitscope dissect`` against decoding it and running the network.

Setup (not timed, once per ``--work``): ``unitscope world --size 224`` writes a Broden-format SceneWorld export
of the largest size (224 px images, 112 px label maps); each smaller size is the same directory cut to its first
N rows of ``index.csv`` (images shared through a link), so every size reads the same images. torchvision AlexNet
and ResNet-18 get random weights drawn with ``torch.manual_seed(0)``, saved as checkpoints.

Then, interleaved (``--reps`` rounds; in each, every size and model), each command its own process:

- **dissect**: ``unitscope dissect --model M --weights W --layer L --data DIR --out RUN --no-report``, process
  start to finish (the path a user runs; default options, so ``--workers auto``);
- **bare**: one process that loads the same network the same way (``unitscope.models.loading.load_model``),
  reads every sample as the Broden reader does (``BrodenProbe[i]``: the image and its label PNGs decoded) and
  runs the network up to the layer in batches of 32 at torch's default thread count: the least any dissection
  must do, start-up included.

Measured per command: wall seconds; CPU seconds (user + sys of the process tree, ``RUSAGE_CHILDREN``: loader
workers included); peak RSS of the main process and of its workers; for dissect, the peak disk of the run's
folders (``RUN.partial`` and ``RUN``, allocated blocks, polled every 0.1 s).

Derived, per model (medians over reps of each size, then straight lines through the points):

- **marginal**: seconds per further image, the slope between the two smallest sizes (500 and 2,000 by default:
  the issue's definition), of dissect over that of bare, for wall and for CPU; also the least-squares slope over
  every size;
- **fixed cost**: the intercept of dissect's wall-vs-images line (least squares over every size): what a run
  costs before its first image (imports, model, shape probe, tables); and that intercept minus bare's (bare's
  process pays the same imports and model loading), the dissection's own fixed cost.

Also printed: each round's own ratio (its bare and dissect runs at both sizes, minutes apart, share the
machine's state; this machine's speed drifts by ~10 % within half an hour) and their median.

Last line: ``marginal: X.XX``, the larger of the wall and CPU marginal ratios (500 -> 2,000, medians over rounds)
for AlexNet conv5 (goal <= 1.15). ``--sizes`` and ``--models`` shrink the run (the tests run it at tiny sizes
with the built-in ``sceneworld-scene`` net).

    nice -n -10 python bench/scale.py --work /tmp/scale [--sizes 500,2000,8000] [--reps 1] [--json raw.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from end_to_end import _record_rss, run_cli, timed

MODELS = "alexnet:conv5,resnet18:layer4"
SIZE = 224
BATCH = 32
POLL_SECONDS = 0.1


def folder_bytes(paths: list[Path]) -> int:
    """Bytes allocated under ``paths`` (files' blocks: a sparse or preallocated file counts what it holds)."""
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # removed while we looked
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class DiskPeak:
    """The largest disk use of some folders while a command runs (polled in a thread)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, folder_bytes(self.paths))
            self._stop.wait(POLL_SECONDS)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, folder_bytes(self.paths))  # a run shorter than one poll still counts its folder


def run_bare(model: str, weights: str, layer: str, data: str) -> None:
    """Child mode: load the net, decode every image and its labels as the Broden reader does, run to ``layer``."""
    from unitscope.capture import LayerCapture
    from unitscope.data.broden import BrodenProbe
    from unitscope.models.layers import resolve_layer
    from unitscope.models.loading import load_model

    try:
        loaded = load_model(model, weights or None)
        probe = BrodenProbe(data)
        with LayerCapture(loaded.module, [resolve_layer(loaded.module, layer)], clone=False) as capture:
            for start in range(0, len(probe), BATCH):
                samples = [probe[i] for i in range(start, min(start + BATCH, len(probe)))]
                capture.run(loaded.preprocess.batch([s.image for s in samples], loaded.device))
    finally:
        _record_rss()


def setup(work: Path, sizes: list[int], models: list[tuple[str, str]], image_size: int,
          env: dict[str, str]) -> tuple[dict[int, Path], dict[str, str]]:
    """One export (of the largest size, or a larger one already in ``work``) cut to each smaller size; a seeded
    random checkpoint per torchvision model."""
    largest = max(sizes)
    made = [d for d in work.glob(f"broden-*-{image_size}") if (d / "index.csv").is_file()
            and not (d / "images").is_symlink() and int(d.name.split("-")[1]) >= largest]
    full = min(made, key=lambda d: int(d.name.split("-")[1])) if made else work / f"broden-{largest}-{image_size}"
    if not (full / "index.csv").is_file():
        subprocess.run([sys.executable, __file__, "--child-cli", "world", "--out", str(full), "--n", str(largest),
                        "--size", str(image_size), "--seed", "0", "--overwrite"], env=env, check=True,
                       capture_output=True)
    data = {len((full / "index.csv").read_text().splitlines()) - 1: full}
    lines = (full / "index.csv").read_text().splitlines(keepends=True)
    for n in sizes:
        if n == len(lines) - 1:
            continue
        cut = work / f"broden-{n}-{image_size}"
        cut.mkdir(exist_ok=True)
        for csv in full.glob("*.csv"):
            if csv.name != "index.csv":
                shutil.copyfile(csv, cut / csv.name)
        (cut / "index.csv").write_text("".join(lines[: n + 1]))
        if not (cut / "images").exists():
            (cut / "images").symlink_to(full / "images")
        data[n] = cut
    weights: dict[str, str] = {}
    for model, _ in models:
        if model.startswith("sceneworld"):
            weights[model] = ""  # a built-in net: its own weights
            continue
        path = work / f"{model}-seed0.pth"
        if not path.is_file():
            import torch
            import torchvision

            torch.manual_seed(0)
            torch.save(torchvision.models.get_model(model, weights=None).state_dict(), path)
        weights[model] = str(path)
    return data, weights


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def _median(ms: list[dict[str, float]], key: str) -> float:
    return statistics.median(m[key] for m in ms)


def phase_seconds(summary: Path) -> dict[str, float]:
    """``phase:NAME:wall`` and ``phase:NAME:cpu`` seconds from a run's ``summary.json`` (none if it has none)."""
    try:
        phases = json.loads(summary.read_text()).get("phases", {})
    except (OSError, ValueError):
        return {}
    return {f"phase:{name}:{key}": float(spent[key]) for name, spent in phases.items() for key in ("wall", "cpu")}


def print_phases(label: str, raw: dict[str, dict[int, list[dict[str, float]]]], sizes: list[int]) -> None:
    """Where a further image's CPU goes: each phase's slope (the run's own clocks, medians over rounds) between
    the two smallest sizes, beside the bare pass's whole slope; the rest is what no phase holds (start-up)."""
    first = raw["dissect"][sizes[0]]
    names = [key.split(":")[1] for key in first[0] if key.startswith("phase:") and key.endswith(":cpu")]
    if not names:
        return

    def slope(kind: str, key: str) -> float:
        ys = [_median(raw[kind][n], key) for n in sizes[:2]]
        return 1000 * (ys[1] - ys[0]) / (sizes[1] - sizes[0])

    parts = {name: slope("dissect", f"phase:{name}:cpu") for name in names}
    total, bare = slope("dissect", "cpu"), slope("bare", "cpu")
    shown = ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items())
    print(f"{label:<24}CPU ms per further image {sizes[0]}->{sizes[1]} by phase: {shown}, rest "
          f"{total - sum(parts.values()):.2f} (dissect {total:.2f}, bare {bare:.2f}; pass 1 / bare "
          f"{parts.get('pass 1', float('nan')) / bare:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,8000", help="comma-separated probe sizes (at least two)")
    parser.add_argument("--models", default=MODELS, help="comma-separated model:layer pairs")
    parser.add_argument("--reps", type=int, default=1, help="rounds over every size and model (interleaved)")
    parser.add_argument("--image-size", type=int, default=SIZE, help="image side of the export (px)")
    parser.add_argument("--work", type=Path, default=None, help="keep the exports and checkpoints here")
    parser.add_argument("--extra", default="", help="extra dissect options, e.g. '--workers 0'")
    parser.add_argument("--json", type=Path, default=None, help="also write every raw measurement here")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:
        raise SystemExit("give at least two --sizes: the marginal cost is a slope")
    models = [(spec.split(":")[0], spec.split(":")[1]) for spec in args.models.split(",")]
    env = dict(os.environ)
    work = args.work or Path(tempfile.mkdtemp(prefix="unitscope-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    data, weights = setup(work, sizes, models, args.image_size, env)
    me = [sys.executable, __file__]
    raw: dict[str, dict[str, dict[int, list[dict[str, float]]]]] = {
        m: {k: {n: [] for n in sizes} for k in ("bare", "dissect")} for m, _ in models}
    for rep in range(args.reps):
        for n in sizes:
            for model, layer in models:
                for kind in ("bare", "dissect"):
                    out = work / f"run-{model}-{n}"
                    partial = out.with_name(out.name + ".partial")
                    if kind == "bare":
                        argv = [*me, "--child-bare", model, weights[model], layer, str(data[n])]
                    else:
                        shutil.rmtree(out, ignore_errors=True)
                        shutil.rmtree(partial, ignore_errors=True)
                        argv = [*me, "--child-cli", "dissect", "--model", model, "--layer", layer, "--data",
                                str(data[n]), "--out", str(out), "--no-report", *args.extra.split()]
                        argv += ["--weights", weights[model]] if weights[model] else []
                    with DiskPeak([partial, out]) as disk:
                        m = timed(argv, env)
                    m["disk"] = disk.peak / 2**20
                    if kind == "dissect":
                        m.update(phase_seconds(out / "summary.json"))
                    raw[model][kind][n].append(m)
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"rep {rep + 1} {n:>6} {model:>9} {kind:<8} wall {m['wall']:7.2f} s  cpu {m['cpu']:7.2f} s  "
                          f"rss {m['rss']:6.0f} MB  workers {m['rss_workers']:6.0f} MB  disk {m['disk']:7.0f} MB",
                          flush=True)
    print(f"\n{args.image_size} px Broden export; medians of {args.reps} interleaved round(s); CPU = user+sys of the "
          "process tree; RSS = peak of the main process (its workers'); disk = peak of RUN.partial + RUN")
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'model, layer':<24}{'command':<9}{'images':>7}{'wall s':>9}{'CPU s':>9}{'RSS MB':>8}{'workers':>9}"
          f"{'disk MB':>9}")
    marginal: dict[str, float] = {}
    for model, layer in models:
        for kind in ("bare", "dissect"):
            for n in sizes:
                ms = raw[model][kind][n]
                print(f"{model + ' ' + layer:<24}{kind:<9}{n:>7}{_median(ms, 'wall'):9.2f}{_median(ms, 'cpu'):9.2f}"
                      f"{max(m['rss'] for m in ms):8.0f}{max(m['rss_workers'] for m in ms):9.0f}"
                      f"{max(m['disk'] for m in ms) if kind == 'dissect' else float('nan'):9.1f}")
        ratios = []
        for key in ("wall", "cpu"):
            lines = {}
            for kind in ("bare", "dissect"):
                ys = [_median(raw[model][kind][n], key) for n in sizes]
                two = (ys[1] - ys[0]) / (sizes[1] - sizes[0])
                lines[kind] = (two, *line_fit([float(n) for n in sizes], ys))
            (b2, bs, bi), (d2, ds, di) = lines["bare"], lines["dissect"]
            ratios.append(d2 / b2)
            paired = [((raw[model]["dissect"][sizes[1]][r][key] - raw[model]["dissect"][sizes[0]][r][key])
                       / (raw[model]["bare"][sizes[1]][r][key] - raw[model]["bare"][sizes[0]][r][key]))
                      for r in range(args.reps)]
            print(f"{model + ' ' + layer:<24}{key:<5} per image {sizes[0]}->{sizes[1]}: dissect {1000 * d2:.2f} ms, "
                  f"bare {1000 * b2:.2f} ms, marginal {d2 / b2:.2f}; fit over {len(sizes)} sizes: "
                  f"{1000 * ds:.2f} vs {1000 * bs:.2f} ms ({ds / bs:.2f}); intercept: dissect {di:.2f} s, "
                  f"bare {bi:.2f} s, dissect - bare {di - bi:.2f} s")
            print(f"{model + ' ' + layer:<24}{key:<5} each round's own ratio {sizes[0]}->{sizes[1]} (its four runs "
                  f"within minutes): {', '.join(f'{r:.2f}' for r in paired)}; median {statistics.median(paired):.2f}")
        print_phases(model + " " + layer, raw[model], sizes)
        rss = [max(m["rss"] for m in raw[model]["dissect"][n]) for n in sizes]
        print(f"{model + ' ' + layer:<24}peak RSS {sizes[0]} -> {sizes[-1]} images: {rss[0]:.0f} -> {rss[-1]:.0f} MB "
              f"({rss[-1] / rss[0]:.2f}x)")
        marginal[model] = max(ratios)
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": sizes, "raw": raw}, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    first = "alexnet" if "alexnet" in marginal else next(iter(marginal))
    print(f"marginal: {marginal[first]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-cli":
        run_cli(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-bare":
        run_bare(*sys.argv[2:6])
    else:
        main()
