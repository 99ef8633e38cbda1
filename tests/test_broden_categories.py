"""A Broden label's primary category is NetDissect's: largest c_<category>.csv coverage, ties to the later
category of category.csv (``primary_categories_per_index``); label.csv counts only where those files are silent.

Every expectation below is written by hand from that rule; on the old reader (largest label.csv count,
ties to the first) the coverage and tie cases, and the IoU they lead to, come out differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_iou_at_most_one
from PIL import Image
from planted import write_model

from unitscope.data.broden import BrodenProbe
from unitscope.data.broden_categories import primary_by_coverage
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError

SIDE = 4
# label.csv: the counts say object for 1 and 2, and object for 3 (which no c_*.csv lists).
LABEL_CSV = (
    "number,name,category,frequency,coverage,syns\n"
    '1,wheel,"object(10);part(2)",12,2.5,\n'
    '2,door,"object(5);part(1)",6,2.0,\n'
    '3,window,"object(4);part(1)",5,0.0,\n'
    "4,car,object(1),1,0.25,\n"
)
# wheel: part's coverage is the larger (2.0 > 0.5) -> part, although label.csv counts say object.
# door: equal coverage (1.0) in object and part -> the category later in category.csv.
C_OBJECT = "code,number,name,frequency,coverage\n1,1,wheel,10,0.5\n2,2,door,5,1.0\n3,4,car,1,0.25\n"
C_PART = "code,number,name,frequency,coverage\n1,1,wheel,2,2.0\n2,2,door,1,1.0\n"


def _png(path: Path, labels: np.ndarray) -> None:
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    Image.fromarray(rgb).save(path)


def write_broden(root: Path, category_order: tuple[str, ...] = ("object", "part")) -> Path:
    """Two 4x4 images, each with a red 2x2 square: a wheel (part column) in image 0, a car (object) in image 1."""
    (root / "images").mkdir(parents=True)
    rows = []
    for i, (column, number) in enumerate((("part", 1), ("object", 4))):
        image = np.zeros((SIDE, SIDE, 3), np.uint8)
        labels = np.zeros((SIDE, SIDE), np.int64)
        square = (slice(i, i + 2), slice(1, 3))
        image[(*square, 0)] = 255
        labels[square] = number
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        _png(root / "images" / f"{i}_{column}.png", labels)
        cells = {"object": "", "part": ""}
        cells[column] = f"{i}_{column}.png"
        rows.append(f"{i}.png,train,{SIDE},{SIDE},{SIDE},{SIDE},{cells['object']},{cells['part']}")
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,object,part\n" + "\n".join(rows) + "\n")
    (root / "label.csv").write_text(LABEL_CSV)
    stats = {"object": "object,1,4,3,16", "part": "part,1,2,2,3"}
    (root / "category.csv").write_text(
        "name,first,last,count,frequency\n" + "".join(stats[c] + "\n" for c in category_order))
    (root / "c_object.csv").write_text(C_OBJECT)
    (root / "c_part.csv").write_text(C_PART)
    return root


def categories(probe: BrodenProbe) -> dict[str, str]:
    return {c.name: c.category for c in probe.concepts.concepts}


def test_coverage_decides_and_ties_go_to_the_later_category(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    probe = BrodenProbe(write_broden(tmp_path / "b"))
    # wheel: coverage part 2.0 > object 0.5 -> part (label.csv's object(10);part(2) would say object).
    # door: coverage 1.0 = 1.0 -> part, the later of category.csv's object, part (counts would say object).
    # window: in no c_*.csv -> label.csv's largest count, object (NetDissect would name its last category).
    assert categories(probe) == {"wheel": "part", "door": "part", "window": "object", "car": "object"}
    assert probe.primary.from_counts == (3,)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 label(s)" in err and "label 3" in err and "label.csv counts" in err


def test_ties_follow_category_csv_order_not_index_columns(tmp_path: Path) -> None:
    probe = BrodenProbe(write_broden(tmp_path / "b", category_order=("part", "object")))
    # index.csv still lists object before part; category.csv now part, object: door's tie goes to object.
    assert categories(probe)["door"] == "object"
    assert categories(probe)["wheel"] == "part"  # a strict maximum does not depend on the order


def test_categories_being_read_limit_the_choice(tmp_path: Path) -> None:
    probe = BrodenProbe(write_broden(tmp_path / "b"), categories=["object"])
    # Among object alone every listed label is an object; window still falls back to its counts.
    assert categories(probe) == {"wheel": "object", "door": "object", "window": "object", "car": "object"}


@pytest.mark.parametrize("missing", ["category.csv", "c_part.csv"])
def test_missing_statistics_fall_back_to_label_csv_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          missing: str) -> None:
    root = write_broden(tmp_path / "b")
    (root / missing).unlink()
    probe = BrodenProbe(root)
    assert categories(probe) == {"wheel": "object", "door": "object", "window": "object", "car": "object"}
    assert probe.primary.from_counts == (1, 2, 3, 4)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no {missing}" in err


def test_primary_by_coverage_rule() -> None:
    assert primary_by_coverage([("object", 0.5), ("part", 2.0)]) == "part"
    assert primary_by_coverage([("object", 3.0), ("part", 2.0)]) == "object"
    assert primary_by_coverage([("object", 1.0), ("part", 1.0), ("material", 0.5)]) == "part"
    assert primary_by_coverage([]) is None


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("c_part.csv", "code,number,name,frequency,coverage\n1,1,wheel,2,lots\n",
     "c_part.csv line 2: coverage 'lots' is not a non-negative number"),
    ("c_part.csv", "code,number,name,frequency,coverage\n1,1,wheel,2,-1\n", "c_part.csv line 2: coverage '-1'"),
    ("c_part.csv", "code,number,name,frequency,coverage\n1,1,wheel,2,nan\n", "c_part.csv line 2: coverage 'nan'"),
    ("c_part.csv", "code,number,name,frequency,coverage\n1,x,wheel,2,1\n",
     "c_part.csv line 2: label number 'x' is not a non-negative integer"),
    ("c_part.csv", "code,number,name,frequency,coverage\n1,1,wheel,2,1\n2,1,wheel,2,1\n",
     "c_part.csv line 3: label number 1 is listed twice"),
    ("c_part.csv", "code,number,name\n1,1,wheel\n", "c_part.csv lacks column(s) coverage"),
    ("category.csv", "name,first\nobject,1\nobject,1\n", "category.csv line 3: category 'object' is listed twice"),
    ("category.csv", "first,last\n1,2\n", "category.csv lacks column name"),
])
def test_malformed_statistics_are_one_usage_error(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    root = write_broden(tmp_path / "b")
    (root / name).write_text(text)
    with pytest.raises(UsageError, match="fix the row|listed twice|header must be") as caught:
        BrodenProbe(root)
    assert fragment in str(caught.value) and str(root / name) in str(caught.value)


def test_binary_statistics_file_is_refused(tmp_path: Path) -> None:
    root = write_broden(tmp_path / "b")
    (root / "c_object.csv").write_bytes(b"code,number,name,frequency,coverage\n1,1,\xff\xfe,1,1\n")
    with pytest.raises(UsageError, match=r"c_object\.csv is not UTF-8 text"):
        BrodenProbe(root)


def test_code_zero_rows_are_not_members(tmp_path: Path) -> None:
    root = write_broden(tmp_path / "b")
    # NetDissect reads code 0 as "not in this category": wheel is then listed in object alone.
    (root / "c_part.csv").write_text("code,number,name,frequency,coverage\n0,1,wheel,2,2.0\n2,2,door,1,1.0\n")
    assert categories(BrodenProbe(root))["wheel"] == "object"


def test_iou_counts_under_netdissects_primary_category(tmp_path: Path) -> None:
    data = write_broden(tmp_path / "broden")
    # Unit 0 = red = the 2x2 square of each image (8 of 32 pixels: quantile 0.25 puts the threshold on it).
    settings = DissectSettings(quantile=0.25, batch_size=1, workers=0, upsample="bilinear", bootstrap=0)
    result = dissect(write_model(tmp_path), ["0"], str(data), None, mean=(0, 0, 0), std=(1, 1, 1),
                     settings=settings, progress=False)
    units = result.units["0"].set_index("unit")
    # By hand (count_act_with_labelcat): wheel is a part, so image 0 (a wheel pixel) is the only image of
    # category part and image 1 (a car) the only one of category object. wheel: 4 / (4 + 4 - 4) = 1.0;
    # car: 4 / (4 + 4 - 4) = 1.0. Under label.csv counts wheel would be an object, both images would be
    # object images, and each IoU 4 / (4 + 8 - 4) = 0.5.
    assert units.loc[0, "part_label"] == "wheel" and units.loc[0, "part_iou"] == pytest.approx(1.0)
    assert units.loc[0, "object_label"] == "car" and units.loc[0, "object_iou"] == pytest.approx(1.0)
    assert units.loc[0, "label"] == "wheel" and units.loc[0, "category"] == "part"
    assert units.loc[0, "iou"] == pytest.approx(1.0)
    assert_iou_at_most_one(result)
