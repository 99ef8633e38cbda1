"""segment: a planted detector segments its concept exactly; metrics and baselines by hand; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from planted import PlantedProbe
from test_analysis_planted import dissect_planted, load_run

from unitscope.analysis.inputs import InputSource
from unitscope.analysis.segment.metrics import SegmentationMeter
from unitscope.analysis.segment.run import run_segment
from unitscope.cli.main import main
from unitscope.data.broden_export import write_broden
from unitscope.models.loading import load_model


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return dissect_planted(tmp_path_factory.mktemp("segment"))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_planted_detectors_segment_their_concepts_exactly(planted_run: tuple[str, Path], tmp_path: Path,
                                                          batch_size: int) -> None:
    spec, run_dir = planted_run
    probe = PlantedProbe(5, seed=1, blue_noise=False)
    summary = run_segment(load_model(spec), load_run(run_dir), InputSource(probe, 5), tmp_path, batch_size=batch_size)
    for i in range(5):
        encoded = np.array(Image.open(tmp_path / f"labels_{i:05d}.png")).astype(np.int64)
        labels = encoded[..., 0] + 256 * encoded[..., 1]
        np.testing.assert_array_equal(labels, probe[i].pixel_labels["object"][0])  # square=1, bar=2, 0 elsewhere
        assert (tmp_path / f"segment_{i:05d}.png").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pixel_accuracy"] == 1.0 and metrics["mean_iou"] == 1.0
    square = sum(int((probe[i].pixel_labels["object"][0] == 1).sum()) for i in range(5))
    labelled = sum(int((probe[i].pixel_labels["object"][0] != 0).sum()) for i in range(5))
    assert metrics["baseline_class"] == "square"
    assert metrics["baseline_mean_iou"] == pytest.approx(square / labelled / 2)
    assert metrics["per_class"]["bar"]["units"] == 1
    # Top-3 scene prediction from the same pass: softmax of the planted linear layer.
    assert set(summary.predictions.columns) >= {"class1", "p1", "class2", "p2"}
    assert np.allclose(summary.predictions[["p1", "p2"]].sum(axis=1), 1.0)


def test_metrics_by_hand() -> None:
    meter = SegmentationMeter(vocabulary=[1])
    truth = np.array([[[1, 1], [2, 0]]])
    meter.update(np.array([[1, 0], [1, 1]]), truth)  # pixel (1,1) unlabelled: ignored
    meter.update(np.array([[2, 2], [2, 2]]), np.array([[[2, 2], [2, 1]]]))
    scores = meter.result()
    # labelled 3 + 4 = 7; correct: (0,0) and image 2's three 2s → 4.
    assert scores["pixel_accuracy"] == pytest.approx(4 / 7)
    # class 1: P=2 (img1 (0,0),(1,0)), G=3, I=1 → 1/4; class 2: P=4 (image 2), G=4, I=3 → 3/5.
    assert scores["mean_iou"] == pytest.approx((1 / 4 + 3 / 5) / 2)
    assert scores["mean_iou_detected"] == pytest.approx(1 / 4)
    # Most frequent class overall: 2 (4 px) vs 1 (3 px); everywhere → IoU(2) = 4/7, IoU(1) = 0.
    assert scores["baseline_mean_iou"] == pytest.approx(4 / 7 / 2)
    # Per-image majority: image 1 → class 1 (2 px of 3), image 2 → class 2 (3 of 4).
    assert scores["majority_pixel_accuracy"] == pytest.approx(5 / 7)


def _cli(*args: str) -> None:
    main(list(args))


def test_cli_on_a_broden_probe(planted_run: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec, run_dir = planted_run
    broden = write_broden(tmp_path / "broden", PlantedProbe(4, seed=3, blue_noise=False), progress=False)
    _cli("segment", "--method", "units", "--model", spec, "--run", str(run_dir), "--data", str(broden),
         "--n", "3",
         "--out", str(tmp_path / "out"), "--pictures", "1")
    assert len(list((tmp_path / "out").glob("segment_*.png"))) == 1  # overlays for the first image only
    assert len(list((tmp_path / "out").glob("labels_*.png"))) == 3
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["images"] == 3 and metrics["pixel_accuracy"] == 1.0
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 3
    assert "mean IoU 1.000" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["no-detectors", "wrong-size", "unknown-layer", "not-a-run"])
def test_bad_input_exits_2(planted_run: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
                           case: str) -> None:
    spec, run_dir = planted_run
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20 if case == "wrong-size" else 16, 16, 3), np.uint8)).save(image)
    extra = {"no-detectors": ["--category", "texture"], "unknown-layer": ["--layer", "conv9"]}.get(case, [])
    run = str(tmp_path) if case == "not-a-run" else str(run_dir)
    with pytest.raises(SystemExit) as exit_info:
        _cli("segment", "--method", "units", "--model", spec, "--run", run,
             "--image", str(image), "--out", str(tmp_path / "o"), *extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unitscope: error:") and "\n" not in err
