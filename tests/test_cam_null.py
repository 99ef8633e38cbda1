"""cam beside its null: scored on the foreground objects (never on backgrounds, never on a mask that covers the
image), the pointing game, and the random-weights twin with paired bootstrap intervals (issue #24)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_usage_error, run_cli
from planted import PlantedProbe
from test_analysis_planted import write_gap_model

from unitscope.analysis.cam.baseline import paired_differences, verdict_sentence
from unitscope.analysis.cam.foreground import BACKGROUND_OBJECTS, foreground_rule
from unitscope.analysis.cam.localisation import (
    MAX_MASK_SHARE,
    LocalisationMeter,
    pointing_game,
    top_share_on_mask,
)
from unitscope.data.broden_export import write_broden
from unitscope.errors import UsageError
from unitscope.stats.paired import PairedDifference, mean_of, paired_bootstrap, ratio_of_means


def test_pointing_game_by_hand() -> None:
    heat = np.array([[0.1, 0.9, 0.2], [0.0, 0.3, 0.9], [0.9, 0.0, 0.5]])
    mask = np.zeros_like(heat, dtype=bool)
    assert pointing_game(heat, mask) == 0.0
    mask[0, 1] = True  # one of the three pixels tied at the maximum 0.9: a third of the point
    assert pointing_game(heat, mask) == pytest.approx(1 / 3)
    mask[1, 2] = mask[2, 0] = True
    assert pointing_game(heat, mask) == 1.0
    single = np.zeros((4, 4))
    single[3, 1] = 2.0  # one hottest pixel: 1 on the mask, 0 off it
    on = np.zeros((4, 4), dtype=bool)
    on[3, 1] = True
    assert pointing_game(single, on) == 1.0 and pointing_game(single, ~on) == 0.0
    flat = np.ones((2, 5))  # every pixel tied: the mask's share
    assert pointing_game(flat, np.arange(10).reshape(2, 5) < 3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="differ in shape"):
        pointing_game(heat, np.zeros((2, 2), dtype=bool))


def test_a_mask_covering_the_image_is_excluded_never_a_hit() -> None:
    heat = np.arange(100, dtype=np.float64).reshape(10, 10)  # hottest 20 %: pixels 80..99, hottest 99
    meter = LocalisationMeter(0.2)
    whole = np.ones((10, 10), dtype=bool)  # the old "object" mask of a Broden export: every pixel
    assert meter.update(heat, whole).status == "excluded"
    ninety = np.arange(100).reshape(10, 10) >= 10  # exactly 90 %: excluded too
    assert meter.update(heat, ninety).status == "excluded"
    eighty_nine = np.arange(100).reshape(10, 10) >= 11  # 89 %: scored, hits 20 of 20, points on it
    scored = meter.update(heat, eighty_nine)
    assert scored.scored and scored.hit_rate == 1.0 and scored.pointing == 1.0 and scored.object_share == 0.89
    low = np.arange(100).reshape(10, 10) < 10  # the 10 coldest pixels: no hit, no point
    assert meter.update(heat, low).hit_rate == 0.0
    assert meter.update(heat, np.zeros((10, 10), dtype=bool)).status == "no-object"
    score = meter.result()
    assert (score.n_images, score.excluded, score.skipped) == (2, 2, 1)
    assert score.hit_rate == pytest.approx(0.5) and score.pointing == pytest.approx(0.5)
    assert score.object_share == pytest.approx((0.89 + 0.10) / 2)
    assert score.lift == pytest.approx(0.5 / 0.495) and score.above_chance == pytest.approx(0.5)
    assert score.max_mask_share == MAX_MASK_SHARE == 0.9
    assert top_share_on_mask(heat, low, 0.2) == 0.0
    empty = LocalisationMeter().result()
    assert empty.n_images == 0 and empty.to_dict()["lift"] is None


def test_paired_bootstrap_by_hand() -> None:
    base = np.array([0.1, 0.7, 0.3, 0.9, 0.5])
    same = paired_bootstrap([base], [base], mean_of, resamples=500)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    shifted = paired_bootstrap([base + 0.25], [base], mean_of, resamples=500)  # pairing cancels the images
    assert shifted.difference == pytest.approx(0.25)
    assert shifted.low == pytest.approx(0.25) and shifted.high == pytest.approx(0.25) and shifted.beats_baseline
    # two images, differences 0 and 1: a resample's mean difference is 0, 0.5 or 1 (1/4, 1/2, 1/4)
    two = paired_bootstrap([np.array([1.0, 2.0])], [np.array([1.0, 1.0])], mean_of, resamples=4000, seed=3)
    assert (two.difference, two.low, two.high, two.n) == (0.5, 0.0, 1.0, 2) and not two.beats_baseline
    below = paired_bootstrap([base], [base + 0.5], mean_of)
    assert below.high == pytest.approx(-0.5) and not below.beats_baseline
    hits, shares = np.array([0.6, 0.2, 0.4]), np.array([0.3, 0.2, 0.1])
    lift = paired_bootstrap([hits, shares], [shares, shares], ratio_of_means, resamples=300, seed=1)
    assert lift.difference == pytest.approx(1.2 / 0.6 - 1.0)
    assert lift == paired_bootstrap([hits, shares], [shares, shares], ratio_of_means, resamples=300, seed=1)
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap([base], [base[:3]], mean_of)
    empty = paired_bootstrap([np.zeros(0)], [np.zeros(0)], mean_of)
    assert empty.n == 0 and empty.to_dict()["low"] is None


def test_differences_pair_images_scored_for_both_networks() -> None:
    heat = np.arange(100, dtype=np.float64).reshape(10, 10)
    on_hot, on_cold = np.arange(100).reshape(10, 10) >= 80, np.arange(100).reshape(10, 10) < 20
    trained, random = LocalisationMeter(), LocalisationMeter()
    for mask in (on_hot, on_cold, np.ones((10, 10), dtype=bool)):
        trained.update(heat, mask)  # points at the hot corner
        random.update(heat[::-1, ::-1], mask)  # points at the cold corner
    diffs = paired_differences(trained.images, random.images, resamples=200)
    assert diffs["lift"].n == diffs["pointing"].n == 2  # the excluded third image pairs with nothing
    assert diffs["lift"].difference == pytest.approx(0.0) and diffs["pointing"].difference == pytest.approx(0.0)
    assert diffs["pointing"].low == pytest.approx(-1.0) and diffs["pointing"].high == pytest.approx(1.0)


def test_verdict_words() -> None:
    beats = PairedDifference(0.3, 0.1, 0.5, 40, 2000, 0.95)
    zero = PairedDifference(0.2, -0.05, 0.45, 40, 2000, 0.95)
    below = PairedDifference(-0.3, -0.5, -0.1, 40, 2000, 0.95)
    assert "the trained network beats its random twin" in verdict_sentence("lift", beats)
    assert "does not beat its random twin" in verdict_sentence("lift", zero) and "includes 0" in \
        verdict_sentence("lift", zero)
    assert "does not beat" in verdict_sentence("lift", below) and "lies below 0" in verdict_sentence("lift", below)


def test_sceneworld_foreground_is_its_placed_object_instances() -> None:
    from unitscope.data.sceneworld import OBJECT_CLASSES, REGION_CLASSES, SceneWorldProbe

    probe = SceneWorldProbe(n=4, seed=7, size=64)
    rule = foreground_rule(probe)
    assert rule.origin == "sceneworld" and set(rule.background) == set(REGION_CLASSES)
    for i in range(len(probe)):
        sample = probe[i]
        rendered = probe.render(i)
        placed = np.isin(rendered.object_map, [inst.label for inst in rendered.instances])[1::2, 1::2]
        mask = rule.mask(sample, "kitchen")
        assert mask is not None and np.array_equal(mask, placed) and 0 < mask.mean() < 1
    # a SceneWorld export read as a Broden directory is scored on the same pixels through BACKGROUND_OBJECTS
    assert set(REGION_CLASSES) <= set(BACKGROUND_OBJECTS) and not set(OBJECT_CLASSES) & set(BACKGROUND_OBJECTS)


def test_broden_foreground_background_list_and_own_class(tmp_path: Path) -> None:
    from unitscope.data import open_probe
    from unitscope.data.sceneworld import SceneWorldProbe

    world = SceneWorldProbe(n=3, seed=5, size=64)
    broden = open_probe(str(write_broden(tmp_path / "w", world, progress=False)))
    rule = foreground_rule(broden)
    assert rule.origin == "default" and {"sky", "wall", "floor"} <= set(rule.background)
    for i in range(3):
        assert np.array_equal(rule.mask(broden[i], None), foreground_rule(world).mask(world[i], None))
    given = foreground_rule(broden, ["sky", "tree"])
    assert "wall" in given.foreground and "tree" not in given.foreground and given.origin == "given"
    stove = rule.foreground["stove"]
    assert rule.relevant("stove") == {stove}  # an object network's class: its own pixels
    assert rule.relevant("kitchen") == set(rule.foreground.values())
    with pytest.raises(UsageError, match="did you mean wall"):
        foreground_rule(broden, ["wal"])


def test_cam_on_a_sceneworld_export_is_not_one_by_construction(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's setting: the old mask (every object label) covered every pixel, so hit = share = lift = 1."""
    from unitscope.data.sceneworld import SceneWorldProbe

    broden = write_broden(tmp_path / "w", SceneWorldProbe(n=4, seed=9), progress=False)
    result = run_cli(capsys, "cam", "--model", "sceneworld-scene", "--data", str(broden), "--n", "4",
                     "--pictures", "1", "--out", str(tmp_path / "o"))
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "o" / "cam.json").read_text())
    score = report["localisation"]
    assert score["n_images"] + score["excluded"] + score["skipped"] == 4 and score["n_images"] >= 3
    assert all(row["object_share"] < 0.9 for row in report["images"] if row["mask"] == "scored")
    assert score["object_share"] < 0.9 and score["hit_rate"] != 1.0
    assert report["foreground"]["foreground"] == "object labels minus BACKGROUND_OBJECTS"
    assert "pointing game" in result.out and "random" in result.out


def _planted(tmp_path: Path) -> tuple[str, Path]:
    return write_gap_model(tmp_path), write_broden(tmp_path / "b", PlantedProbe(4, seed=4, blue_noise=False),
                                                   progress=False)


def test_random_twin_is_the_same_architecture_reinitialised_explaining_the_same_class(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from unitscope.analysis.cam.methods import CAM
    from unitscope.data import open_probe
    from unitscope.dissection.baseline import random_baseline
    from unitscope.models.loading import load_model

    spec, broden = _planted(tmp_path)
    result = run_cli(capsys, "cam", "--model", spec, "--data", str(broden), "--n", "4", "--baseline-seed", "3",
                     "--pictures", "0", "--out", str(tmp_path / "o"))
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "o" / "cam.json").read_text())
    baseline = report["baseline"]
    assert baseline["kind"] == "random" and baseline["seed"] == 3 and set(baseline["differences"]) == {
        "lift", "pointing"}
    assert baseline["verdict"] in result.out
    twin = random_baseline(load_model(spec), 3)
    probe = open_probe(str(broden))
    for i, row in enumerate(report["images"]):
        sample = probe[i]
        x = twin.preprocess.batch([sample.image], "cpu")
        target = ["left", "right"].index(str(row["class"]))  # the trained network's class
        heat = CAM(twin.module, "features", twin.module.fc)(x, [target]).heatmaps[0].double().numpy()
        mask = np.isin(sample.pixel_labels["object"][0], [1, 2])  # square and bar: both foreground
        assert row["random_top_hit_rate"] == pytest.approx(top_share_on_mask(heat, mask, 0.2), abs=1e-9)
        assert row["random_pointing"] == pytest.approx(pointing_game(heat, mask))
    assert baseline["localisation"]["hit_rate"] == pytest.approx(
        np.mean([row["random_top_hit_rate"] for row in report["images"]]))


def test_cli_baseline_none_and_background(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, broden = _planted(tmp_path)
    base = ["cam", "--model", spec, "--data", str(broden), "--n", "4", "--pictures", "0"]
    assert run_cli(capsys, *base, "--baseline", "none", "--out", str(tmp_path / "none")).code == 0
    report = json.loads((tmp_path / "none" / "cam.json").read_text())
    assert report["baseline"] is None and "random_pointing" not in report["images"][0]
    assert run_cli(capsys, *base, "--background", "bar", "--out", str(tmp_path / "square")).code == 0
    square = json.loads((tmp_path / "square" / "cam.json").read_text())
    assert square["foreground"]["background"] == ["bar"]
    probe = PlantedProbe(4, seed=4, blue_noise=False)
    for i, row in enumerate(square["images"]):  # the square alone: 16 of 256 pixels
        assert row["object_share"] == pytest.approx((probe[i].pixel_labels["object"] == 1).mean()) == 16 / 256
    assert_usage_error(run_cli(capsys, *base, "--background", "sqare", "--out", str(tmp_path / "x")),
                       "did you mean square")
    assert not (tmp_path / "x").exists()
    folder = tmp_path / "pictures"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(probe[0].image).save(folder / "a.png")
    assert_usage_error(run_cli(capsys, "cam", "--model", spec, "--data", str(folder), "--background", "wall",
                               "--out", str(tmp_path / "y")), "labelled --data")
