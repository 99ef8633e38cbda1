"""Empirical receptive fields, run output and unit segmentations, on hand-computable fixtures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unitscope.data.probe import ConceptTable, ProbeSample
from unitscope.errors import UsageError
from unitscope.receptive import FieldGeometry
from unitscope.receptive.segmentation import segmentation_mask, unit_segmentation
from unitscope.rf.empirical import EmpiricalSettings, empirical_fields, field_size, recentre
from unitscope.rf.output import write_run


class BlockProbe:
    """20x20 black images, each with one bright 7x7 block of its own brightness and place."""

    name = "blocks"
    concepts = ConceptTable((), ())
    image_size = (20, 20)
    label_size = (20, 20)
    blocks: tuple[tuple[int, int, int], ...] = ((100, 2, 3), (255, 9, 8), (200, 12, 1), (0, 0, 0))

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> ProbeSample:
        image = np.zeros((20, 20, 3), dtype=np.uint8)
        value, top, left = self.blocks[index]
        image[top:top + 7, left:left + 7] = value
        return ProbeSample(index, image)


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Pixels / 255, no normalisation: a zero occluder removes exactly a pixel's value."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).double() / 255


def mean_filter() -> nn.Sequential:
    """Unit 0 averages a 5x5x3 window; unit 1 is dead (zero weights)."""
    conv = nn.Conv2d(3, 2, 5, bias=False).double()
    conv.weight.data.zero_()
    conv.weight.data[0] = 1 / 75
    return nn.Sequential(conv, nn.ReLU())


@pytest.mark.parametrize("incremental", [True, False])
def test_a_flat_window_unit_measures_its_own_field(incremental: bool) -> None:
    # Unit 0's top images are the 255 and 200 blocks; at its peak the 5x5 window lies inside the block,
    # so zeroing any one of its 25 pixels lowers the unit by value*3/75 and nothing else does: the mean
    # map is a flat 5x5 square and the size is exactly 5, the theoretical field.
    settings = EmpiricalSettings(topk=2, patch=1, stride=1, fill="zeros", incremental=incremental)
    result = empirical_fields(mean_filter(), "1", BlockProbe(), to_tensor, settings=settings)
    unit, dead = result.units
    assert unit.images == [1, 2] and unit.peaks == [(9, 8), (12, 1)]
    assert unit.size == 5.0 and dead.size is None
    assert result.theoretical.size == 5 and unit.mean_map.shape == (7, 7)
    inside = unit.mean_map[1:6, 1:6]
    expected = (1.0 + 200 / 255) / 2 * 3 / 75
    torch.testing.assert_close(inside, torch.full_like(inside, expected))
    assert unit.mean_map.sum() == pytest.approx(inside.sum())
    assert result.summary() == {"mean": 5.0, "std": 0.0, "units": 1, "dead_units": 1}


def test_recentre_places_the_field_centre_in_the_middle() -> None:
    pixel_map = torch.arange(16.0).reshape(4, 4)
    values, covered = recentre(pixel_map, (0.0, 3.0), radius=1)
    assert values.tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]
    assert covered.tolist() == [[0, 0, 0], [1, 1, 0], [1, 1, 0]]


def test_field_size_is_the_side_of_the_square_of_equal_area() -> None:
    mean_map = torch.zeros(9, 9)
    mean_map[2:5, 3:6] = 1.0  # 9 pixels at the maximum
    mean_map[0, 0] = 0.4  # below half of it
    assert field_size(mean_map, 0.5) == 3.0
    assert field_size(mean_map, 0.3) == pytest.approx(10 ** 0.5)
    assert field_size(torch.zeros(3, 3), 0.5) is None


def test_bad_units_and_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="out of range"):
        empirical_fields(mean_filter(), "1", BlockProbe(), to_tensor, units=[2])
    with pytest.raises(UsageError, match="topk"):
        empirical_fields(mean_filter(), "1", BlockProbe(), to_tensor, settings=EmpiricalSettings(topk=0))
    with pytest.raises(UsageError, match="larger than"):
        empirical_fields(mean_filter(), "1", BlockProbe(), to_tensor, settings=EmpiricalSettings(patch=21))


def test_run_directory_is_written_whole(tmp_path: Path) -> None:
    settings = EmpiricalSettings(topk=2, patch=1, stride=1, fill="zeros")
    result = empirical_fields(mean_filter(), "1", BlockProbe(), to_tensor, settings=settings)
    out = tmp_path / "run"
    write_run(out, {"relu": result}, {"model": "mean-filter"})
    record = json.loads((out / "rf.json").read_text())
    layer = record["layers"]["relu"]
    assert layer["theoretical"] == {"size": 5, "stride": 1, "start": 2.0}
    assert layer["empirical"] == {"mean": 5.0, "std": 0.0, "units": 1, "dead_units": 1}
    assert layer["units"] == {"0": 5.0, "1": None} and record["model"] == "mean-filter"
    assert (out / "rf.csv").read_text().splitlines()[1].startswith("relu,1,5,1,2.0,5.0,0.0,1,1")
    assert (out / "rf.png").stat().st_size > 0 and (out / "1" / "unit_0.png").is_file()
    maps = np.load(out / "1" / "maps.npz")
    assert maps["maps"].shape == (2, 7, 7) and maps["units"].tolist() == [0, 1]
    assert not (tmp_path / "run.partial").exists()


def test_segmentation_keeps_the_fields_of_active_positions() -> None:
    geometry = FieldGeometry(3, 2, 0.0)
    activation = torch.zeros(3, 3)
    activation[1, 1] = 5.0  # centre at pixel (2, 2): keep rows and columns 1..3
    activation[0, 0] = 1.0  # below the threshold
    image = np.full((6, 6, 3), 100, dtype=np.uint8)
    out = unit_segmentation(image, activation, 2.0, geometry)
    kept = np.zeros((6, 6), dtype=bool)
    kept[1:4, 1:4] = True
    assert (out[kept] == 100).all() and (out[~kept] == 20).all()
    only_centre = segmentation_mask(activation, 2.0, geometry, (6, 6), field_size=1)
    assert only_centre.nonzero() == (np.array([2]), np.array([2]))


def test_segmentation_clips_at_the_border_and_scales_to_the_image() -> None:
    geometry = FieldGeometry(3, 2, 0.0)
    activation = torch.zeros(3, 3)
    activation[0, 0] = 1.0  # centre (0, 0): rows/columns -1..1 clipped to 0..1
    mask = segmentation_mask(activation, 0.5, geometry, (6, 6))
    assert mask.sum() == 4 and mask[:2, :2].all()
    # The same position on an image twice the network input's size: centre (0.5, 0.5) → a 6-pixel square.
    big = segmentation_mask(activation, 0.5, geometry, (12, 12), input_size=(6, 6))
    assert big.sum() == 16 and big[:4, :4].all()


def test_segmentation_rejects_bad_images() -> None:
    with pytest.raises(UsageError, match="uint8 HxWx3"):
        unit_segmentation(np.zeros((4, 4), dtype=np.uint8), torch.zeros(2, 2), 0.0, FieldGeometry(3, 2, 0.0))
