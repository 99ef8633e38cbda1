"""What ``--amp`` does to a dissection: thresholds, IoU and labels under bf16/fp16 autocast against fp32.

Dissects the same model (loaded once, so random weights are the same bits) on the same SceneWorld probe
set with ``amp`` off and on, and prints per layer: the largest and the median relative threshold change,
the largest change of a unit's best IoU, the share of units whose label changes (all units, and units
that are detectors in either run) and the detector counts. Times are the engine's wall and CPU seconds.

    python bench/amp.py [--amp bf16] [--n 500] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sceneworld-scene", ("conv3", "conv5", "pool5")),
    ("resnet18", ("layer3", "layer4")),  # random weights, seeded
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args()
    import torch

    from unitscope.data import open_probe
    from unitscope.dissection.run import dissect
    from unitscope.dissection.settings import DissectSettings
    from unitscope.models.loading import load_model

    probe = open_probe("sceneworld", n=opts.n, seed=0, size=opts.size)
    worst_label_share = 0.0
    for spec, layers in CASES:
        torch.manual_seed(0)
        model = load_model(spec, device=opts.device)
        runs = {}
        for amp in ("off", opts.amp):
            wall, cpu = time.perf_counter(), time.process_time()
            runs[amp] = dissect(model, layers, probe, None, settings=DissectSettings(bootstrap=0, amp=amp),
                                device=opts.device, progress=False)
            print(f"{spec} amp={amp}: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
                  flush=True)
        for layer in layers:
            full, low = runs["off"].layers[layer].units, runs[opts.amp].layers[layer].units
            t0, t1 = full["threshold"].to_numpy(), low["threshold"].to_numpy()
            rel = np.abs(t1 - t0) / np.maximum(np.abs(t0), 1e-12)
            changed = full["label"].to_numpy() != low["label"].to_numpy()
            detectors = full["detector"].to_numpy().astype(bool) | low["detector"].to_numpy().astype(bool)
            det_changed = changed[detectors].mean() if detectors.any() else 0.0
            worst_label_share = max(worst_label_share, float(changed.mean()))
            print(f"  {layer}: threshold change max {rel.max():.2e} median {np.median(rel):.2e}; "
                  f"best-IoU change max {np.abs(low['iou'] - full['iou']).max():.4f}; "
                  f"label changed {changed.mean():.1%} of {len(full)} units, {det_changed:.1%} of "
                  f"{int(detectors.sum())} detectors; detectors {int(full['detector'].sum())} → "
                  f"{int(low['detector'].sum())}", flush=True)
    print(f"labels changed: {worst_label_share:.3f} (largest share over the layers)")


if __name__ == "__main__":
    main()
