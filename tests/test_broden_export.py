"""write_broden on a tiny in-memory probe set: exact files, round trip through BrodenProbe, atomicity."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from unitscope.data.broden import BrodenProbe
from unitscope.data.broden_export import write_broden
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.errors import UsageError

CONCEPTS = ConceptTable(
    (
        Concept(1, "red-c", "color"),
        Concept(2, "wall", "object"),
        Concept(3, "wood", "material"),
        Concept(5, "kitchen", "scene"),
        Concept(300, "door", "object"),
    ),
    ("color", "object", "material", "scene"),
)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return ((np.arange(h * w * 3).reshape(h, w, 3) * 7 + seed * 40) % 256).astype(np.uint8)


def tiny_samples() -> list[ProbeSample]:
    return [
        ProbeSample(
            0,
            _image(6, 6, 0),
            pixel_labels={
                "color": np.array([[[1, 1, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.int32),
                "object": np.array(
                    [[[2, 2, 2], [0, 0, 0], [300, 0, 0]], [[0, 0, 0], [0, 0, 0], [2, 0, 0]]], dtype=np.int32
                ),
            },
            image_labels={"scene": (5,)},
        ),
        ProbeSample(
            1,
            _image(6, 6, 1),
            pixel_labels={
                "material": np.array([[[3, 3, 3], [3, 3, 3], [0, 0, 0]]], dtype=np.int32),
                "object": np.array([[[3, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=np.int32),
            },
        ),
        ProbeSample(
            2,
            _image(5, 6, 2),
            pixel_labels={
                "object": np.zeros((1, 3, 3), dtype=np.int32),
                "material": np.full((1, 3, 3), 3, dtype=np.int32),
            },
            image_labels={"scene": (5,)},
        ),
    ]


@dataclass
class TinyProbe:
    """A ProbeSet held in memory; ``fail_at`` makes one sample raise, to test atomic writing."""

    samples: list[ProbeSample] = field(default_factory=tiny_samples)
    concepts: ConceptTable = CONCEPTS
    name: str = "tiny world"
    image_size: tuple[int, int] = (6, 6)
    label_size: tuple[int, int] = (3, 3)
    fail_at: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> ProbeSample:
        if i == self.fail_at:
            raise RuntimeError("sample generator broke")
        return self.samples[i]


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_round_trip_keeps_images_labels_categories_and_numbers(tmp_path: Path) -> None:
    probe = TinyProbe()
    out = write_broden(tmp_path / "export", probe, progress=False)
    assert out == tmp_path / "export"
    back = BrodenProbe(out)
    assert len(back) == 3
    assert back.concepts == probe.concepts
    assert back.concepts.categories == probe.concepts.categories
    assert back.image_size == (6, 6) and back.label_size == (3, 3)
    for original in probe.samples:
        read = back[original.index]
        np.testing.assert_array_equal(read.image, original.image)
        assert read.annotated_categories == original.annotated_categories
        assert read.image_labels == original.image_labels
        for category, maps in original.pixel_labels.items():
            assert read.pixel_labels[category].dtype == np.int32
            np.testing.assert_array_equal(read.pixel_labels[category], maps)


def test_files_follow_the_real_layout_and_statistics(tmp_path: Path) -> None:
    out = write_broden(tmp_path / "export", TinyProbe(), progress=False)
    index = read_rows(out / "index.csv")
    assert index[0] == ["image", "split", "ih", "iw", "sh", "sw", "color", "object", "material", "scene"]
    assert index[1] == [
        "tiny_world/000000.png", "train", "6", "6", "3", "3", "tiny_world/000000_color.png",
        "tiny_world/000000_object_1.png;tiny_world/000000_object_2.png", "", "5",
    ]
    assert index[2][6:] == ["", "tiny_world/000001_object.png", "tiny_world/000001_material.png", ""]
    assert index[3][2:4] == ["5", "6"]
    assert (out / "images/tiny_world/000000_object_2.png").is_file()
    # frequency: images where the label occurs; coverage: summed fraction of label-map pixels
    assert read_rows(out / "label.csv") == [
        ["number", "name", "category", "frequency", "coverage", "syns"],
        ["1", "red-c", "color(1)", "1", "0.333333", ""],
        ["2", "wall", "object(1)", "1", "0.444444", ""],
        ["3", "wood", "material(2);object(1)", "3", "1.777778", ""],
        ["5", "kitchen", "scene(2)", "2", "2.000000", ""],
        ["300", "door", "object(1)", "1", "0.111111", ""],
    ]
    c_object = read_rows(out / "c_object.csv")
    assert c_object[0] == ["code", "number", "name", "frequency", "coverage"]
    assert [row[:4] for row in c_object[1:]] == [["1", "2", "wall", "1"], ["2", "3", "wood", "1"],
                                                 ["3", "300", "door", "1"]]
    assert float(c_object[1][4]) == pytest.approx(4 / 9)
    assert read_rows(out / "c_material.csv")[1][:4] == ["1", "3", "wood", "2"]
    assert read_rows(out / "category.csv") == [
        ["name", "first", "last", "count", "frequency"],
        ["color", "1", "1", "1", "1"],
        ["object", "2", "300", "3", "3"],
        ["material", "3", "3", "1", "2"],
        ["scene", "5", "5", "1", "2"],
    ]


def test_without_frequency_stats_labels_keep_their_own_category(tmp_path: Path) -> None:
    out = write_broden(tmp_path / "export", TinyProbe(), progress=False, frequency_stats=False)
    rows = read_rows(out / "label.csv")
    assert rows[3] == ["3", "wood", "material(0)", "0", "0.000000", ""]
    assert [r[1] for r in read_rows(out / "c_object.csv")[1:]] == ["2", "300"]
    assert BrodenProbe(out).concepts == CONCEPTS


def test_jpeg_images_keep_labels_exact(tmp_path: Path) -> None:
    probe = TinyProbe()
    out = write_broden(tmp_path / "export", probe, image_format="jpg", progress=False)
    back = BrodenProbe(out)
    assert back.image_path(0).suffix == ".jpg"
    assert np.abs(back[1].image.astype(int) - probe.samples[1].image).mean() < 20
    np.testing.assert_array_equal(back[0].pixel_labels["object"], probe.samples[0].pixel_labels["object"])


def test_refuses_non_empty_dir_and_overwrites_an_old_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    write_broden(out, TinyProbe(), progress=False)
    with pytest.raises(UsageError, match="not empty"):
        write_broden(out, TinyProbe(), progress=False)
    smaller = TinyProbe(samples=tiny_samples()[:2])
    write_broden(out, smaller, progress=False, overwrite=True)
    assert len(BrodenProbe(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(UsageError, match="not a Broden directory"):
        write_broden(other, TinyProbe(), progress=False, overwrite=True)
    assert (other / "thesis.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(BrodenProbe(write_broden(empty, TinyProbe(), progress=False))) == 3


def test_a_failed_write_leaves_nothing_behind_and_the_old_export_intact(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="broke"):
        write_broden(tmp_path / "export", TinyProbe(fail_at=2), progress=False)
    assert list(tmp_path.iterdir()) == []
    write_broden(tmp_path / "export", TinyProbe(samples=tiny_samples()[:1]), progress=False)
    with pytest.raises(RuntimeError):
        write_broden(tmp_path / "export", TinyProbe(fail_at=1), progress=False, overwrite=True)
    assert len(BrodenProbe(tmp_path / "export")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_bad_probes_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="image format 'gif'"):
        write_broden(tmp_path / "a", TinyProbe(), image_format="gif", progress=False)
    with pytest.raises(UsageError, match="no concept labels"):
        write_broden(tmp_path / "a", TinyProbe(concepts=ConceptTable((), ())), progress=False)
    huge = tiny_samples()
    huge[1].pixel_labels["object"][0, 0, 0] = 70000
    with pytest.raises(UsageError, match="R \\+ 256\\*G"):
        write_broden(tmp_path / "a", TinyProbe(samples=huge), progress=False)
    stray = tiny_samples()
    stray[2].pixel_labels["object"][0, 0, 0] = 4
    with pytest.raises(UsageError, match=r"label\(s\) \[4\] are not in the probe's concept table"):
        write_broden(tmp_path / "a", TinyProbe(samples=stray), progress=False)
    with pytest.raises(UsageError, match="label_size"):
        write_broden(tmp_path / "a", TinyProbe(label_size=(4, 4)), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_warns_when_a_label_would_change_category(tmp_path: Path) -> None:
    concepts = ConceptTable(
        tuple(Concept(c.number, c.name, "object" if c.number == 3 else c.category) for c in CONCEPTS.concepts),
        CONCEPTS.categories,
    )
    with pytest.warns(UserWarning, match=r"wood \(object -> material\)"):
        out = write_broden(tmp_path / "export", TinyProbe(concepts=concepts), progress=False)
    assert BrodenProbe(out).concepts[3].category == "material"
