"""What the statistics add to each image, measured without the machine's drift: one thread, one process.

``bench/scale.py`` compares two processes started minutes apart, and this shared machine's speed drifts by ~10 %
in half an hour, which moves its marginal ratio by ~0.1. Here, on real batches of the same Broden-format
directory and network (``scale.py --work DIR`` makes them; ``--work`` reuses them), everything runs in one
process at one intra-op thread, each step timed on the thread clock, the least of ``--rounds`` rounds:

- **decode**: reading a sample as the Broden reader does (image and label PNGs);
- **forward**: the network up to the layer (batches of 32);
- **statistics**: every per-batch statistic of a dissection, in a run's order: pass 1 (label encoding, label
  cache, quantile, top-k, histogram, activation cache) and pass 2 (both caches read back, windowed masks,
  ``MaskCounts``, clump autocovariance, IoU counts, significance and bootstrap sums), with the thresholds of
  those images' own quantile.

Last line: ``statistics share: X.XX`` = (decode + forward + statistics) / (decode + forward), the marginal ratio
a dissection would have if running its lanes and folding thread cost nothing beyond their work. It is a lower
bound: the least of several rounds over the same images (warm caches and allocator), one thread with nothing
beside it. What a run really spends per phase is in its own ``summary.json`` (``phases``), which
``bench/scale.py`` turns into CPU per further image (docs/performance.md, runs L and M, compares the two).

    python bench/statistics_share.py --work DIR [--model alexnet --layer conv5] [--batches 8] [--rounds 5]
        [--images 2000] [--image-size 224]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from scale import setup

BATCH = 32


@contextlib.contextmanager
def timed(clock: collections.Counter[str], key: str) -> Iterator[None]:
    """Adds the thread-clock seconds of the block to ``clock[key]``."""
    start = time.thread_time()
    yield
    clock[key] += time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scale.py's folder (exports and checkpoints)")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--layer", default="conv5")
    parser.add_argument("--images", type=int, default=2000, help="the export to read (scale.py's broden-N)")
    parser.add_argument("--image-size", type=int, default=224, help="image side of the export (px)")
    parser.add_argument("--batches", type=int, default=8, help="batches of 32 images (its first images)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from unitscope.capture import LayerCapture
    from unitscope.data.broden import BrodenProbe
    from unitscope.dissection.cache import ActivationCache
    from unitscope.dissection.engine import top_map_pixels
    from unitscope.dissection.label_cache import LabelCache
    from unitscope.dissection.sparse_masks import WindowedMasks
    from unitscope.dissection.upsample import Upsampler
    from unitscope.models.layers import resolve_layer
    from unitscope.models.loading import load_model
    from unitscope.stats import TopImages, TopQuantile
    from unitscope.stats.evidence import LabelEvidence
    from unitscope.stats.histogram import ActivationHistogram
    from unitscope.stats.iou import ConceptOverlap, MaskCounts
    from unitscope.stats.labels import LabelBatch, LabelEncoder

    images = args.batches * BATCH
    if images > args.images:
        raise SystemExit(f"--batches {args.batches} needs {images} images; the export has --images {args.images}")
    args.work.mkdir(parents=True, exist_ok=True)
    data, weights = setup(args.work, [args.images], [(args.model, args.layer)], args.image_size, {})
    probe = BrodenProbe(data[args.images])
    loaded = load_model(args.model, weights[args.model] or None)
    path = resolve_layer(loaded.module, args.layer)
    encoder = LabelEncoder(probe.concepts, probe.label_size)
    rows_of = [np.arange(b * BATCH, (b + 1) * BATCH) for b in range(args.batches)]
    best: dict[str, float] = {}

    def keep_least(clock: collections.Counter[str]) -> None:
        for key, seconds in clock.items():
            best[key] = min(best.get(key, float("inf")), seconds / images * 1e3)

    with LayerCapture(loaded.module, [path]) as capture:
        for _ in range(args.rounds):
            clock: collections.Counter[str] = collections.Counter()
            samples, acts = [], []
            for rows in rows_of:
                with timed(clock, "decode"):
                    samples.append([probe[int(i)] for i in rows])
                batch = loaded.preprocess.batch([s.image for s in samples[-1]], loaded.device)
                with timed(clock, "forward"):
                    acts.append(capture.run(batch)[path].contiguous())
            keep_least(clock)
        units, h, w = acts[0].shape[1:]
        whole = TopQuantile(units, 0.005, images * h * w)
        for a in acts:
            whole.update(a.transpose(0, 1).reshape(units, -1))
        limits = whole.thresholds().float()
        input_size = loaded.preprocess.input_size or probe.image_size
        masker = WindowedMasks.build(Upsampler.build("bilinear", (h, w), probe.label_size, input_size, None, None))
        for _ in range(args.rounds):
            clock = collections.Counter()
            folder = Path(tempfile.mkdtemp(prefix="unitscope-share-"))
            overlap = ConceptOverlap(units, probe.concepts)
            evidence = LabelEvidence(units, overlap.num_labels, len(overlap.categories), h * w, encoder.num_pixels,
                                     grid=(h, w), spill=folder / "evidence")
            quantile, histogram = TopQuantile(units, 0.005, images * h * w), ActivationHistogram(units)
            topk = TopImages(units, 10, top_map_pixels(args.layer, (units, h, w), 10))
            cache = ActivationCache(folder / "cache", (units, h, w), images, True)
            labels_cache = LabelCache(folder / "labels", images, encoder.num_pixels, len(encoder.categories),
                                      encoder.num_labels)
            for rows, batch_samples, a in zip(rows_of, samples, acts, strict=True):
                with timed(clock, "pass 1: label encoding"):
                    encoded = [encoder.encode(s) for s in batch_samples]
                with timed(clock, "pass 1: label cache"):
                    labels_cache.write(list(rows), encoded)
                flat = a.flatten(2)
                scores, low = flat.amax(dim=2), flat.amin(dim=2)
                with timed(clock, "pass 1: quantile"):
                    quantile.update(a.transpose(0, 1).reshape(units, -1))
                with timed(clock, "pass 1: top-k"):
                    topk.update(scores, torch.from_numpy(rows), topk.candidate_peaks(flat, scores),
                                flat if topk.map_pixels else None)
                with timed(clock, "pass 1: histogram"):
                    histogram.update(flat)
                with timed(clock, "pass 1: activation cache"):
                    cache.write(rows, a, quantile.floor(), (low, scores))
            for rows in rows_of:
                with timed(clock, "pass 2: label cache"):
                    labels = LabelBatch.from_encoded(labels_cache.read(rows), encoder)
                with timed(clock, "pass 2: activation cache"):
                    a = torch.from_numpy(cache.read(rows))
                with timed(clock, "pass 2: windowed masks"):
                    image_of, unit_of = masker.active_pairs(a, limits)
                    pixels = masker.pixels(a[image_of, unit_of], limits[unit_of])
                with timed(clock, "pass 2: MaskCounts"):
                    counts = MaskCounts.build(pixels, image_of, labels)
                with timed(clock, "pass 2: clump autocovariance"):
                    clumps = evidence.moments.clump_parts(pixels, unit_of)
                with timed(clock, "pass 2: label counts"):
                    _ = labels.label_counts, labels.position_edges
                with timed(clock, "pass 2: IoU counts"):
                    overlap.update_counts(counts, image_of, unit_of, labels)
                with timed(clock, "pass 2: significance and bootstrap sums"):
                    evidence.update(pixels, image_of, unit_of, labels, rows, counts, clumps)
            keep_least(clock)
    steps = {k: v for k, v in best.items() if k.startswith("pass")}
    statistics = sum(steps.values())
    bare = best["decode"] + best["forward"]
    print(f"{args.model} {args.layer}, {images} images, one thread, ms an image (least of {args.rounds} rounds):")
    print(f"  decode {best['decode']:.3f}, forward {best['forward']:.3f}, statistics {statistics:.3f}")
    for key, ms in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"    {ms:7.3f}  {key}")
    print(f"statistics share: {(bare + statistics) / bare:.2f}")


if __name__ == "__main__":
    main()
