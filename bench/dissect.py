"""Dissection wall time vs a bare forward pass through the same layers, on the same images.

Prints, for torchvision AlexNet conv5 (random weights, 224 px SceneWorld scenes with 112 px labels) and the
SceneWorld scene net conv5 (112 px, 56 px labels): the bare forward time, the dissection time (both passes,
exact quantile, top-k, IoU against every concept) and their ratio; then peak resident memory of a dissection
at n and 4n images (SceneWorld generated on the fly). Last line: ``ratio: X.XX`` for AlexNet. Goal <= 1.5.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import MemoryProbe, best_of, render_probe

from unitscope.capture import LayerCapture
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import LoadedModel, load_model

BATCH = 32


def bare_forward(model: LoadedModel, layer: str, probe: MemoryProbe) -> None:
    """What any analysis must pay at least: preprocess every image and run the network up to ``layer``."""
    with LayerCapture(model.module, [resolve_layer(model.module, layer)], clone=False) as capture:
        for start in range(0, len(probe), BATCH):
            images = [probe[i].image for i in range(start, min(start + BATCH, len(probe)))]
            capture.run(model.preprocess.batch(images))


def compare(model: LoadedModel, layer: str, probe: MemoryProbe) -> float:
    settings = DissectSettings(batch_size=BATCH, workers=0)
    bare_forward(model, layer, probe)  # warm-up
    bare = best_of(3, lambda: bare_forward(model, layer, probe))
    full = best_of(3, lambda: dissect(model, [layer], probe, None, settings=settings,
                                      progress=False))
    print(f"{model.name:>18} {layer}: {len(probe)} images  bare forward {bare:6.2f} s  "
          f"dissection {full:6.2f} s  ratio {full / bare:.2f}")
    return full / bare


def peak_rss_mb(n: int) -> float:
    code = (
        "import resource, torch; torch.set_num_threads(2);"
        "from unitscope.dissection.run import dissect;"
        "from unitscope.dissection.settings import DissectSettings;"
        f"dissect('sceneworld-scene', ['conv5'], 'sceneworld', None, n={n}, progress=False,"
        " settings=DissectSettings(workers=0));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    torch.set_num_threads(2)
    scene_probe = render_probe(256, 112)
    scene_ratio = compare(load_model("sceneworld-scene"), "conv5", scene_probe)
    small, large = peak_rss_mb(250), peak_rss_mb(1000)
    print(f"peak RSS, sceneworld-scene conv5: n=250 {small:.0f} MB, n=1000 {large:.0f} MB "
          f"(growth {large / small:.2f}x)")
    alex_probe = render_probe(128, 224)
    alexnet = load_model("alexnet")
    alexnet_ratio = compare(alexnet, "conv5", alex_probe)
    print(f"scene net ratio: {scene_ratio:.2f}")
    print(f"ratio: {alexnet_ratio:.2f}")


if __name__ == "__main__":
    main()
