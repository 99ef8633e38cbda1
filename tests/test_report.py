"""The dissection report page: self-contained, complete, ordered, and its chart counts right."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from planted import CONCEPTS, PlantedProbe
from torch import nn

from unitscope.dissection.labels import detector_table
from unitscope.dissection.record import DataSpec, ModelSpec, RunRecord, RunSpec
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.models.preprocessing import Preprocessing
from unitscope.report.dissection import ReportOptions, build_report, gallery_units, write_dissection_report
from unitscope.report.figures import CATEGORY_COLORS, detector_counts, plot_detector_counts
from unitscope.report.run_report import render_report

TWO_LAYER_SOURCE = """
import torch
from torch import nn

def build():
    net = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.Conv2d(3, 3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        net[1].weight.copy_(torch.eye(3)[[1, 0, 2]].view(3, 3, 1, 1))  # layer 1 swaps red and green
    return net
"""
UNIT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def identity_model() -> LoadedModel:
    net = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    return LoadedModel(net.eval(), "identity", Preprocessing(None, **UNIT))  # type: ignore[arg-type]


def hand_layer(labels: list[str], categories: list[str], ious: list[float], peaks: list[float] | None = None,
               threshold: float = 0.5) -> LayerResult:
    """A layer of len(labels) units of a 1x1 net on PlantedProbe; units detect when IoU >= 0.04."""
    n = len(labels)
    units = pd.DataFrame({"unit": np.arange(n), "label": labels, "category": categories, "iou": ious,
                          "detector": [iou >= 0.04 for iou in ious], "threshold": [threshold] * n,
                          "max_activation": peaks if peaks is not None else [1.0] * n})
    top = pd.DataFrame({"unit": np.repeat(np.arange(n), 2), "rank": [0, 1] * n, "image": [0, 1] * n,
                        "score": [1.0] * (2 * n), "peak_y": [0] * (2 * n), "peak_x": [0] * (2 * n)})
    return LayerResult("0", "0", (n, 16, 16), units, detector_table(units, CONCEPTS.categories), top)


def hand_result(layers: dict[str, LayerResult]) -> DissectionResult:
    spec = RunSpec(ModelSpec("identity"), DataSpec("planted", 4), tuple(layers),
                   {"quantile": 0.3, "iou_threshold": 0.04, "upsample": "bilinear", "topk": 2})
    record = RunRecord(spec, "identity", "planted", 4, (16, 16), (16, 16), (16, 16), seconds=1.5,
                       categories=CONCEPTS.categories, skipped={"3": "image 3 is corrupt"},
                       phases={"pass 1": {"wall": 1.25, "cpu": 2.5}, "<pass 2>": {"wall": 0.2, "cpu": 0.3}})
    return DissectionResult(layers, CONCEPTS, record)


def card_labels(html: str, anchor: str) -> list[str]:
    """The labels of the cards of one layer's gallery, in page order."""
    gallery = html.split(f'id="gallery-{anchor}"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<span class="label"[^>]*>([^<]*)</span>', gallery)


def test_dissect_writes_a_self_contained_report(tmp_path: Path) -> None:
    model_file = tmp_path / "two_layer.py"
    model_file.write_text(TWO_LAYER_SOURCE)
    out = tmp_path / "run"
    run = dissect(f"{model_file}:build", ["0", "1"], PlantedProbe(12), out, settings=DissectSettings(quantile=0.3),
                  progress=False, **UNIT)  # type: ignore[arg-type]
    assert not (out / "report.html").exists()  # the run writes data; the report step renders it
    render_report(run, probe=PlantedProbe(12))
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<link" not in html
    links = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert links and all(link.startswith(("data:image/", "#", "units/")) for link in links)
    for layer in ("0", "1"):
        for unit in range(3):
            page = out / "units" / layer / f"{unit}.html"
            assert f'href="units/{layer}/{unit}.html"' in html
            text = page.read_text()
            kept = len(run.layers[layer].top_images.query("unit == @unit"))
            assert text.count("<figure>") == kept
            sprite = Image.open(out / "units" / layer / str(unit) / "top.jpg")  # one square cell per top image
            assert sprite.width == kept * sprite.height
            assert len(set(re.findall(r"background-position: ([\d.]+)% 0", text))) == kept
    assert 'id="layer-0"' in html and 'id="layer-1"' in html
    # detectors first, by IoU: the planted square/bar units lead each gallery (layer 1 swaps them)
    assert card_labels(html, "layer-0")[:2] == ["square", "bar"]
    assert card_labels(html, "layer-1")[:2] == ["bar", "square"]
    assert len(re.findall(r'<div class="card( weak)?"', html)) == 6  # 3 units x 2 layers, all shown


def test_gallery_order_detectors_first_then_iou_and_limit() -> None:
    layer = hand_layer(["a", "b", "c", "d", "e"], ["object"] * 5, [0.02, 0.3, 0.05, 0.3, 0.01])
    assert gallery_units(layer, 10) == [1, 3, 2, 0, 4]
    assert gallery_units(layer, 2) == [1, 3]


def test_unlabelled_units_are_ordered_by_peak_activation() -> None:
    layer = hand_layer(["", "", ""], ["", "", ""], [np.nan] * 3, peaks=[0.5, 2.0, 1.0])
    assert gallery_units(layer, 10) == [1, 2, 0]
    html = build_report(hand_result({"0": layer}), PlantedProbe(4), identity_model())
    assert "no concept labels" in html and "Detectors by category" not in html
    assert card_labels(html, "layer-0") == ["unit 1", "unit 2", "unit 0"]


def test_page_shows_settings_skips_and_escapes_labels() -> None:
    layer = hand_layer(["<sofa & chair>", "bar", "red"], ["object", "object", "color"], [0.5, 0.01, 0.2])
    html = build_report(hand_result({"0": layer}), PlantedProbe(4), identity_model(), ReportOptions(max_units=2))
    assert "&lt;sofa &amp; chair&gt;" in html and "<sofa" not in html
    assert card_labels(html, "layer-0") == ["&lt;sofa &amp; chair&gt;", "red"]
    assert "2 of 3 units shown" in html and "image 3 is corrupt" in html
    for fact in ("identity", "planted", "top 0.3", "bilinear", "1.5 s", "pass 1 1.2 s (CPU 2.5 s)",
                 "&lt;pass 2&gt; 0.2 s (CPU 0.3 s)"):  # the phase clocks, escaped like any text of the run
        assert fact in html
    assert html.count('src="data:image/jpeg;base64,') == 2 and html.count('src="data:image/png;base64,') == 1


def test_write_report_goes_to_report_html(tmp_path: Path) -> None:
    layer = hand_layer(["square"], ["object"], [0.5])
    path = write_dissection_report(hand_result({"0": layer}), PlantedProbe(4), tmp_path / "run", identity_model())
    assert path == tmp_path / "run" / "report.html" and path.read_text().startswith("<!DOCTYPE html>")


def test_detector_counts_sorted_and_coloured_by_category() -> None:
    layer = hand_layer(["square", "bar", "square", "red", "green"], ["object", "object", "object", "color", "color"],
                       [0.5, 0.2, 0.3, 0.1, 0.01])
    counts = detector_counts(layer.units)
    assert counts.to_dict(orient="list") == {
        "label": ["square", "red", "bar"], "category": ["object", "color", "object"], "units": [2, 1, 1]}
    figure = plot_detector_counts(hand_result({"conv5": layer}))
    ax = figure.axes[0]
    assert [p.get_height() for p in ax.patches] == [2, 1, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["square", "red", "bar"]
    assert mcolors.to_hex(ax.patches[1].get_facecolor()) == CATEGORY_COLORS["color"]
    assert "conv5: 4 detector units, 3 concepts" in ax.get_title(loc="left")


def test_chart_limits_concepts_and_handles_layers_without_detectors() -> None:
    busy = hand_layer(["square", "bar", "red"], ["object", "object", "color"], [0.5, 0.4, 0.3])
    quiet = hand_layer(["square"], ["object"], [0.01])
    result = hand_result({"busy": busy, "quiet": quiet})
    figure = plot_detector_counts(result, max_concepts=2)
    assert len(figure.axes) == 2 and len(figure.axes[0].patches) == 2
    assert any("+1 more" in t.get_text() for t in figure.axes[0].texts)
    assert any("no detector units" in t.get_text() for t in figure.axes[1].texts)
    with pytest.raises(UsageError, match="no layer"):
        plot_detector_counts(result, "conv9")


def test_bad_options_are_usage_errors() -> None:
    layer = hand_layer(["square"], ["object"], [0.5])
    with pytest.raises(UsageError, match="max_units"):
        build_report(hand_result({"0": layer}), PlantedProbe(4), identity_model(), ReportOptions(max_units=0))
