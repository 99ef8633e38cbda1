"""Incremental occlusion vs naive batched full recomputation: same images, units and occluders.

For each network and layer: one random image, units 0-9 each at its own peak (argmax on that image),
11x11 random occluders on a stride-3 grid; both engines run the same occluder positions (the first
``--positions``, evenly spread, of those that reach any of the units, so the naive side stays under a
minute) and must agree to 1e-4 of the layer's largest activation. ``changed``: the share of (unit,
occluder) pairs whose discrepancy is non-zero, so a trivial comparison would show. Times are per occluded
copy, best of ``--repeats``.
"Naive" already serves all units from one batch; Captum's ``Occlusion`` would need one full pass per
copy *per unit*, so it is slower by another factor of about the number of units.

ResNet-18 rows (torchvision, random weights, 224 px) run the residual graph incrementally: each block's
output changes where either branch (the convolutions, or the shortcut and its downsampling convolution)
does. The last line is ``speedup: X.X`` for AlexNet conv5 (torchvision ``features.11``, random weights, 224 px).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from unitscope.models.layers import resolve_layer
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.perturb import OccluderGrid, occlusion_discrepancy, plan_occlusion, relevant_positions


def sceneworld_net() -> nn.Module:
    """The shipped scene network when present, else SceneWorldNet with random weights."""
    try:
        from unitscope.models.loading import load_model

        return load_model("sceneworld-scene").module
    except Exception:  # no shipped weights yet: the architecture alone decides the cost
        torch.manual_seed(0)
        return SceneWorldNet(SceneWorldNetConfig(num_classes=10)).eval()


def best_time(run: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Smallest wall time of ``repeats`` runs, and the last result."""
    best, result = float("inf"), torch.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_layer(model: nn.Module, layer: str, size: int, positions: int, repeats: int, batch: int) -> float:
    """Print one comparison line and return the speedup."""
    path = resolve_layer(model, layer)
    image = torch.randn(3, size, size, generator=torch.Generator().manual_seed(1))
    plan = plan_occlusion(model, path, (size, size))
    with torch.no_grad():
        acts = plan.full_model(image.unsqueeze(0))[0]
    units = torch.arange(10)
    flat = acts[units].flatten(1).argmax(dim=1)
    peaks = torch.stack([flat // acts.shape[2], flat % acts.shape[2]], dim=1)
    grid = OccluderGrid.build((size, size), 11, 3)
    reach = relevant_positions(plan.geometry, peaks, grid).any(dim=0).flatten()
    candidates = reach.nonzero().squeeze(1)
    spread = torch.linspace(0, len(candidates) - 1, min(positions, len(candidates))).round().long()
    only = torch.zeros_like(reach)
    only[candidates[spread]] = True
    only = only.reshape(grid.shape)
    count = int(only.sum())

    def run(incremental: bool) -> Callable[[], torch.Tensor]:
        return lambda: occlusion_discrepancy(model, path, image, units, peaks, 11, 3, "random", 0, batch,
                                             incremental, plan=plan, only=only)

    fast_s, fast = best_time(run(True), repeats)
    naive_s, naive = best_time(run(False), repeats)
    error = float((fast - naive).abs().max() / acts.abs().max())
    changed = float((naive > 0).sum() / (len(units) * count))
    speedup = naive_s / fast_s
    print(f"{type(model).__name__:<14}{layer:<7}{path:<13}{count:>6}{1000 * naive_s / count:>10.2f}"
          f"{1000 * fast_s / count:>10.2f}{speedup:>9.1f}x{error:>11.1e}{changed:>9.2f}  {plan.path}", flush=True)
    if error > 1e-4:
        raise SystemExit(f"incremental and full recomputation disagree on {layer}: {error:.2e}")
    return speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=400, help="Occluder positions per layer.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); 11x11 random occluders, stride 3; 10 units")
    print(f"{'model':<14}{'layer':<7}{'path':<13}{'copies':>6}{'naive ms':>10}{'incr ms':>10}"
          f"{'speedup':>10}{'max err':>11}{'changed':>9}  engine")
    scene = sceneworld_net()
    for layer in ("conv2", "conv3", "conv5", "pool5"):
        bench_layer(scene, layer, 112, args.positions, args.repeats, args.batch_size)
    torch.manual_seed(0)
    alexnet = torchvision.models.alexnet().eval()
    speedups = {layer: bench_layer(alexnet, layer, 224, args.positions, args.repeats, args.batch_size)
                for layer in ("conv2", "conv3", "conv4", "conv5")}
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18().eval()
    for layer in ("layer3", "layer4"):
        bench_layer(resnet, layer, 224, args.positions, args.repeats, args.batch_size)
    print(f"speedup: {speedups['conv5']:.1f}")


if __name__ == "__main__":
    main()
