"""Concept colours stay tellable apart however many concepts a picture shows, and label PNGs have previews
a person can read (the Broden encoding label = R + 256·G looks black)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitscope.analysis.overlay import colour_labels
from unitscope.data.broden_export import write_broden
from unitscope.data.sceneworld import SceneWorldProbe
from unitscope.palette import MIN_CHROMA, colours_for, distinct_colours, min_distance, oklab


@pytest.mark.parametrize(("n", "gap"), [(10, 0.15), (40, 0.09), (100, 0.06)])
def test_the_worst_pair_stays_apart(n: int, gap: float) -> None:
    colours = distinct_colours(n)
    assert len(set(colours)) == n and min_distance(colours) >= gap
    chroma = np.hypot(*oklab(np.array(colours))[:, 1:].T)
    assert chroma.min() >= MIN_CHROMA  # no greys: unlabeled pixels are grey or black


def test_a_concept_keeps_its_colour_when_more_are_shown() -> None:
    assert distinct_colours(20)[:5] == distinct_colours(5)
    assert colours_for([7, 0, 3, 7]) == dict(zip([7, 3], distinct_colours(2), strict=True))


def test_colour_labels_paints_each_concept_and_leaves_the_rest_black() -> None:
    labels = np.array([[0, 4], [9, 4]])
    colours = colours_for([4, 9])
    picture = colour_labels(labels, colours, (4, 4))
    assert picture.shape == (4, 4, 3) and (picture[:2, :2] == 0).all()
    assert tuple(picture[0, 3]) == tuple(round(c * 255) for c in colours[4])
    assert tuple(picture[3, 0]) != tuple(picture[0, 3])


def test_broden_export_writes_a_readable_preview_per_label_png(tmp_path: Path) -> None:
    probe = SceneWorldProbe(n=3, seed=0, size=32)
    out = write_broden(tmp_path / "w", probe, progress=False, previews=2)
    label_pngs = sorted((out / "images").rglob("*_object.png"))
    previews = sorted((out / "preview").glob("*/*_object.png"))
    assert len(label_pngs) == 3 and [p.name for p in previews] == [p.name for p in label_pngs[:2]]
    for label_png, preview in zip(label_pngs, previews, strict=False):
        encoded = np.array(Image.open(label_png)).astype(np.int64)
        numbers = set(np.unique(encoded[..., 0] + 256 * encoded[..., 1]).tolist()) - {0}
        shown = np.array(Image.open(preview))
        right = shown[:, shown.shape[1] // 2 + 2:].reshape(-1, 3)
        colours = {tuple(c) for c in right.tolist()} - {(0, 0, 0)}
        assert len(colours) == len(numbers) > 0  # one visible colour per labelled concept
    assert (out / "preview" / "legend_object.png").is_file()
