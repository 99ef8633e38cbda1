"""Benchmark: minimal images with a step's candidates scored from cached activations vs one pass each.

Runs the greedy loop on the same images twice, interleaved: the fast path (``minimal_image`` as shipped:
candidates scored in windows from the current image's cached activations, in batches of 64, near ties
decided by whole passes; the model's split traced once, as ``run_minimal`` does) and the per-candidate
loop (``incremental=False, batch_size=1``: one whole forward pass per candidate). It checks that both
give the same removal sequences and prints images per minute on the scene network, in CPU seconds of
this process (the machine may be shared: wall seconds are printed beside them). Uses the shipped
``sceneworld-scene`` network and SceneWorld images when they exist; otherwise an untrained network of
the same architecture on synthetic images (the cost per forward pass is the same), with the target set
to the network's own prediction on the original image. The last line is ``speedup: X.X`` (CPU seconds).

    .venv/bin/python bench/minimal.py [--images 3] [--segments 40] [--fill mean] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from unitscope.errors import UsageError
from unitscope.minimal import minimal_image
from unitscope.minimal.split import Split, split_model
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig


def synthetic_images(count: int, size: int = 112) -> list[np.ndarray]:
    """Smooth random images with a few rectangles, so SLIC finds regions of several sizes."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        image = np.empty((size, size, 3), dtype=np.float64)
        image[:] = rng.uniform(40, 200, 3)
        for _ in range(8):
            top, left = rng.integers(0, size - 20, 2)
            h, w = rng.integers(10, 50, 2)
            image[top : top + h, left : left + w] = rng.uniform(0, 255, 3)
        images.append(image.astype(np.uint8))
    return images


def scene_setup(count: int) -> tuple[torch.nn.Module, Preprocessing, list[np.ndarray], list[int] | None, str]:
    """The shipped scene net and SceneWorld images, or a stand-in with the same architecture."""
    try:
        from unitscope.data.sceneworld import SceneWorldProbe
        from unitscope.models.loading import load_model

        model = load_model("sceneworld-scene")
        probe = SceneWorldProbe(n=count, seed=12345, size=112, kind="scenes")
        rendered = [probe.render(i) for i in range(count)]
        remap = {name: k for k, name in enumerate(model.class_names or [])}
        targets = [remap[probe.class_names[r.class_index]] for r in rendered]
        return model.module, model.preprocess, [r.image for r in rendered], targets, "sceneworld-scene"
    except (ImportError, UsageError) as err:  # weights or SceneWorld not there yet: say so, use the stand-in
        print(f"(shipped scene net or SceneWorld unavailable: {err.__class__.__name__}: {err}; using a stand-in)")
    torch.manual_seed(0)
    net = SceneWorldNet(SceneWorldNetConfig(num_classes=10)).eval()
    return net, Preprocessing(input_size=(112, 112)), synthetic_images(count), None, "untrained SceneWorldNet"


def timed(model: torch.nn.Module, preprocess: Preprocessing, image: np.ndarray, target: int,
          args: argparse.Namespace, batch_size: int, split: Split | None
          ) -> tuple[float, float, tuple[int, ...], int]:
    """CPU and wall seconds, removal sequence and number of candidates scored for one image; ``split``
    None runs the per-candidate loop."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = minimal_image(model, image, target, preprocess, segments=args.segments, fill=args.fill,
                           batch_size=batch_size, device=args.device, incremental=split is not None, split=split)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    kept = result.segmentation.num_regions
    candidates = sum(kept - t for t in range(len(result.steps)))
    return cpu, wall, tuple(s.region for s in result.steps), candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--segments", type=int, default=40)
    parser.add_argument("--fill", default="mean", choices=["mean", "blur", "gradient"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, preprocess, images, targets, name = scene_setup(args.images)
    model = model.to(args.device)
    if targets is None:
        with torch.no_grad():
            targets = model(preprocess.batch(images, args.device)).argmax(1).tolist()
    else:  # keep the images the network gets right: only those have minimal images
        with torch.no_grad():
            predicted = model(preprocess.batch(images, args.device)).argmax(1).tolist()
        keep = [i for i, (p, t) in enumerate(zip(predicted, targets, strict=True)) if p == t]
        images, targets = [images[i] for i in keep], [targets[i] for i in keep]
    split, reason = split_model(model, images[0].shape[:2])
    timed(model, preprocess, images[0], targets[0], args, args.batch_size, split)  # warm-up, both paths: the
    timed(model, preprocess, images[0], targets[0], args, 1, None)  # first call of each pays one-off costs
    fast, loop, fast_wall, loop_wall, candidates = 0.0, 0.0, 0.0, 0.0, 0
    for image, target in zip(images, targets, strict=True):  # alternate, so load changes hit both alike
        cpu_f, wall_f, sequence_f, count = timed(model, preprocess, image, target, args, args.batch_size, split)
        cpu_l, wall_l, sequence_l, _ = timed(model, preprocess, image, target, args, 1, None)
        if sequence_f != sequence_l:
            raise SystemExit("the fast path and the per-candidate loop disagree on a removal sequence")
        fast, loop, fast_wall, loop_wall = fast + cpu_f, loop + cpu_l, fast_wall + wall_f, loop_wall + wall_l
        candidates += count
    load = os.getloadavg()[0]
    print(f"network: {name}; {len(images)} images, {args.segments} segments asked, fill {args.fill}, "
          f"{args.threads} thread(s), device {args.device}; {candidates} candidates scored; load average {load:.1f}")
    print(f"window engine: {reason if split is not None else 'not applicable: ' + reason}")
    print(f"fast path ({args.batch_size} per batch): {fast:6.2f} CPU s = {len(images) / fast * 60:6.1f} images/min, "
          f"{fast / candidates * 1e3:.2f} ms per candidate ({fast_wall:.2f} s wall)")
    print(f"one pass per candidate: {loop:6.2f} CPU s = {len(images) / loop * 60:6.1f} images/min, "
          f"{loop / candidates * 1e3:.2f} ms per candidate ({loop_wall:.2f} s wall)")
    print(f"wall-clock speedup: {loop_wall / fast_wall:.1f}")
    print(f"speedup: {loop / fast:.1f}")

if __name__ == "__main__":
    main()
