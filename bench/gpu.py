"""Dissection throughput on a GPU: ResNet-18 layer4 and ResNet-50 layer4 over a Broden-sized probe set.

Builds (once, in --cache) a 63,305-image synthetic Broden-format probe set with ``unitscope world``
(SceneWorld scenes at 224 px, 112 px label maps: the size of the real ``broden1_224``), then dissects
each model's layer4 with random weights on ``--device`` and prints images/s and the time for the whole
probe set, in full precision and with ``--amp`` (bf16 autocast by default; ``--amp off`` measures fp32
only). Without a CUDA device it says so and stops (the numbers only mean something on a GPU).

    python bench/gpu.py --cache ~/.cache/unitscope-broden --device cuda [--n 63305] [--workers 8] [--amp bf16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BRODEN_IMAGES = 63_305


def build_probe(cache: Path, n: int) -> Path:
    """The Broden-format probe set of ``n`` SceneWorld scenes at 224 px under ``cache`` (built once)."""
    probe = cache / f"sceneworld-{n}-224"
    if not (probe / "index.csv").is_file():
        print(f"building {n} images in {probe} (once; this takes a while)", flush=True)
        subprocess.run([sys.executable, "-m", "unitscope", "world", str(probe), "--kind", "scenes", "--n", str(n),
                        "--size", "224"], check=True)
    return probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="Where the probe set is built and kept.")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=BRODEN_IMAGES)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--amp", default="bf16", choices=("off", "bf16", "fp16"),
                        help="Also time this autocast mode (off: fp32 only).")
    opts = parser.parse_args()
    import torch

    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device available: nothing measured")
        return
    probe = build_probe(opts.cache, opts.n)
    modes = ["off"] if opts.amp == "off" else ["off", opts.amp]
    for model in ("resnet18", "resnet50"):
        for amp in modes:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "run"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "unitscope", "dissect", "--model", model, "--layer", "layer4",
                                "--data", str(probe), "--device", opts.device, "--batch-size", str(opts.batch_size),
                                "--workers", str(opts.workers), "--amp", amp, "--no-report", "--out", str(out)],
                               check=True)
                wall = time.perf_counter() - start
                engine = float(json.loads((out / "summary.json").read_text())["seconds"])
            print(f"{model} layer4 on {opts.device} (amp {amp}): {opts.n / engine:,.0f} images/s "
                  f"(engine {engine:.0f} s; whole command {wall:.0f} s for {opts.n:,} images)", flush=True)

if __name__ == "__main__":
    main()
