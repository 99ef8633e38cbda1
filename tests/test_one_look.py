"""One look: every page unitscope writes stands on ``report/templates/base.html`` and its one stylesheet; the
pages of segment, cam, minimal and rf exist; unit pages carry the q-value and stability; no ``nan–nan``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import unitscope
from unitscope.analysis.overlay import foreground_panel
from unitscope.dissection.confidence import NO_INTERVAL, ci_suffix, control_text, interval_text
from unitscope.report import output_pages

SRC = Path(unitscope.__file__).parent
MARKER = '<meta name="generator" content="unitscope">'
HEADER = 'id="unitscope-header"'


def assert_on_base(html: str) -> None:
    """The page was rendered from base.html: the generator marker, the common header, the one stylesheet."""
    assert MARKER in html and HEADER in html
    assert html.count("<style>") == 1 and (SRC / "report/templates/style.css").read_text()[:60] in html
    assert "nan–nan" not in html and "[95% CI nan" not in html


def test_every_template_extends_the_base() -> None:
    templates = [p for folder in ("report/templates", "annotate/templates", "serve/templates")
                 for p in (SRC / folder).glob("*.html")]
    assert len(templates) >= 9
    for path in templates:
        if path.name != "base.html":
            assert path.read_text().startswith('{% extends "base.html" %}'), path


def test_no_page_is_written_outside_the_base() -> None:
    """A page-writing path that builds its own <html> (as explain and compare did) fails here."""
    own = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*") if p.suffix in (".py", ".html")
           and re.search(r"<!doctype|<html", p.read_text(), re.IGNORECASE)]
    assert own == ["report/templates/base.html"]


def _png(path: Path, size: tuple[int, int] = (24, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 120, np.uint8)).save(path)


def test_cam_page_shows_the_pointing_game_and_every_heatmap(tmp_path: Path) -> None:
    score = {"top_fraction": 0.2, "hit_rate": 0.4, "object_share": 0.2, "mass_on_objects": 0.3, "lift": 2.0,
             "n_images": 2, "skipped": 0, "excluded": 0, "pointing": 0.5, "max_mask_share": 0.9}
    images = [{"image": k, "class": "street", "probability": 0.6, "mask": "scored", "object_share": 0.2,
               "top_hit_rate": 0.4, "pointing": 1.0, "random_top_hit_rate": 0.1, "random_pointing": 0.0}
              for k in ("00000", "00001")]
    (tmp_path / "cam.json").write_text(json.dumps({
        "model": "net", "method": "cam", "layer": "conv5", "images": images, "localisation": score,
        "baseline": {"model": "net (random weights, seed 0)", "localisation": {**score, "pointing": 0.25},
                     "differences": {"pointing": {"difference": 0.25, "low": -0.5, "high": 1.0}},
                     "verdict": "pointing game: the trained network does not beat its random twin"}}))
    for key in ("00000", "00001"):
        _png(tmp_path / f"cam_{key}.png")
    html = output_pages.cam_page(tmp_path).read_text()
    assert_on_base(html)
    assert 'data-page="cam"' in html and 'src="cam_00000.png"' in html and 'src="cam_00001.png"' in html
    assert 'data-role="pointing"' in html and "+0.250 [-0.500, +1.000]" in html and "0.500" in html
    assert "does not beat its random twin" in html


def test_segment_page_shows_metrics_with_the_random_twin_and_every_picture(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({
        "mean_iou": 0.31, "pixel_accuracy": 0.5, "random_mean_iou": 0.12, "random_pixel_accuracy": 0.2,
        "baseline_mean_iou": 0.05, "baseline_pixel_accuracy": 0.4, "baseline_class": "wall",
        "majority_mean_iou": 0.07, "majority_pixel_accuracy": 0.45, "classes": 2, "classes_detected": 1,
        "labelled_pixels": 100, "images": 1, "layer": "conv5", "category": "object", "detector_units": 3,
        "mean_iou_vs_random": {"difference": 0.19, "low": 0.1, "high": 0.3},
        "random_verdict": "the trained network beats its random twin",
        "per_class": {"car": {"iou": 0.5, "random_iou": 0.1}, "tree": {"iou": 0.12, "random_iou": None}}}))
    pd.DataFrame({"image": ["00000"], "class1": ["street"], "p1": [0.7], "class2": ["beach"], "p2": [0.2],
                  "segmented_share": [0.3], "random_segmented_share": [0.1]}).to_csv(tmp_path / "predictions.csv",
                                                                                      index=False)
    _png(tmp_path / "segment_00000.png")
    html = output_pages.segment_page(tmp_path).read_text()
    assert_on_base(html)
    assert 'data-role="metrics"' in html and "random twin" in html and "0.310" in html and "0.120" in html
    assert "+0.190 [+0.100, +0.300]" in html and "street (0.70)" in html and 'src="segment_00000.png"' in html


def test_minimal_and_rf_pages_show_their_pictures(tmp_path: Path) -> None:
    minimal = tmp_path / "minimal"
    (minimal).mkdir()
    (minimal / "summary.json").write_text(json.dumps({
        "model": "net", "data": "sceneworld", "processed": 1, "mean_regions": 20.0, "mean_regions_kept": 2.0,
        "mean_pixel_fraction": 0.1, "fill": "mean",
        "per_class": {"forest": {"images": 1, "mean_regions": 20.0, "mean_regions_kept": 2.0,
                                 "mean_pixel_fraction": 0.1}}}))
    _png(minimal / "strips" / "00000.png")
    _png(minimal / "images" / "forest" / "00000.png")
    html = output_pages.minimal_page(minimal).read_text()
    assert_on_base(html)
    assert 'src="strips/00000.png"' in html and 'src="images/forest/00000.png"' in html and "10.0%" in html
    rf = tmp_path / "rf"
    rf.mkdir()
    (rf / "rf.json").write_text(json.dumps({"model": "net", "data": "world", "n_images": 8, "settings": {}, "layers": {
        "conv1": {"theoretical": {"size": 5, "stride": 2}, "empirical": {"mean": 9.6, "std": 0.4, "units": 2},
                  "units": {"0": 9.5, "1": 9.7}}}}))
    _png(rf / "rf.png")
    for unit in (0, 1):
        _png(rf / "conv1" / f"unit_{unit}.png")
    html = output_pages.rf_page(rf).read_text()
    assert_on_base(html)
    assert 'src="rf.png"' in html and 'src="conv1/unit_1.png"' in html and "unit 1 · 9.7 px" in html


def test_no_interval_reads_as_such_never_nan() -> None:
    assert interval_text([3.0, 7.0]) == "3–7"
    assert interval_text([float("nan"), float("nan")]) == "" and interval_text(None) == ""
    assert ci_suffix([float("nan"), float("nan")]) == " (no interval: --bootstrap 0)"
    control = {"layers": {"conv5": {"survive_control": 2, "detectors": 5, "survive_ci": [float("nan")] * 2}}}
    assert "nan" not in control_text(control, "conv5") and "no interval" in control_text(control, "conv5")
    assert "bootstrap 0" in NO_INTERVAL


@pytest.mark.parametrize("covered", [0.0, 0.3])
def test_cam_foreground_panel_is_never_empty(covered: float) -> None:
    """The third CAM panel was the bare mask: all black for an image without a foreground object."""
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[: int(16 * covered)] = 1
    panel = foreground_panel(image, mask)
    assert panel.shape == image.shape and panel.std() > 5  # the picture shows, not one flat colour
    if covered:
        assert (panel[:8] == image[:8]).all() and (panel[-8:] != image[-8:]).any()  # outside dimmed
