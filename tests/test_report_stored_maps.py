"""The report draws from the top maps pass 1 stored, with the regions of a forward pass; unit pages are complete."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from planted import PlantedProbe

from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.models.loading import LoadedModel, load_model
from unitscope.report.dissection import ReportOptions
from unitscope.report.run_report import render_report
from unitscope.stats.histogram import NUM_BINS, bin_keys

# Strided convolutions, so regions depend on the run's rf upsampling and the field rule has real squares.
SOURCE = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1))
"""
UNIT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
K = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DissectionResult, str]:
    folder = tmp_path_factory.mktemp("stored")
    (folder / "net.py").write_text(SOURCE)
    spec = f"{folder / 'net.py'}:build"
    result = dissect(spec, ["1", "2"], PlantedProbe(20), folder / "run", progress=False,
                     settings=DissectSettings(quantile=0.2, topk=K, bootstrap=0), **UNIT)  # type: ignore[arg-type]
    return result, spec


def model_of(spec: str) -> LoadedModel:
    loaded = load_model(spec)
    loaded.preprocess = loaded.preprocess.with_overrides(None, UNIT["mean"], UNIT["std"])
    return loaded


def pixels(directory: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(directory)): np.asarray(Image.open(p)) for p in sorted(directory.rglob("*"))
            if p.suffix in (".png", ".jpg")}


def test_the_run_stores_each_units_maps_on_its_top_images(run: tuple[DissectionResult, str]) -> None:
    result, spec = run
    reloaded = DissectionResult.load(result.run_dir)  # type: ignore[arg-type]
    net = model_of(spec).module
    probe = PlantedProbe(20)
    for name, index in (("1", 2), ("2", 3)):
        layer = reloaded.layers[name]
        assert reloaded.record.layer(name).top_maps == "top_maps.npy"
        maps = layer.top_maps
        assert maps is not None and maps.shape == (layer.shape[0], K, *layer.shape[1:]) and maps.dtype == np.float32
        images = torch.stack([torch.from_numpy(probe[i].image).permute(2, 0, 1).float() / 255 for i in range(20)])
        with torch.no_grad():
            acts = net[:index](images).numpy()
        top = layer.top_images.sort_values(["unit", "rank"])
        expected = acts[top["image"].to_numpy(), top["unit"].to_numpy()].reshape(maps.shape)
        np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
        # the histogram counted every activation of every unit over the probe set
        counts = layer.histogram
        assert counts is not None and counts.shape == (layer.shape[0], NUM_BINS)
        keys = bin_keys(torch.from_numpy(acts).transpose(0, 1).reshape(layer.shape[0], -1))
        for unit in range(layer.shape[0]):
            assert np.array_equal(counts[unit], np.bincount(keys[unit].numpy(), minlength=NUM_BINS))


@pytest.mark.parametrize("regions", ["activation", "field"])
def test_stored_maps_give_the_regions_of_a_forward_pass(run: tuple[DissectionResult, str], tmp_path: Path,
                                                         regions: str) -> None:
    result, spec = run
    loads: list[str] = []

    def loader() -> LoadedModel:
        loads.append("model")
        return model_of(spec)

    options = ReportOptions(regions=regions, image_threads=2)
    stored = DissectionResult.load(result.run_dir)  # type: ignore[arg-type]
    from unitscope.dissection.reopen import Trust

    # the field rule traces the network: the run's model file is this test's own, so it opts in to its code
    render_report(stored, options, model=None, probe=PlantedProbe(20), out=tmp_path / "stored",
                  trust=Trust(model_code=True))
    older = tmp_path / "older"  # a run from before stored maps: no top_maps.npy, no histogram, no record fields
    shutil.copytree(result.run_dir, older)  # type: ignore[arg-type]
    summary = json.loads((older / "summary.json").read_text())
    for layer in summary["layers"]:
        (older / layer["directory"] / "top_maps.npy").unlink()
        (older / layer["directory"] / "histogram.npz").unlink()
        del layer["top_maps"], layer["histogram"]
    (older / "summary.json").write_text(json.dumps(summary))
    from unitscope.report.dissection import build_report

    old = DissectionResult.load(older)
    assert all(layer.top_maps is None and layer.histogram is None for layer in old.layers.values())
    build_report(old, PlantedProbe(20), loader, options, tmp_path / "forward")
    assert loads == ["model"]  # the older run needs the network
    a, b = pixels(tmp_path / "stored"), pixels(tmp_path / "forward")
    assert a.keys() == b.keys() and len(a) == (4 + 5) * 2  # per unit: its k tiles in one sprite, its card strip
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    page = (tmp_path / "forward" / "units" / "1" / "0.html").read_text()
    assert "did not count" in page  # an older run has no histogram to show


def test_activation_regions_need_no_model(run: tuple[DissectionResult, str], tmp_path: Path) -> None:
    result, _ = run

    def no_model() -> LoadedModel:
        raise AssertionError("the report loaded the model although the run stored its maps")

    from unitscope.report.dissection import build_report

    html = build_report(result, PlantedProbe(20), no_model, ReportOptions(), tmp_path)
    assert 'href="units/2/0.html"' in html


def test_unit_page_shows_k_images_five_concepts_and_the_histogram(run: tuple[DissectionResult, str],
                                                                  tmp_path: Path) -> None:
    result, spec = run
    render_report(result, model=model_of(spec), probe=PlantedProbe(20), out=tmp_path)
    for name, units in (("1", 4), ("2", 5)):
        for unit in range(units):
            page = (tmp_path / "units" / name / f"{unit}.html").read_text()
            assert page.count("<figure>") == K
            sprite = Image.open(tmp_path / "units" / name / str(unit) / "top.jpg")
            assert sprite.width == K * sprite.height  # the K top images in one row of square cells
            concepts = page.split("<h2>Top concepts</h2>", 1)[1].split("</table>", 1)[0]
            assert concepts.count("<tr><td") == 5  # one row per concept (the header row holds <th>)
            svg = (tmp_path / "units" / name / str(unit) / "histogram.svg").read_text()
            assert svg.startswith("<svg") and svg in page
            threshold = float(result.layers[name].units.loc[unit, "threshold"])
            assert f"threshold {threshold:.3g}" in svg and 'class="thr"' in svg
            bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width', svg)
            assert bars  # at least one bar of counts


def test_layers_whose_maps_are_too_large_keep_none(caplog: pytest.LogCaptureFixture) -> None:
    from unitscope.dissection.engine import TOP_MAPS_BYTES, top_map_pixels

    assert top_map_pixels("layer4", (512, 7, 7), 20) == 49  # ResNet-18 layer4: 2 MB
    huge = (64, 224, 224)  # VGG-16 conv1_1 at 224 px: 257 MB
    assert TOP_MAPS_BYTES < 4 * 64 * 20 * 224 * 224
    with caplog.at_level("WARNING"):
        assert top_map_pixels("conv1", huge, 20) == 0
    assert "conv1" in caplog.text and "reruns the network" in caplog.text
