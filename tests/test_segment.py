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
from unitscope.analysis.segment.scores import ConfusionMeter
from unitscope.analysis.segment.twin import NOT_MEASURED_NONE, NOT_MEASURED_UNITS, random_column, random_lines
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


def test_units_method_says_why_its_random_column_is_not_measured(planted_run: tuple[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    spec, run_dir = planted_run
    data = str(write_broden(tmp_path / "broden", PlantedProbe(3, seed=3, blue_noise=False), progress=False))
    for baseline, words in (("random", NOT_MEASURED_UNITS), ("none", NOT_MEASURED_NONE)):
        out = tmp_path / baseline
        _cli("segment", "--method", "units", "--model", spec, "--run", str(run_dir), "--data", data, "--n", "3",
             "--out", str(out), "--pictures", "0", "--baseline", baseline)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["random_mean_iou"] is None and metrics["random_verdict"] == words
        assert metrics["baseline"] == baseline and metrics["mean_iou_vs_random"] is None
        assert all(row["random_iou"] is None for row in metrics["per_class"].values())
        assert "random_segmented_share" in pd.read_csv(out / "predictions.csv").columns
        assert f"random twin: {words}" in capsys.readouterr().out


def _meter(hits: list[bool]) -> ConfusionMeter:
    """Four 2x2 images of classes 1 (top row) and 2 (bottom row): right everywhere, or all wrong, per image."""
    meter = ConfusionMeter([1, 2])
    truth = np.array([[[1, 1], [2, 2]]])
    for hit in hits:
        meter.update(truth[0] if hit else 3 - truth[0], truth)
    return meter


@pytest.mark.parametrize(("trained", "twin", "beats", "words"), [
    ([True] * 4, [False] * 4, True, "mean IoU 1.000 against 0.000: the trained network beats its random twin (seed 5)"),
    ([False] * 4, [True] * 4, False, "mean IoU 0.000 against 1.000: the trained network does not beat its random twin"),
    ([True, True, False, False], [True, True, False, False], False, "[+0.000, +0.000], which includes 0)."),
])
def test_random_column_verdict_flips_by_hand(trained: list[bool], twin: list[bool], beats: bool,
                                             words: str) -> None:
    column = random_column(_meter(trained), _meter(twin), "random", 5)
    assert column["beats_random"] is beats and words in str(column["random_verdict"])
    assert column["random_mean_iou"] == pytest.approx(sum(twin) / 4 / (2 - sum(twin) / 4))  # I/(P+G-I) per class
    assert column["mean_iou_vs_random"]["n"] == 4  # type: ignore[index]
    assert random_lines(column)[1] == column["random_verdict"]


def test_vectors_print_and_write_the_random_twins_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The planted world is told apart by colour alone, which any invertible 1x1 convolution keeps: the random
    twin's vectors segment it exactly too, so the trained network does not beat its twin (and the page says so)."""
    spec, run_dir = dissect_planted(tmp_path, n=6)
    fit = write_broden(tmp_path / "fit", PlantedProbe(24, seed=4, blue_noise=False), progress=False)
    test = write_broden(tmp_path / "test", PlantedProbe(5, seed=9, blue_noise=False), progress=False)
    out = tmp_path / "out"
    _cli("segment", "--model", spec, "--run", str(run_dir), "--fit-data", str(fit), "--fit-n", "24", "--data",
         str(test), "--n", "5", "--out", str(out), "--pictures", "0", "--baseline-seed", "3")
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mean_iou"] == 1.0 and metrics["random_mean_iou"] == 1.0 and metrics["baseline_seed"] == 3
    difference = metrics["mean_iou_vs_random"]
    assert (difference["difference"], difference["low"], difference["high"]) == (0.0, 0.0, 0.0)
    assert metrics["beats_random"] is False and "does not beat its random twin (seed 3)" in metrics["random_verdict"]
    assert all(row["random_iou"] == 1.0 for row in metrics["per_class"].values())
    shares = pd.read_csv(out / "predictions.csv")
    assert np.allclose(shares["random_segmented_share"], shares["segmented_share"])
    assert "random twin (same architecture, weights re-initialised with seed 3): mean IoU 1.000" in printed
    assert metrics["random_verdict"] in printed
