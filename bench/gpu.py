"""Dissection throughput on a GPU: ResNet-18 layer4 and ResNet-50 layer4 over a Broden-sized probe set.

Builds (once, in --cache) a 63,305-image synthetic Broden-format probe set with ``unitscope world``
(SceneWorld scenes at 224 px: the size of the real ``broden1_224``), then for each model's layer4 with
random weights on ``--device`` prints one table row per precision (full, and ``--amp``: bf16 autocast by
default; ``--amp off`` measures fp32 only): images/s of the forward pass alone (in this process, on
random input, with its peak GPU memory) and of the whole dissection (``unitscope dissect`` in its own
process; engine time and the whole command's). Without a CUDA device it says so and stops (the numbers
only mean something on a GPU).

``--dry-run`` runs the same path on CPU at tiny sizes (8 images at 64 px, ResNet-18 only, fp32) in a few
seconds, so the tests keep the script working where no GPU is available.

    python bench/gpu.py --cache ~/.cache/unitscope-broden --device cuda [--n 63305] [--workers 8] [--amp bf16]
    python bench/gpu.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BRODEN_IMAGES = 63_305
HEADER = ("| model | layer | device | amp | images | forward images/s | dissection images/s | engine s "
          "| command s | forward peak GPU MiB |")
DRY_RUN_NOTE = "dry run on CPU: no GPU numbers"


@dataclass(frozen=True)
class Sizes:
    """What one invocation measures."""

    n: int
    size: int
    batch_size: int
    workers: int
    models: tuple[str, ...]
    device: str


def build_probe(cache: Path, n: int, size: int) -> Path:
    """The Broden-format probe set of ``n`` SceneWorld scenes at ``size`` px under ``cache`` (built once; in
    this process, what ``unitscope world --out DIR --n N --size SIZE`` writes, without a second start-up)."""
    from unitscope.data.broden_export import write_broden
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = cache / f"sceneworld-{n}-{size}"
    if not (probe / "index.csv").is_file():
        print(f"building {n} images in {probe} (once; this takes a while at Broden's size)", flush=True)
        write_broden(probe, SceneWorldProbe(n=n, seed=0, size=size), progress=n > 1000, overwrite=True)
    return probe


def forward_rate(model: str, sizes: Sizes, amp: str, batches: int) -> tuple[float, float | None]:
    """Images/s of the forward pass to layer4 alone (random input, after one warm-up batch) and the peak GPU
    memory in MiB (None off CUDA)."""
    from dataclasses import replace

    import torch

    from unitscope.capture import LayerCapture
    from unitscope.models.loading import load_model

    loaded = replace(load_model(model, device=sizes.device), amp=amp)
    x = torch.randn(sizes.batch_size, 3, sizes.size, sizes.size, device=loaded.device)
    cuda = loaded.device.type == "cuda"
    with torch.inference_mode(), LayerCapture(loaded.module, ["layer4"]) as capture, loaded.autocast():
        capture.run(x)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(batches):
            capture.run(x)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return batches * sizes.batch_size / seconds, peak


def dissect_times(model: str, probe: Path, sizes: Sizes, amp: str, extra: list[str]) -> tuple[float, float]:
    """(engine seconds from summary.json, whole command seconds) of one ``unitscope dissect`` of layer4."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "unitscope", "dissect", "--model", model, "--layer", "layer4",
                        "--data", str(probe), "--n", str(sizes.n), "--device", sizes.device,
                        "--batch-size", str(sizes.batch_size), "--workers", str(sizes.workers), "--amp", amp,
                        "--no-report", "--out", str(out), *extra], check=True)
        wall = time.perf_counter() - start
        engine = float(json.loads((out / "summary.json").read_text())["seconds"])
    return engine, wall


def row(model: str, sizes: Sizes, amp: str, forward: tuple[float, float | None], times: tuple[float, float]) -> str:
    """One line of the table."""
    rate, peak = forward
    engine, wall = times
    memory = f"{peak:,.0f}" if peak is not None else "n/a"
    return (f"| {model} | layer4 | {sizes.device} | {amp} | {sizes.n:,} | {rate:,.0f} | {sizes.n / engine:,.0f} "
            f"| {engine:.1f} | {wall:.1f} | {memory} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, help="Where the probe set is built and kept (not with --dry-run).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=BRODEN_IMAGES)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--amp", default="bf16", choices=("off", "bf16", "fp16"),
                        help="Also time this autocast mode (off: fp32 only).")
    parser.add_argument("--dry-run", action="store_true",
                        help="The same path on CPU at tiny sizes (8 images, 64 px, ResNet-18, fp32): no GPU numbers.")
    opts = parser.parse_args()
    if opts.dry_run:
        sizes = Sizes(8, 64, 4, 0, ("resnet18",), "cpu")
        modes, extra, batches = ["off"], ["--bootstrap", "0"], 2
    else:
        if opts.cache is None:
            parser.error("--cache DIR is needed (or --dry-run)")
        sizes = Sizes(opts.n, 224, opts.batch_size, opts.workers, ("resnet18", "resnet50"), opts.device)
        modes, extra, batches = ["off"] if opts.amp == "off" else ["off", opts.amp], [], 20
    import torch

    if sizes.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device available: nothing measured")
        return
    card = torch.cuda.get_device_name(sizes.device) if sizes.device.startswith("cuda") else "CPU"
    with tempfile.TemporaryDirectory(prefix="unitscope-gpu-") as scratch:
        probe = build_probe(Path(scratch) if opts.dry_run else opts.cache, sizes.n, sizes.size)
        lines = [row(model, sizes, amp, forward_rate(model, sizes, amp, batches),
                     dissect_times(model, probe, sizes, amp, extra))
                 for model in sizes.models for amp in modes]
    print(f"card: {card}")
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    print("\n".join(lines))
    if opts.dry_run:
        print(DRY_RUN_NOTE)


if __name__ == "__main__":
    main()
