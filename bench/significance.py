"""What label confidence costs, and how well its null is calibrated.

1. Overhead: a dissection (SceneWorld scene net conv5 and conv4, in-memory SceneWorld scenes) with the
   significance/bootstrap hook and post-processing, against the same dissection with the hook a no-op and
   no confidence columns; interleaved repeats, medians of wall and CPU seconds. Goal: ratio <= 1.20.
2. Calibration: planted null units (blurred noise, independent of every label; tests/planted_significance.py)
   over several seeds: the share of all null unit × concept p-values below 0.05 and 0.01, and the share of
   null units called significant detectors (nominal FDR 0.05). The 50 null units of one seed all blur the
   same blue channel, so they are nearly one draw; the second table uses 200 independent smooth null units
   per seed and quantile (``write_noise_model``): per concept, the share below 0.05 and the KS p against
   uniform.
3. ``--resnet W``: random-weight torchvision ResNet-18 layer4 on the Broden export W (e.g. 100 SceneWorld
   scenes from ``unitscope world W --n 100``): significant vs IoU-only detectors.
Last line: ``ratio: X.XX`` (wall seconds with / without). ``--overhead-only`` skips the calibration.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import render_probe
from planted import PlantedProbe
from planted_significance import FIRST_NULL, write_noise_model, write_significance_model

from unitscope.dissection import run as run_module
from unitscope.dissection.confidence import LayerConfidence
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.models.loading import load_model
from unitscope.stats.evidence import LabelEvidence


def _no_confidence(iou: np.ndarray, *args: object, **kwargs: object) -> LayerConfidence:
    nan = np.full(iou.shape[0], np.nan)
    frame = pd.DataFrame({"p_value": nan, "q_value": nan, "significant": True, "margin": nan, "stability": nan})
    return LayerConfidence(frame, {})


def timed(func: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    func()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def overhead(repeats: int = 3, n: int = 300) -> float:
    probe = render_probe(n, 112)
    model = load_model("sceneworld-scene")
    settings = DissectSettings(batch_size=32, workers=0)

    def run() -> None:
        dissect(model, ("conv4", "conv5"), probe, None, settings=settings, progress=False)

    def bare() -> None:
        with (mock.patch.object(LabelEvidence, "update", lambda *a, **k: None),
              mock.patch.object(run_module, "layer_confidence", _no_confidence)):
            run()

    bare()  # warm-up
    on, off = [], []
    for _ in range(repeats):
        off.append(timed(bare))
        on.append(timed(run))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in (("with", on), ("without", off))}
    for key, (wall, cpu) in med.items():
        print(f"dissection {key} confidence: {wall:.2f} s wall, {cpu:.2f} s CPU (median of {repeats}, {n} images)")
    return med["with"][0] / med["without"][0]


def calibration(seeds: int = 4, nulls: int = 50) -> None:
    below05 = below01 = pairs = significant = units = 0
    captured: dict[str, np.ndarray] = {}
    original = run_module.layer_confidence

    def spy(iou: np.ndarray, overlap: object, evidence: LabelEvidence, concepts: object,
            *args: object, **kwargs: object) -> LayerConfidence:
        from unitscope.stats.significance import p_values

        mean, var = evidence.moments.moments(overlap.label_category)  # type: ignore[attr-defined]
        numbers = [c.number for c in concepts.concepts]  # type: ignore[attr-defined]
        inter = overlap.intersection.double().numpy()  # type: ignore[attr-defined]
        is_concept = np.zeros(iou.shape[1], bool)
        is_concept[numbers] = True
        captured["p"] = p_values(inter, mean, var, is_concept)[:, numbers]
        return original(iou, overlap, evidence, concepts, *args, **kwargs)  # type: ignore[arg-type]

    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            with mock.patch.object(run_module, "layer_confidence", spy):
                result = dissect(write_significance_model(Path(tmp), nulls, seed), ["0"],
                                 PlantedProbe(80, seed=seed), None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                 settings=DissectSettings(quantile=0.1, bootstrap=0, workers=0),
                                 progress=False)
            p = captured["p"][FIRST_NULL:]
            below05 += int((p < 0.05).sum())
            below01 += int((p < 0.01).sum())
            pairs += p.size
            u = result.layers["0"].units
            significant += int(u.loc[u["unit"] >= FIRST_NULL, "significant"].sum())
            units += nulls
    print(f"null calibration: {below05 / pairs:.3f} of {pairs} null unit x concept p-values below 0.05, "
          f"{below01 / pairs:.3f} below 0.01")
    print(f"null units called significant: {significant} of {units} ({significant / units:.3f}; nominal FDR 0.05)")


def independent_calibration(seeds: int = 3, units: int = 200) -> None:
    from scipy.stats import kstest

    from unitscope.dissection import confidence

    captured: list[np.ndarray] = []
    original = confidence.p_values

    def keep(*args: object, **kwargs: object) -> np.ndarray:
        p = original(*args, **kwargs)  # type: ignore[arg-type]
        captured.append(p)
        return p

    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(confidence, "p_values", keep):
        for seed in range(seeds):
            for quantile in (0.1, 0.02):
                settings = DissectSettings(quantile=quantile, bootstrap=0, workers=0, upsample="bilinear")
                result = dissect(write_noise_model(Path(tmp), units, seed), ["1"], PlantedProbe(80, seed=seed),
                                 None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), settings=settings,
                                 progress=False)
                p = captured[-1]
                cells = []
                for concept in result.concepts.concepts:
                    column = p[:, concept.number]
                    ks = kstest(column, "uniform").pvalue
                    cells.append(f"{concept.name} {(column < 0.05).mean():.3f} (KS {ks:.2g})")
                significant = int(result.layers["1"].units["significant"].sum())
                print(f"independent nulls, seed {seed}, quantile {quantile}: {significant} of {units} significant; "
                      f"below 0.05: {', '.join(cells)}")


def resnet(world: str, seeds: int = 3) -> None:
    import torch

    for seed in range(seeds):
        torch.manual_seed(seed)  # torchvision's initialisation draws from the global generator
        model = load_model("resnet18")
        result = dissect(model, ["layer4"], world, None, settings=DissectSettings(workers=0),
                         progress=False)
        total = result.layers["layer4"].table.iloc[-1]
        print(f"random ResNet-18 (seed {seed}) layer4 on {world}: {int(total['detectors'])} significant detectors, "
              f"{int(total['iou_detectors'])} with IoU alone; {result.layers['layer4'].intervals}")


if __name__ == "__main__":
    if "--resnet" in sys.argv:
        resnet(sys.argv[sys.argv.index("--resnet") + 1])
    if "--overhead-only" not in sys.argv:  # the calibration takes a few minutes
        calibration()
        independent_calibration()
    print(f"ratio: {overhead():.2f}")
