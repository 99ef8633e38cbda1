"""Original NetDissect's category rule, by hand: a label of two categories seen in different columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_iou_at_most_one
from PIL import Image
from planted import write_model

from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings

SIDE = 4


def _png(path: Path, labels: np.ndarray) -> None:
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    Image.fromarray(rgb).save(path)


def write_two_category_broden(root: Path) -> None:
    """Two 4×4 images; 'metal' (material(6);object(2): primary material) fills the red 2×2 square.

    Image 0 lists metal's map in the object column only, image 1 in the material column only.
    """
    (root / "images").mkdir(parents=True)
    rows = []
    for i, column in enumerate(("object", "material")):
        image = np.zeros((SIDE, SIDE, 3), np.uint8)
        labels = np.zeros((SIDE, SIDE), np.int64)
        square = (slice(i, i + 2), slice(1, 3))
        image[(*square, 0)] = 255
        labels[square] = 1
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        _png(root / "images" / f"{i}_{column}.png", labels)
        cells = {"object": "", "material": ""}
        cells[column] = f"{i}_{column}.png"
        rows.append(f"{i}.png,train,{SIDE},{SIDE},{SIDE},{SIDE},{cells['object']},{cells['material']}")
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,object,material\n" + "\n".join(rows) + "\n")
    (root / "label.csv").write_text(
        "number,name,category,frequency,coverage,syns\n"
        '1,metal,"material(6);object(2)",2,1.0,\n'
        "2,wall,object(5),0,0.0,\n"
    )


def test_two_category_label_in_different_columns_scores_hand_value(tmp_path: Path) -> None:
    data = tmp_path / "broden"
    write_two_category_broden(data)
    # Unit 0 = red = the metal square in both images (8 of 32 pixels; quantile 0.25 → threshold 0.25).
    settings = DissectSettings(quantile=0.25, batch_size=1, workers=0, upsample="bilinear")
    result = dissect(write_model(tmp_path), ["0"], str(data), None, mean=(0, 0, 0), std=(1, 1, 1),
                     settings=settings, progress=False)
    units = result.units["0"].set_index("unit")
    # By hand: intersection 4 + 4; metal's area 8; the unit's area counted under material (metal's primary
    # category) in both images, since each holds a metal pixel: 8. IoU = 8 / (8 + 8 - 8) = 1.0.
    # Counting the unit only where the material column is annotated would give 8 / (4 + 8 - 8) = 2.0.
    assert units.loc[0, "label"] == "metal" and units.loc[0, "category"] == "material"
    assert units.loc[0, "iou"] == pytest.approx(1.0)
    # Units 1 and 2 (green, blue) are never on: no label rather than the lowest-numbered concept.
    assert units.loc[1, "label"] == "" and units.loc[1, "category"] == "none" and units.loc[1, "iou"] == 0
    assert_iou_at_most_one(result)
