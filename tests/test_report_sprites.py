"""A unit's top images in one JPEG sprite: layout, CSS cells, rounds of units, the thumbnail cache, --png files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from planted import PlantedProbe

from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel, load_model
from unitscope.report import dissection as report_module
from unitscope.report.dissection import ReportOptions
from unitscope.report.image_files import encode_jpeg, encode_png
from unitscope.report.outlines import OutlineStyle, pack_rgb, unpack_rgb
from unitscope.report.run_report import render_report
from unitscope.report.sprites import WHITE, sprite, strip, unit_rounds
from unitscope.report.unit_images import LayerRequest, Thumbnail, ThumbnailCache, renderer_for
from unitscope.report.unit_pages import cell_style

SOURCE = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
"""
UNIT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
K = 5


def packed(value: int, shape: tuple[int, int]) -> np.ndarray:
    return pack_rgb(np.full((*shape, 3), value, np.uint8))


def test_sprite_puts_each_tile_centred_in_an_equal_cell() -> None:
    tiles = [packed(10, (4, 6)), packed(20, (2, 2))]
    out = unpack_rgb(sprite(tiles))
    assert out.shape == (4, 12, 3)  # two cells of the largest tile, 4 x 6
    assert (out[:, :6] == 10).all()
    assert (out[1:3, 8:10] == 20).all()  # the 2 x 2 tile in the middle of its cell
    background = np.ones((4, 6), bool)
    background[1:3, 2:4] = False
    assert (out[:, 6:][background] == 255).all()
    assert int(sprite([packed(255, (1, 1))])[0, 0]) == WHITE


def test_strip_is_top_aligned_with_white_gaps() -> None:
    out = unpack_rgb(strip([packed(10, (3, 2)), packed(20, (1, 2))], gap=1))
    assert out.shape == (3, 5, 3)
    assert (out[:, 2] == 255).all() and (out[0, 3:] == 20).all() and (out[1:, 3:] == 255).all()


def test_cell_style_aligns_the_cell_edges() -> None:
    assert cell_style(0, 5, (96, 128)) == {"size": "500% 100%", "position": "0% 0", "ratio": "128 / 96"}
    assert cell_style(2, 5, (96, 128))["position"] == "50% 0"
    assert cell_style(4, 5, (96, 128))["position"] == "100% 0"
    assert cell_style(0, 1, (8, 8))["position"] == "0% 0"
    with pytest.raises(UsageError):
        cell_style(5, 5, (8, 8))


def test_rounds_hold_whole_units_in_order_within_the_bound() -> None:
    images = {u: list(range(u, u + 3)) for u in range(5)}
    request = LayerRequest("conv", {u: float(u) for u in images}, images,
                           {u: np.full((3, 2, 2), u, np.float32) for u in images})
    rounds = unit_rounds({"a": request, "b": LayerRequest("fc", {7: 0.5}, {7: list(range(8))})}, 7)
    assert [{n: list(r.images) for n, r in chunk.items()} for chunk in rounds] == [
        {"a": [0, 1]}, {"a": [2, 3]}, {"a": [4]}, {"b": [7]}]  # unit 7 alone: more tiles than the bound
    assert rounds[1]["a"].thresholds == {2: 2.0, 3: 3.0} and rounds[1]["a"].images[3] == [3, 4, 5]
    assert rounds[1]["a"].maps is not None and float(rounds[1]["a"].maps[3][0, 0, 0]) == 3.0
    assert rounds[3]["b"].maps is None
    with pytest.raises(UsageError):
        unit_rounds({"a": request}, 0)


def test_thumbnail_cache_drops_the_least_recently_used() -> None:
    cache = ThumbnailCache(2)
    thumb = Thumbnail.of(np.zeros((4, 4, 3), np.uint8), OutlineStyle())
    cache.put(1, thumb)
    cache.put(2, thumb)
    assert cache.get(1) is thumb
    cache.put(3, thumb)
    assert cache.get(2) is None and cache.get(1) is thumb and cache.get(3) is thumb and len(cache) == 2
    off = ThumbnailCache(0)
    off.put(1, thumb)
    assert len(off) == 0


def test_packed_pixels_encode_as_their_rgb() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    assert encode_jpeg(pack_rgb(rgb)) == encode_jpeg(rgb)
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(encode_png(pack_rgb(rgb))))), rgb)


class CountingProbe(PlantedProbe):
    """Counts how often each image is decoded."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.loads: list[int] = []

    def load_image(self, index: int) -> np.ndarray:
        self.loads.append(index)
        return self[index].image


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DissectionResult, str]:
    folder = tmp_path_factory.mktemp("sprites")
    (folder / "net.py").write_text(SOURCE)
    spec = f"{folder / 'net.py'}:build"
    result = dissect(spec, ["0", "2"], PlantedProbe(16), folder / "run", progress=False,
                     settings=DissectSettings(quantile=0.2, topk=K, bootstrap=0), **UNIT)  # type: ignore[arg-type]
    return result, spec


def model_of(spec: str) -> LoadedModel:
    loaded = load_model(spec)
    loaded.preprocess = loaded.preprocess.with_overrides(None, UNIT["mean"], UNIT["std"])
    return loaded


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted((directory / "units").rglob("*"))
            if p.is_file()}


def test_rounds_of_units_give_the_same_files_and_decode_each_image_once(
        run: tuple[DissectionResult, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, spec = run
    one = CountingProbe(16)
    render_report(result, ReportOptions(image_threads=0), model=model_of(spec), probe=one, out=tmp_path / "one")
    monkeypatch.setattr(report_module, "TILES_PER_ROUND", K)  # a round per unit
    many = CountingProbe(16)
    render_report(result, ReportOptions(image_threads=0), model=model_of(spec), probe=many, out=tmp_path / "many")
    assert files(tmp_path / "one") == files(tmp_path / "many")
    shown = {int(i) for layer in result.layers.values() for i in layer.top_images["image"]}
    assert sorted(one.loads) == sorted(many.loads) == sorted(shown)


def test_png_option_writes_every_top_image_losslessly_and_links_it(run: tuple[DissectionResult, str],
                                                                    tmp_path: Path) -> None:
    result, spec = run
    model = model_of(spec)
    render_report(result, ReportOptions(png=True), model=model, probe=PlantedProbe(16), out=tmp_path)
    renderer = renderer_for(result, model, PlantedProbe(16))
    from unitscope.report.unit_images import layer_request

    tiles = renderer.render({"2": layer_request(result, "2", [1], K)})[("2", 1)]
    for rank, tile in enumerate(tiles):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "units" / "2" / "1" / f"{rank}.png")), tile)
    page = (tmp_path / "units" / "2" / "1.html").read_text()
    assert re.findall(r'class="cell" href="1/(\d)\.png"', page) == [str(r) for r in range(K)]
    cells = np.asarray(Image.open(tmp_path / "units" / "2" / "1" / "top.jpg"), dtype=np.int16)
    height = cells.shape[0]
    for rank, tile in enumerate(tiles):  # the sprite's cells are the same pictures, up to JPEG's error
        cell = cells[:, rank * height: (rank + 1) * height]
        assert np.abs(cell - tile.astype(np.int16)).mean() < 6
