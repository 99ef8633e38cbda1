"""Unit images of the report: the outlined region is exactly the thresholded, upsampled activation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage.segmentation import find_boundaries
from torch import nn

from unitscope.data.errors import BadSampleError
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.dissection.record import settings_record
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.models.preprocessing import Preprocessing
from unitscope.report.outlines import OutlineStyle, outline_region, outline_regions, region_boundaries, tile_images
from unitscope.report.unit_images import LayerRequest, RegionRenderer, unit_card_image

STYLE = OutlineStyle(color=(255, 255, 0), dim=0.5, shade=(0, 0, 0), max_side=64)
# Red boxes per image (rows, cols), aligned to the 2-pixel grid of the stride-2 layer.
BOXES = {0: (slice(4, 8), slice(8, 14)), 1: (slice(0, 6), slice(2, 6)), 2: (slice(10, 14), slice(10, 16))}


class StridedNet(nn.Module):
    """``features``: 2x2 stride-2 means of red (unit 0) and blue (unit 1); ``head``: the two swapped."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 2, 2, stride=2, bias=False)
        self.head = nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            weight = torch.zeros(2, 3, 2, 2)
            weight[0, 0] = 0.25
            weight[1, 2] = 0.25
            self.features.weight.copy_(weight)
            self.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(2, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BoxProbe:
    """16x16 black images with one red box (``BOXES``) and a blue right half in odd images."""

    name = "boxes"
    concepts = ConceptTable((Concept(1, "box", "object"),), ("object",))
    image_size = (16, 16)
    label_size = (16, 16)

    def __init__(self, n: int = 3, bad: tuple[int, ...] = ()) -> None:
        self.n = n
        self.bad = bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        if i in self.bad:
            raise BadSampleError(f"image {i} is corrupt")
        image = np.zeros((16, 16, 3), np.uint8)
        image[BOXES[i % 3] + (0,)] = 255
        if i % 2:
            image[:, 8:, 2] = 255
        return ProbeSample(i, image)


def planted_model() -> LoadedModel:
    return LoadedModel(StridedNet().eval(), "strided", Preprocessing(None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))


def box_mask(i: int) -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[BOXES[i % 3]] = True
    return mask


def test_outline_by_hand() -> None:
    image = np.full((10, 10, 3), 100, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[2:8, 3:8] = True
    out = outline_region(image, mask, STYLE)
    assert out[5, 5].tolist() == [100, 100, 100]  # inside, off the ring: untouched
    assert out[0, 0].tolist() == [50, 50, 50]  # outside: halfway to the black shade
    assert out[2, 5].tolist() == [255, 255, 0]  # inner ring: outline colour
    assert out[1, 5].tolist() == [0, 0, 0]  # outer ring: shade
    assert out[5, 8].tolist() == [0, 0, 0] and out[5, 7].tolist() == [255, 255, 0]


def test_boundaries_equal_skimage_find_boundaries() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((12, 9, 11)) < rng.random((12, 1, 1))
    inner, outer = region_boundaries(masks)
    for m, i, o in zip(masks, inner, outer, strict=True):
        assert np.array_equal(i, find_boundaries(m, mode="inner"))
        assert np.array_equal(o, find_boundaries(m, mode="outer"))


def test_outline_rejects_mismatched_mask() -> None:
    with pytest.raises(UsageError, match="upsample"):
        outline_regions(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), bool))


@pytest.mark.parametrize("geometry", [None, lambda path, size: (2.0, 0.5)])
def test_planted_unit_outlines_its_box(geometry: object) -> None:
    """Bilinear, and rf with the layer's true geometry (field centres 2i + 0.5), both recover the box."""
    probe = BoxProbe()
    mode = "bilinear" if geometry is None else "rf"
    renderer = RegionRenderer(planted_model(), probe, mode, geometry, batch_size=2, style=STYLE)  # type: ignore[arg-type]
    tiles = renderer.render({"features": LayerRequest("features", {0: 0.5}, {0: [0, 2]})})[("features", 0)]
    for tile, i in zip(tiles, [0, 2], strict=True):
        assert np.array_equal(tile, outline_region(probe[i].image, box_mask(i), STYLE))
    assert tiles[0][4, 8].tolist() == [255, 255, 0] and tiles[0][5, 10].tolist() == [255, 0, 0]


def test_rf_geometry_moves_the_region() -> None:
    """Field centres 2 px further right and down than the plain resize assumes: the region follows."""
    probe = BoxProbe()
    renderer = RegionRenderer(planted_model(), probe, "rf", lambda path, size: (2.0, 2.5), style=STYLE)
    tile = renderer.render({"features": LayerRequest("features", {0: 0.5}, {0: [0]})})[("features", 0)][0]
    shifted = np.zeros((16, 16), bool)
    shifted[6:10, 10:16] = True
    assert np.array_equal(tile, outline_region(probe[0].image, shifted, STYLE))


def test_every_layer_in_one_pass_and_batch_size_does_not_matter() -> None:
    probe = BoxProbe(n=6)
    requests = {
        "features": LayerRequest("features", {0: 0.5, 1: 0.5}, {0: [0, 1, 2], 1: [5, 3]}),
        "head": LayerRequest("head", {0: 0.5, 1: 0.5}, {1: [4, 0]}),
    }
    small = RegionRenderer(planted_model(), probe, "bilinear", batch_size=1, style=STYLE).render(requests)
    large = RegionRenderer(planted_model(), probe, "bilinear", batch_size=4, style=STYLE).render(requests)
    assert small.keys() == large.keys() == {("features", 0), ("features", 1), ("head", 1)}
    for key in small:
        assert all(np.array_equal(a, b) for a, b in zip(small[key], large[key], strict=True))
    # head unit 1 is features unit 0 (the red box), drawn on images 4 and 0 in that order
    assert np.array_equal(small[("head", 1)][0], outline_region(probe[4].image, box_mask(4), STYLE))
    blue = np.zeros((16, 16), bool)
    blue[:, 8:] = True  # odd images: the blue half
    assert np.array_equal(small[("features", 1)][0], outline_region(probe[5].image, blue, STYLE))


def test_large_images_are_shown_as_thumbnails_with_the_region_at_that_size() -> None:
    probe = BoxProbe()
    style = OutlineStyle(color=(255, 255, 0), shade=(0, 0, 0), max_side=8)
    tile = RegionRenderer(planted_model(), probe, "bilinear", style=style).render(
        {"features": LayerRequest("features", {0: 0.5}, {0: [0]})})[("features", 0)][0]
    assert tile.shape == (8, 8, 3)
    small = np.asarray(Image.fromarray(probe[0].image).resize((8, 8), Image.Resampling.LANCZOS))
    mask = np.zeros((8, 8), bool)
    mask[2:4, 4:7] = True  # feature cells of the box: the 8x8 map needs no interpolation
    assert np.array_equal(tile, outline_region(small, mask, style))


def test_unreadable_image_becomes_a_grey_placeholder() -> None:
    probe = BoxProbe(bad=(1,))
    tiles = RegionRenderer(planted_model(), probe, "bilinear", style=STYLE).render(
        {"features": LayerRequest("features", {0: 0.5}, {0: [1, 0]})})[("features", 0)]
    assert (tiles[0] == 200).all() and tiles[0].shape == (16, 16, 3)
    assert np.array_equal(tiles[1], outline_region(probe[0].image, box_mask(0), STYLE))


def test_tile_images_side_by_side() -> None:
    a = np.full((4, 3, 3), 10, np.uint8)
    b = np.full((2, 5, 3), 20, np.uint8)
    strip = tile_images([a, b], gap=2)
    assert strip.shape == (4, 10, 3)
    assert (strip[:, :3] == 10).all() and (strip[:, 3:5] == 255).all()
    assert (strip[:2, 5:] == 20).all() and (strip[2:, 5:] == 255).all()
    with pytest.raises(UsageError):
        tile_images([])


def test_unit_card_image_uses_run_thresholds_and_top_images() -> None:
    probe = BoxProbe()
    units = pd.DataFrame({"unit": [0, 1], "label": ["box", "box"], "category": ["object", "object"],
                          "iou": [0.9, 0.01], "detector": [True, False], "threshold": [0.5, 0.5]})
    top = pd.DataFrame({"unit": [0, 0, 0, 1], "rank": [0, 1, 2, 0], "image": [2, 0, 1, 1],
                        "score": [1.0, 1.0, 1.0, 1.0], "peak_y": [0] * 4, "peak_x": [0] * 4})
    layer = LayerResult("features", "features", (2, 8, 8), units, pd.DataFrame(), top)
    result = DissectionResult({"features": layer}, probe.concepts, settings_record({"upsample": "bilinear"}))
    card = unit_card_image(result, planted_model(), probe, "features", 0, n_images=2, style=STYLE)
    expected = tile_images([outline_region(probe[i].image, box_mask(i), STYLE) for i in (2, 0)])
    assert np.array_equal(card, expected)
    with pytest.raises(UsageError, match="no unit 5"):
        unit_card_image(result, planted_model(), probe, "features", 5)
