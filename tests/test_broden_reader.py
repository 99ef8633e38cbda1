"""BrodenProbe on a hand-written three-image Broden directory in the real file layout."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitscope.data.broden import BrodenProbe, is_broden_dir
from unitscope.data.broden_categories import primary_by_count
from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ProbeSet
from unitscope.errors import UsageError

HEADER = ["image", "split", "ih", "iw", "sh", "sw", "color", "object", "part", "material", "scene", "texture"]
LABELS = [
    ["1", "red-c", "color(2)", "2", "0.5", ""],
    ["2", "wall", "object(2)", "2", "1.0", ""],
    ["3", "wood", "material(3);object(1)", "4", "1.2", "timber"],
    ["4", "leg", "part(1)", "1", "0.1", ""],
    ["5", "kitchen", "scene(1)", "1", "1.0", ""],
    ["6", "banded", "texture(1)", "1", "1.0", ""],
    ["7", "chair", "object(1);part(1)", "2", "0.3", ""],
    ["300", "door", "object(1)", "1", "0.2", ""],
]
COLOR0 = np.array([[1, 1, 0, 0]] * 4)
OBJECT0 = np.array([[2, 2, 7, 0], [2, 2, 7, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
PART0_1 = np.array([[0, 0, 4, 4]] + [[0, 0, 0, 0]] * 3)
PART0_2 = np.array([[0, 0, 0, 0]] * 3 + [[7, 0, 0, 0]])
COLOR1 = np.ones((4, 4), dtype=int)
MATERIAL2 = np.array([[3, 3, 3, 3]] * 2 + [[0, 0, 0, 0]] * 2)
OBJECT2 = np.array([[300, 300, 0, 0], [300, 300, 0, 0], [3, 3, 4, 0], [0, 0, 0, 0]])
GRADIENT = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)


def save_label_png(path: Path, labels: np.ndarray) -> None:
    """Encode labels as R = n % 256, G = n // 256 (the Broden convention), B = 0."""
    rgb = np.zeros((*labels.shape, 3), dtype=np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def index_rows() -> list[list[str]]:
    a = "ade20k/ADE_train_00000001"
    return [
        [f"{a}.jpg", "train", "8", "8", "4", "4", f"{a}_color.png", f"{a}_object.png",
         f"{a}_part_1.png;{a}_part_2.png", "", "5", ""],
        ["dtd/banded_0001.png", "val", "8", "8", "4", "4", "dtd/banded_0001_color.png", "", "", "", "", "6"],
        ["opensurfaces/100.jpg", "train", "8", "8", "4", "4", "", "opensurfaces/100_object.png",
         "4", "opensurfaces/100_material.png;3", "", ""],
    ]


def make_broden(root: Path, with_row0: bool = False) -> Path:
    images = root / "images"
    (images / "ade20k").mkdir(parents=True)
    (images / "dtd").mkdir()
    (images / "opensurfaces").mkdir()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(images / "ade20k/ADE_train_00000001.jpg", quality=100)
    Image.fromarray(GRADIENT).save(images / "dtd/banded_0001.png")
    Image.new("L", (8, 8), 90).save(images / "opensurfaces/100.jpg", quality=100)
    a = images / "ade20k/ADE_train_00000001"
    save_label_png(Path(f"{a}_color.png"), COLOR0)
    save_label_png(Path(f"{a}_object.png"), OBJECT0)
    save_label_png(Path(f"{a}_part_1.png"), PART0_1)
    save_label_png(Path(f"{a}_part_2.png"), PART0_2)
    save_label_png(images / "dtd/banded_0001_color.png", COLOR1)
    save_label_png(images / "opensurfaces/100_object.png", OBJECT2)
    save_label_png(images / "opensurfaces/100_material.png", MATERIAL2)
    write_csv(root / "index.csv", HEADER, index_rows())
    labels = ([["0", "-", "-", "0", "0.0", ""]] if with_row0 else []) + LABELS
    write_csv(root / "label.csv", ["number", "name", "category", "frequency", "coverage", "syns"], labels)
    return root


@pytest.fixture
def broden(tmp_path: Path) -> Path:
    return make_broden(tmp_path / "broden_tiny")


@pytest.mark.parametrize("with_row0", [False, True])
def test_concepts_and_primary_categories(tmp_path: Path, with_row0: bool) -> None:
    probe = BrodenProbe(make_broden(tmp_path / "b", with_row0=with_row0))
    assert isinstance(probe, ProbeSet)
    table = {c.number: (c.name, c.category) for c in probe.concepts.concepts}
    assert table == {
        1: ("red-c", "color"), 2: ("wall", "object"), 3: ("wood", "material"), 4: ("leg", "part"),
        5: ("kitchen", "scene"), 6: ("banded", "texture"), 7: ("chair", "object"), 300: ("door", "object"),
    }
    assert probe.concepts.categories == ("color", "object", "part", "material", "scene", "texture")
    assert 0 not in probe.concepts


def test_sizes_and_metadata(broden: Path) -> None:
    probe = BrodenProbe(broden)
    assert len(probe) == 3
    assert probe.image_size == (8, 8) and probe.label_size == (4, 4)
    assert probe.name == "broden_tiny"
    assert probe.image_path(1) == broden / "images" / "dtd/banded_0001.png"
    assert probe.splits == ("train", "val")
    assert is_broden_dir(broden) and not is_broden_dir(broden / "images")


def test_sample_with_multi_png_cell_and_scene(broden: Path) -> None:
    sample = BrodenProbe(broden)[0]
    assert sample.index == 0
    assert sample.image.dtype == np.uint8 and sample.image.shape == (8, 8, 3)
    assert np.abs(sample.image.astype(int) - [10, 200, 30]).max() <= 3
    assert set(sample.pixel_labels) == {"color", "object", "part"}
    assert sample.image_labels == {"scene": (5,)}
    assert sample.annotated_categories == {"color", "object", "part", "scene"}
    part = sample.pixel_labels["part"]
    assert part.dtype == np.int32 and part.shape == (2, 4, 4)
    np.testing.assert_array_equal(part[0], PART0_1)
    np.testing.assert_array_equal(part[1], PART0_2)
    np.testing.assert_array_equal(sample.pixel_labels["object"], OBJECT0[None])
    np.testing.assert_array_equal(sample.pixel_labels["color"], COLOR0[None])


def test_texture_only_and_exact_png_image(broden: Path) -> None:
    sample = BrodenProbe(broden)[1]
    np.testing.assert_array_equal(sample.image, GRADIENT)
    assert sample.image_labels == {"texture": (6,)}
    assert set(sample.pixel_labels) == {"color"}


def test_green_channel_number_cells_and_grayscale(broden: Path) -> None:
    sample = BrodenProbe(broden)[2]
    assert sample.image.shape == (8, 8, 3)
    assert np.abs(sample.image.astype(int) - 90).max() <= 2
    np.testing.assert_array_equal(sample.pixel_labels["object"], OBJECT2[None])
    assert sample.pixel_labels["object"][0, 0, 0] == 300
    np.testing.assert_array_equal(sample.pixel_labels["material"], np.stack([MATERIAL2, np.full((4, 4), 3)]))
    assert sample.image_labels == {"part": (4,)}


def test_category_selection_zeroes_labels_outside_it(broden: Path) -> None:
    probe = BrodenProbe(broden, categories=["object"])
    assert probe.concepts.categories == ("object",)
    table = {c.number: c.category for c in probe.concepts.concepts}
    assert table == {2: "object", 3: "object", 7: "object", 300: "object"}
    sample = probe[2]
    assert set(sample.pixel_labels) == {"object"} and sample.image_labels == {}
    assert 4 not in probe.concepts
    expected = np.where(OBJECT2 == 4, 0, OBJECT2)
    np.testing.assert_array_equal(sample.pixel_labels["object"], expected[None])
    assert probe[1].annotated_categories == set()


def test_split_and_max_images(broden: Path) -> None:
    val = BrodenProbe(broden, split="val")
    assert len(val) == 1 and val.image_path(0).name == "banded_0001.png"
    assert len(BrodenProbe(broden, max_images=2)) == 2
    with pytest.raises(UsageError, match="splits there: train, val"):
        BrodenProbe(broden, split="test")
    with pytest.raises(UsageError, match="positive"):
        BrodenProbe(broden, max_images=0)


def test_reads_are_repeatable_and_index_checked(broden: Path) -> None:
    probe = BrodenProbe(broden)
    first, again = probe[0], probe[0]
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.pixel_labels["part"], again.pixel_labels["part"])
    with pytest.raises(IndexError):
        probe[3]
    assert [s.index for s in probe] == [0, 1, 2]


def test_probe_survives_pickling_for_worker_processes(broden: Path) -> None:
    probe = pickle.loads(pickle.dumps(BrodenProbe(broden)))
    np.testing.assert_array_equal(probe[2].pixel_labels["object"], OBJECT2[None])
    assert probe.concepts[3].name == "wood"


def test_count_fallback_tie_goes_to_first_listed() -> None:
    assert primary_by_count([("object", 1), ("part", 1)], ["part", "object"]) == "object"
    assert primary_by_count([("material", 3), ("object", 1)], ["object"]) == "object"
    assert primary_by_count([("scene", 2)], ["object"]) is None


# ---- bad inputs: whole directory ----------------------------------------------------------------


def test_missing_index_and_label_csv(broden: Path) -> None:
    (broden / "label.csv").unlink()
    with pytest.raises(UsageError, match=r"no label\.csv"):
        BrodenProbe(broden)
    (broden / "index.csv").unlink()
    with pytest.raises(UsageError, match=r"no index\.csv"):
        BrodenProbe(broden)
    with pytest.raises(UsageError, match="does not exist"):
        BrodenProbe(broden / "nowhere")


def _rewrite_row(root: Path, k: int, row: list[str]) -> None:
    rows = index_rows()
    rows[k] = row
    write_csv(root / "index.csv", HEADER, rows)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["dtd/banded_0001.png", "val", "8", "8", "4"], "line 3 has 5 fields"),
        (["dtd/banded_0001.png", "val", "eight", "8", "4", "4", "", "", "", "", "", "6"], "line 3: ih"),
        (["dtd/banded_0001.png", "val", "8", "8", "4", "4", "", "", "", "", "", "wood"], "line 3: texture cell"),
        (["dtd/banded_0001.png", "val", "8", "8", "4", "4", "", "", "", "", "", "99"], "line 3: texture label 99"),
        (["", "val", "8", "8", "4", "4", "", "", "", "", "", ""], "line 3: the image column is empty"),
        (["dtd/banded_0001.png", "val", "8", "8", "2", "2", "", "", "", "", "", ""], "line 3: label size 2x2"),
    ],
)
def test_malformed_rows_name_their_line(broden: Path, row: list[str], message: str) -> None:
    _rewrite_row(broden, 1, row)
    with pytest.raises(UsageError, match=message):
        BrodenProbe(broden)


def test_bad_header_label_csv_and_category_choice(broden: Path) -> None:
    with pytest.raises(UsageError, match="choose from color, object"):
        BrodenProbe(broden, categories=["objects"])
    write_csv(broden / "label.csv", ["number", "name", "category"], [["1", "red", "color[2]"]])
    with pytest.raises(UsageError, match="line 2: category 'color\\[2\\]' is malformed"):
        BrodenProbe(broden)
    write_csv(broden / "label.csv", ["number", "name"], [["1", "red"]])
    with pytest.raises(UsageError, match=r"label\.csv lacks column"):
        BrodenProbe(broden)
    twice = [["1", "red", "color(1)"], ["1", "x", "color(1)"]]
    write_csv(broden / "label.csv", ["number", "name", "category"], twice)
    with pytest.raises(UsageError, match="line 3: label number 1 is listed twice"):
        BrodenProbe(broden)
    write_csv(broden / "label.csv", ["number", "name", "category"], [["1", "red", "color(1)"]])
    write_csv(broden / "index.csv", ["image", "ih", "iw"], [["a.jpg", "8", "8"]])
    with pytest.raises(UsageError, match=r"index\.csv lacks column"):
        BrodenProbe(broden)


# ---- bad inputs: one sample -----------------------------------------------------------------------


def test_missing_image_is_a_bad_sample(broden: Path) -> None:
    (broden / "images/dtd/banded_0001.png").unlink()
    probe = BrodenProbe(broden)
    with pytest.raises(BadSampleError, match=r"banded_0001\.png.*missing") as info:
        probe[1]
    assert info.value.path == broden / "images/dtd/banded_0001.png"
    assert probe[0].image.shape == (8, 8, 3)


def test_corrupt_image_is_a_bad_sample(broden: Path) -> None:
    (broden / "images/opensurfaces/100.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BadSampleError, match=r"100\.jpg.*cannot be decoded"):
        BrodenProbe(broden)[2]


def test_image_of_wrong_size_is_a_bad_sample(broden: Path) -> None:
    Image.new("RGB", (9, 8)).save(broden / "images/dtd/banded_0001.png")
    with pytest.raises(BadSampleError, match=r"is 8x9 but index\.csv line 3 says 8x8"):
        BrodenProbe(broden)[1]


def test_label_map_of_wrong_size_is_a_bad_sample(broden: Path) -> None:
    save_label_png(broden / "images/dtd/banded_0001_color.png", np.ones((5, 4), dtype=int))
    with pytest.raises(BadSampleError, match=r"banded_0001_color\.png is 5x4 but index\.csv line 3"):
        BrodenProbe(broden)[1]


def test_label_map_with_unknown_number_is_a_bad_sample(broden: Path) -> None:
    save_label_png(broden / "images/dtd/banded_0001_color.png", np.full((4, 4), 8))
    with pytest.raises(BadSampleError, match=r"banded_0001_color\.png \(index\.csv line 3\) holds label 8, which"):
        BrodenProbe(broden)[1]
    save_label_png(broden / "images/dtd/banded_0001_color.png", np.full((4, 4), 200))
    with pytest.raises(BadSampleError, match="holds label 200"):
        BrodenProbe(broden)[1]
    save_label_png(broden / "images/ade20k/ADE_train_00000001_part_2.png", np.full((4, 4), 9))
    with pytest.raises(BadSampleError, match=r"_part_2\.png \(index\.csv line 2\) holds label 9"):
        BrodenProbe(broden)[0]


def test_grayscale_or_missing_label_png_is_a_bad_sample(broden: Path) -> None:
    Image.new("L", (4, 4), 1).save(broden / "images/dtd/banded_0001_color.png")
    with pytest.raises(BadSampleError, match="is a L image"):
        BrodenProbe(broden)[1]
    (broden / "images/dtd/banded_0001_color.png").unlink()
    with pytest.raises(BadSampleError, match=r"banded_0001_color\.png .*missing"):
        BrodenProbe(broden)[1]


def test_bad_sample_error_is_a_usage_error() -> None:
    assert issubclass(BadSampleError, UsageError)
