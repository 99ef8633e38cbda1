"""SceneWorld render speed on one core at 112x112 (image and all full-resolution label maps).

Prints images/s for scenes and object-centric images; the last line is the slower of the two as
``images_per_s: X``.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from unitscope.data.sceneworld import SceneWorldProbe


def images_per_second(kind: str, n: int, size: int = 112) -> float:
    """Render n fresh samples (each composed and rendered once) and return the rate."""
    probe = SceneWorldProbe(n + 10, seed=1234, size=size, kind=kind)
    for i in range(10):  # warm-up: texture bank, caches
        probe.render(n + i)
    start = time.perf_counter()
    for i in range(n):
        probe.render(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    rates = {kind: images_per_second(kind, 600) for kind in ("scenes", "objects")}
    for kind, rate in rates.items():
        print(f"{kind}: {rate:.0f} images/s at 112x112 on one core")
    print(f"images_per_s: {min(rates.values()):.0f}")


if __name__ == "__main__":
    main()
