"""What knowing a run by its content costs: the model state digest and the probe digest, beside a forward pass.

    python bench/digest.py [--model resnet50] [--reps 3]

Prints the digest's wall and CPU seconds for the model's parameters and buffers, the probe digests of a
500-image SceneWorld probe and of a 500-image Broden export, and one forward pass of one 224 px image for scale.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def timed(work: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``work`` over ``reps`` runs."""
    walls, cpus = [], []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import torch
    import torchvision

    from unitscope.data import open_probe
    from unitscope.data.broden_export import write_broden
    from unitscope.data.identity import probe_identity
    from unitscope.models.digest import state_digest

    torch.set_num_threads(1)
    net = torchvision.models.get_model(args.model).eval()
    size = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    wall, cpu = timed(lambda: state_digest(net), args.reps)
    print(f"{args.model}: state digest of {size / 1e6:.0f} MB: {wall:.3f} s wall, {cpu:.3f} s CPU")
    with torch.no_grad():
        x = torch.zeros(1, 3, 224, 224)
        fwd_wall, fwd_cpu = timed(lambda: net(x), args.reps)
    print(f"{args.model}: one 224 px forward pass: {fwd_wall:.3f} s wall, {fwd_cpu:.3f} s CPU "
          f"(digest / forward: {cpu / fwd_cpu:.2f})")
    probe = open_probe("sceneworld", n=500)
    wall, cpu = timed(lambda: probe_identity(probe), args.reps)
    print(f"SceneWorld 500 images: probe digest {wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU")
    with tempfile.TemporaryDirectory() as tmp:
        write_broden(Path(tmp) / "broden", probe, image_format="jpg", progress=False, previews=0)
        broden = open_probe(str(Path(tmp) / "broden"))
        wall, cpu = timed(lambda: probe_identity(broden), args.reps)
        print(f"Broden export, {len(broden)} images: probe digest {wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU")


if __name__ == "__main__":
    main()
