"""Concept vectors against detector units on the same fresh images, scored with one confusion matrix.

    python bench/segment_vectors.py RUN [--n 200] [--seed 1]

RUN: ``unitscope dissect --model sceneworld-scene --layer conv5 --layer pool5 --n 800 --out RUN``.
Prints mean IoU over all object classes and over those with at least one detector (conv5 or pool5), the
most-frequent-class baseline, the ratio vectors / units, and Net2Vec's units-for-90 % per concept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from unitscope.analysis.inputs import open_inputs
from unitscope.analysis.segment.run import build_segmenter
from unitscope.analysis.segment.scores import ConfusionMeter
from unitscope.analysis.segment.vector_run import detected_classes, fit_for_run, segment_labels
from unitscope.defaults import FIT_N
from unitscope.dissection.result import DissectionResult
from unitscope.models.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fit-n", type=int, default=FIT_N)
    args = parser.parse_args()
    torch.set_num_threads(2)
    run = DissectionResult.load(args.run)
    model = load_model(str(run.record.model))
    start = time.process_time()
    features, vectors = fit_for_run(model, run, None, fit_n=args.fit_n)
    fit_cpu = time.process_time() - start
    classes = [c.number for c in run.concepts.in_category("object")]
    detected = detected_classes(run, tuple(run.layers))
    source = open_inputs(None, "sceneworld", args.n, args.seed, 112)
    meters = {"vectors": ConfusionMeter(classes)}
    segmenters = {}
    for layer in run.layers:
        meters[f"units {layer}"] = ConfusionMeter(classes)
        segmenters[f"units {layer}"] = build_segmenter(features.model, run, layer, "object")
    for lo in range(0, len(source), 16):
        items = [source[i] for i in range(lo, min(lo + 16, len(source)))]
        images = [item.image for item in items]
        labels, _ = segment_labels(features, vectors, images)
        for name, segmenter in segmenters.items():
            unit_labels = segmenter(images).labels.numpy()
            for j, item in enumerate(items):
                meters[name].update(unit_labels[j], item.sample.pixel_labels["object"])
        for j, item in enumerate(items):
            meters["vectors"].update(labels[j], item.sample.pixel_labels["object"])
    print(f"fresh images: {len(source)} (seed {args.seed}); fit: {vectors.report['fit_images']} images, "
          f"{fit_cpu:.1f} CPU s; object classes {len(classes)}, with a detector {len(detected)}")
    print(f"{'method':<16}{'mIoU all':>10}{'mIoU detected':>15}{'pixel acc':>11}")
    results = {name: meter.result(detected) for name, meter in meters.items()}
    for name, r in results.items():
        print(f"{name:<16}{r['mean_iou']:>10.3f}{r['mean_iou_subset']:>15.3f}{r['pixel_accuracy']:>11.3f}")
    base = results["vectors"]
    print(f"{'baseline':<16}{base['baseline_mean_iou']:>10.3f}{'':>15}{base['baseline_pixel_accuracy']:>11.3f}"
          f"  (most frequent class everywhere)")
    for name in segmenters:
        print(f"vectors / {name}: mIoU detected {base['mean_iou_subset'] / results[name]['mean_iou_subset']:.1f}x, "
              f"all {base['mean_iou'] / results[name]['mean_iou']:.1f}x")
    ious = meters["vectors"].class_iou()
    print("concept     fresh IoU  held-out IoU  units for 90 % (of 256)  detectors")
    for name, entry in vectors.report["concepts"].items():  # type: ignore[union-attr]
        number = run.concepts.number_of(name, "object")
        print(f"{name:<12}{ious.get(number, float('nan')):>9.3f}{entry['iou']:>14.3f}{entry['units_for_90pct']!s:>25}"
              f"{'  yes' if number in detected else ''}")


if __name__ == "__main__":
    main()
