"""What pass 1's additions for the report cost per batch: the activation histogram and the top-k maps.

For torchvision AlexNet conv5 and ResNet-18 layer4 (random weights, 224 px, batches of 32 random images):
CPU milliseconds per batch of the forward pass to the layer, of ``ActivationHistogram.update``, and of
``TopImages.update`` with and without ``map_pixels`` (after 20 batches, so the top-k is full). Last line:
``ratio: X.XX`` = (histogram + the maps' extra top-k cost) / forward, for AlexNet conv5 (the worse case).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torchvision

from unitscope.capture import LayerCapture
from unitscope.models.layers import resolve_layer
from unitscope.stats import TopImages
from unitscope.stats.histogram import ActivationHistogram

BATCH = 32
REPEATS = 5


def cpu_ms(func: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median CPU milliseconds of ``func`` (process time: all threads)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        func()
        times.append((time.process_time() - start) * 1000)
    return sorted(times)[len(times) // 2]


def measure(model_name: str, layer: str) -> dict[str, float]:
    torch.manual_seed(0)
    net = torchvision.models.get_model(model_name, weights=None).eval()
    images = torch.rand(BATCH, 3, 224, 224)
    with LayerCapture(net, [resolve_layer(net, layer)]) as capture, torch.no_grad():
        acts = capture.run(images)[resolve_layer(net, layer)]
        forward = cpu_ms(lambda: capture.run(images))
    units, pixels = acts.shape[1], acts.shape[2] * acts.shape[3]
    flat = acts.flatten(2)
    scores, peaks = flat.max(dim=2)
    histogram = ActivationHistogram(units)
    plain, keeping = TopImages(units, 20), TopImages(units, 20, pixels)
    counter = iter(range(10**9))

    def feed(stat: TopImages, maps: torch.Tensor | None) -> None:
        first = next(counter) * BATCH
        stat.update(scores, torch.arange(first, first + BATCH), peaks, maps)

    for _ in range(20):
        feed(plain, None)
        feed(keeping, flat)
    return {"forward": forward, "histogram": cpu_ms(lambda: histogram.update(flat)),
            "topk": cpu_ms(lambda: feed(plain, None)), "topk+maps": cpu_ms(lambda: feed(keeping, flat))}


def main() -> None:
    print(f"CPU ms per batch of {BATCH} at 224 px, {torch.get_num_threads()} torch threads, medians of {REPEATS}")
    print(f"{'model, layer':<18}{'forward':>9}{'histogram':>11}{'top-k':>8}{'top-k+maps':>12}{'extra/forward':>15}")
    first = None
    for model_name, layer in (("alexnet", "conv5"), ("resnet18", "layer4")):
        m = measure(model_name, layer)
        extra = (m["histogram"] + m["topk+maps"] - m["topk"]) / m["forward"]
        first = extra if first is None else first
        print(f"{model_name + ' ' + layer:<18}{m['forward']:9.1f}{m['histogram']:11.1f}{m['topk']:8.1f}"
              f"{m['topk+maps']:12.1f}{extra:15.3f}")
    print(f"ratio: {first:.2f}")


if __name__ == "__main__":
    main()
