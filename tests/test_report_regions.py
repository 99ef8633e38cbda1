"""Report regions: the "field" rule draws exactly the receptive-field squares of the positions that fire."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.dissection.record import settings_record
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.models.preprocessing import Preprocessing
from unitscope.report.dissection import ReportOptions, build_report
from unitscope.report.outlines import OutlineStyle, outline_region
from unitscope.report.regions import field_sizes_from_rf
from unitscope.report.unit_images import LayerRequest, RegionRenderer

STYLE = OutlineStyle(color=(255, 255, 0), dim=0.5, shade=(0, 0, 0), max_side=64)
# One red dot per image (row, col) in a 32x32 black image; each lands on one position of the stride-4 map.
DOTS = {0: (8, 12), 1: (20, 4), 2: (0, 28)}


class DotNet(nn.Module):
    """``features``: 5x5 stride-4 conv reading the red centre tap (field 5 px, centres 4i);
    ``head``: a 1x1 conv whose unit 0 copies it and unit 1 negates it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 1, 5, stride=4, padding=2, bias=False)
        self.head = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            weight = torch.zeros(1, 3, 5, 5)
            weight[0, 0, 2, 2] = 1.0
            self.features.weight.copy_(weight)
            self.head.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BranchyNet(DotNet):
    """The same net with data-dependent control flow, which torch.fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1:
            return self.head(self.features(x))
        return x


class DotProbe:
    """32x32 black images, each with one red pixel at ``DOTS``."""

    name = "dots"
    concepts = ConceptTable((Concept(1, "dot", "object"),), ("object",))
    image_size = (32, 32)
    label_size = (32, 32)

    def __len__(self) -> int:
        return len(DOTS)

    def __getitem__(self, i: int) -> ProbeSample:
        image = np.zeros((32, 32, 3), np.uint8)
        image[DOTS[i] + (0,)] = 255
        return ProbeSample(i, image)


def loaded(net: nn.Module | None = None) -> LoadedModel:
    return LoadedModel((net or DotNet()).eval(), "dots", Preprocessing(None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))


def square(rows: slice, cols: slice, size: int = 32) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[rows, cols] = True
    return mask


def render(regions: str, images: list[int], field_sizes: dict[str, float] | None = None, batch_size: int = 32,
           style: OutlineStyle = STYLE, net: nn.Module | None = None) -> tuple[RegionRenderer, list[np.ndarray]]:
    renderer = RegionRenderer(loaded(net), DotProbe(), "bilinear", batch_size=batch_size, style=style,  # type: ignore[arg-type]
                              regions=regions, field_sizes=field_sizes)
    tiles = renderer.render({"head": LayerRequest("head", {0: 0.5}, {0: images})})[("head", 0)]
    return renderer, tiles


def test_field_region_is_the_theoretical_square_around_the_firing_position() -> None:
    """Dot (8, 12) fires position (2, 3) only; its field centre is (8, 12), so the region is rows 6-10, cols 10-14."""
    renderer, tiles = render("field", [0, 1])
    probe = DotProbe()
    assert np.array_equal(tiles[0], outline_region(probe[0].image, square(slice(6, 11), slice(10, 15)), STYLE))
    # dot (20, 4): position (5, 1), centre (20, 4)
    assert np.array_equal(tiles[1], outline_region(probe[1].image, square(slice(18, 23), slice(2, 7)), STYLE))
    assert renderer.fields_used["head"].side == 5 and renderer.fields_used["head"].source == "theoretical"
    assert not renderer.fallbacks


def test_field_squares_are_clipped_at_the_border() -> None:
    _, tiles = render("field", [2])  # dot (0, 28): centre (0, 28), square rows -2..2, cols 26..30
    assert np.array_equal(tiles[0], outline_region(DotProbe()[2].image, square(slice(0, 3), slice(26, 31)), STYLE))


def test_empirical_field_size_replaces_the_theoretical_one() -> None:
    renderer, tiles = render("field", [0], field_sizes={"head": 9})
    assert np.array_equal(tiles[0], outline_region(DotProbe()[0].image, square(slice(4, 13), slice(8, 17)), STYLE))
    assert renderer.fields_used["head"].side == 9 and renderer.fields_used["head"].source == "empirical"


def test_activation_rule_is_unchanged() -> None:
    """Bilinear x4 of the one-hot map at (2, 3): weights 0.625/0.875 per axis on rows 8-11, cols 12-15;
    the corners (0.625² < 0.5) drop out, leaving a 12-pixel octagon, not the 5x5 field square."""
    _, tiles = render("activation", [0])
    mask = square(slice(8, 12), slice(12, 16))
    mask[[8, 8, 11, 11], [12, 15, 12, 15]] = False
    assert np.array_equal(tiles[0], outline_region(DotProbe()[0].image, mask, STYLE))


def test_field_region_on_a_thumbnail_is_mapped_proportionally() -> None:
    """Shown at 16x16: the square rows 5.5-10.5, cols 9.5-14.5 of the input keep pixel rows 3-4, cols 5-6."""
    style = OutlineStyle(color=(255, 255, 0), dim=0.5, shade=(0, 0, 0), max_side=16)
    _, tiles = render("field", [0], style=style)
    inside = square(slice(3, 5), slice(5, 7), 16)
    assert tiles[0].shape == (16, 16, 3)
    assert (tiles[0][inside] == [255, 255, 0]).all()  # a 2x2 region is all inner outline
    assert (tiles[0][~inside] != [255, 255, 0]).any(axis=-1).all()


def test_a_field_larger_than_the_image_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """A 40 px field on 32 px images covers (nearly) everything: one warning line, and the page says it."""
    renderer, _ = render("field", [0], field_sizes={"head": 40})
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [renderer.oversized["head"]]
    assert err[0].startswith("warning: layer head: its empirical receptive field (40 px) is larger than the 32x32 px "
                             "image") and "--regions activation" in err[0]
    page = build_report(dot_result(), DotProbe(), loaded(),  # type: ignore[arg-type]
                        ReportOptions(regions="field", field_sizes={"head": 40}))  # type: ignore[arg-type]
    assert "The receptive fields of head are larger than the image" in page
    assert capsys.readouterr().err.count("warning: layer head") == 1  # once per layer, however many images
    small, _ = render("field", [0], field_sizes={"head": 9})
    assert not small.oversized and "warning" not in capsys.readouterr().err


def test_batch_size_does_not_matter_for_field_regions() -> None:
    _, small = render("field", [2, 0, 1], batch_size=1)
    _, large = render("field", [2, 0, 1], batch_size=3)
    assert all(np.array_equal(a, b) for a, b in zip(small, large, strict=True))


def test_untraceable_model_falls_back_to_the_activation_rule() -> None:
    renderer, tiles = render("field", [0], net=BranchyNet())
    _, expected = render("activation", [0])
    assert np.array_equal(tiles[0], expected[0])
    assert "head" in renderer.fallbacks and "trace" in renderer.fallbacks["head"]


def dot_result() -> DissectionResult:
    units = pd.DataFrame({"unit": [0, 1], "label": ["dot", "dot"], "category": ["object", "object"],
                          "iou": [0.5, 0.01], "detector": [True, False], "threshold": [0.5, 0.5],
                          "max_activation": [1.0, 0.0]})
    top = pd.DataFrame({"unit": [0, 0, 1], "rank": [0, 1, 0], "image": [0, 1, 2], "score": [1.0, 1.0, 0.0],
                        "peak_y": [2, 5, 0], "peak_x": [3, 1, 0]})
    table = pd.DataFrame({"category": ["object", "total"], "detectors": [1, 1], "unique": [1, 1]})
    layer = LayerResult("head", "head", (2, 8, 8), units, table, top)
    return DissectionResult({"head": layer}, DotProbe.concepts, settings_record(
        {"upsample": "bilinear", "quantile": 0.005}))


def test_page_states_the_region_rule() -> None:
    result = dot_result()
    field = build_report(result, DotProbe(), loaded(), ReportOptions(regions="field"))  # type: ignore[arg-type]
    assert "unit segmentation" in field and "theoretical receptive-field squares" in field
    assert "theoretical field 5 px" in field and "far larger than where units actually respond" in field
    empirical = build_report(result, DotProbe(), loaded(),  # type: ignore[arg-type]
                             ReportOptions(regions="field", field_sizes={"head": 9.5}))  # type: ignore[arg-type]
    assert "empirical receptive-field squares" in empirical and "empirical field 9.5 px" in empirical
    assert "far larger" not in empirical
    activation = build_report(result, DotProbe(), loaded(), ReportOptions(regions="activation"))  # type: ignore[arg-type]
    assert "upsampled as in the run (bilinear)" in activation and "unit segmentation" not in activation
    assert "field 5 px" not in activation


@pytest.mark.parametrize(("options", "message"), [
    (ReportOptions(regions="boxes"), "unknown region rule"),
    (ReportOptions(field_sizes={"conv9": 10}), "not a layer"),
    (ReportOptions(field_sizes={"head": 0}), "positive"),
])
def test_bad_region_options_are_usage_errors(options: ReportOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_report(dot_result(), DotProbe(), loaded(), options)  # type: ignore[arg-type]


def test_field_sizes_from_an_rf_run(tmp_path: Path) -> None:
    record = {"layers": {"conv5": {"empirical": {"mean": 22.5, "std": 3.0}},
                         "conv1": {"empirical": {"mean": None, "std": None}}}}
    (tmp_path / "rf.json").write_text(json.dumps(record))
    assert field_sizes_from_rf(tmp_path) == {"conv5": 22.5}
    assert field_sizes_from_rf(tmp_path / "rf.json") == {"conv5": 22.5}
    (tmp_path / "bad.json").write_text('{"layers": [1]}')
    with pytest.raises(UsageError, match="unitscope rf --empirical"):
        field_sizes_from_rf(tmp_path / "bad.json")
    with pytest.raises(UsageError, match="cannot read"):
        field_sizes_from_rf(tmp_path / "missing")
