"""The fast engine gives the bytes of a plain recomputation, whatever the batching and the loader workers.

A fixed small run (SceneWorld scene net, conv4 + conv5, a Broden export of 24 SceneWorld scenes) is made with
workers 0 and batch 32, again with two loader workers and batch 7, and with three lanes (``--workers auto`` on
3 CPU cores: threads that each read a batch and run the network) and batch 5: ``units.csv`` (IoU, labels,
p-values, q-values, stability) and ``iou.npy`` must be the same bytes. Then the IoU is recomputed through a
reference path that shares nothing with pass 2 but the dense upsampling matrices: every image and label map
decoded afresh from the files, labels encoded by ``LabelBatch.from_samples``, masks from the dense
``Upsampler(maps) > threshold``, counted one image at a time by the dense ``ConceptOverlap.update``.
Last, the probe's files are read once per image: pass 2 reads the label cache only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from unitscope.capture import LayerCapture
from unitscope.data import open_probe
from unitscope.data.broden import BrodenProbe
from unitscope.data.broden_export import write_broden
from unitscope.dissection import loader
from unitscope.dissection.loader import plan_loading
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.dissection.upsample import Upsampler
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import load_model
from unitscope.receptive.theory import alignment_geometry
from unitscope.stats import ConceptOverlap, LabelBatch

LAYERS = ("conv4", "conv5")
QUANTILE = 0.02
N = 24


@pytest.fixture(scope="module")
def broden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_broden(tmp_path_factory.mktemp("data") / "broden", open_probe("sceneworld", n=N, size=64),
                        progress=False)


def _run(broden: Path, out: Path, batch_size: int, workers: int | str) -> Path:
    settings = DissectSettings(quantile=QUANTILE, batch_size=batch_size, workers=workers, bootstrap=50)
    dissect("sceneworld-scene", LAYERS, str(broden), out, settings=settings, progress=False)
    return out


def _files(run: Path) -> dict[str, bytes]:
    return {f"{layer}/{name}": (run / layer / name).read_bytes() for layer in LAYERS
            for name in ("units.csv", "iou.npy")}


def reference_iou(broden: Path, layer: str) -> np.ndarray:
    """[U, L] IoU by the plain path: dense masks of every image, counted image by image."""
    probe = BrodenProbe(broden)
    model = load_model("sceneworld-scene")
    path = resolve_layer(model.module, layer)
    samples = [probe[i] for i in range(len(probe))]
    with LayerCapture(model.module, [path]) as capture:
        acts = capture.run(model.preprocess.batch([s.image for s in samples], model.device))[path]
    units = acts.shape[1]
    values = acts.transpose(0, 1).reshape(units, -1).double().numpy()
    thresholds = torch.from_numpy(np.quantile(values, 1 - QUANTILE, axis=1)).float()
    size = model.preprocess.input_size or probe.image_size  # what the network sees
    stride, start = alignment_geometry(model.module, size)[path]
    upsample = Upsampler.build("rf", tuple(acts.shape[2:]), probe.label_size, size, stride, start)
    overlap = ConceptOverlap(units, probe.concepts)
    for i, sample in enumerate(samples):
        masks = upsample(acts[i:i + 1]) > thresholds[None, :, None, None]
        overlap.update(masks, LabelBatch.from_samples([sample], probe.concepts, probe.label_size))
    return overlap.iou().float().numpy()


def test_batching_and_workers_give_the_same_bytes_and_the_reference_iou(
    broden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _files(_run(broden, tmp_path / "plain", batch_size=32, workers=0))
    assert _files(_run(broden, tmp_path / "workers", batch_size=7, workers=2)) == plain
    monkeypatch.setattr(loader, "available_cores", lambda: 3)  # auto: three lanes, whatever this machine has
    assert plan_loading("auto", "cpu").lanes == 3
    assert _files(_run(broden, tmp_path / "lanes", batch_size=5, workers="auto")) == plain
    for layer in LAYERS:
        iou = np.load(tmp_path / "plain" / layer / "iou.npy")
        assert iou.max() > 0.01  # the run found overlaps worth comparing
        expected = reference_iou(broden, layer)
        assert iou.shape == expected.shape
        assert np.array_equal(iou, expected), f"{layer}: {np.abs(iou - expected).max()} off the reference"


def test_each_probe_file_is_read_once(broden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: Counter[int] = Counter()
    real_item, real_labels = BrodenProbe.__getitem__, BrodenProbe.load_labels

    def counted_item(self: BrodenProbe, i: int):  # type: ignore[no-untyped-def]
        reads[i] += 1
        return real_item(self, i)

    def counted_labels(self: BrodenProbe, i: int):  # type: ignore[no-untyped-def]
        reads[i] += 1
        return real_labels(self, i)

    monkeypatch.setattr(BrodenProbe, "__getitem__", counted_item)
    monkeypatch.setattr(BrodenProbe, "load_labels", counted_labels)
    _run(broden, tmp_path / "once", batch_size=5, workers=0)
    # Image 0 is also read once before the run, for each layer's map size (the small-probe warning).
    assert reads == Counter({0: 2, **{i: 1 for i in range(1, N)}})
    reads.clear()
    monkeypatch.setattr(loader, "available_cores", lambda: 2)
    _run(broden, tmp_path / "lanes", batch_size=5, workers="auto")  # two lanes
    assert reads == Counter({0: 2, **{i: 1 for i in range(1, N)}})
