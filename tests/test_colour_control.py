"""The colour control (issue 24, item 4): SceneWorld recoloured with one palette, and ``dissect --control recolored``.

The world: same masks and labels as the original (colour labels follow the new paint), deterministic per
(seed, image, item), and an item's class says (next to) nothing about its mean paint colour. The dissection:
a planted colour-only unit that detects red stoves does not survive the control, a planted shape unit does,
the twin is measured with the run's own thresholds, and the counts reach units.csv, summary.json, the CLI
and the report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from planted import PlantedProbe
from planted_colour import COLOUR_UNIT, SHAPE_UNIT, PlantedColourProbe, write_colour_model

from tests.cli_helpers import assert_usage_error, run_cli
from unitscope.data import open_probe
from unitscope.data.identity import probe_identity
from unitscope.data.sceneworld import COLOR_NAMES, SceneWorldProbe
from unitscope.data.sceneworld.colors import name_colors
from unitscope.data.sceneworld.recolor import recolor_rng
from unitscope.data.sceneworld.vocabulary import label_numbers
from unitscope.dissection.confidence import confidence_lines
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.report.dissection import ReportOptions, build_report

COLOUR_NUMBERS = np.array([label_numbers("color")[c] for c in COLOR_NAMES])


# ---------------------------------------------------------------- the recoloured world
def test_recoloured_sample_has_the_original_masks_and_labels_but_new_paint() -> None:
    plain, recoloured = SceneWorldProbe(40, seed=5, size=64), SceneWorldProbe(40, seed=5, size=64, recolor=True)
    changed = []
    for i in range(40):
        a, b = plain.render(i), recoloured.render(i)
        for field in ("object_map", "part_map", "material_map", "item_map"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (i, field)
        assert (a.texture, a.scene, a.class_index, a.instances) == (b.texture, b.scene, b.class_index, b.instances)
        sa, sb = plain[i], recoloured[i]
        for category in ("object", "part", "material"):
            assert np.array_equal(sa.pixel_labels[category], sb.pixel_labels[category]), (i, category)
        assert sa.image_labels == sb.image_labels
        assert np.array_equal(b.color_map, COLOUR_NUMBERS[name_colors(b.base)])  # colour labels follow the paint
        changed.append((a.color_map != b.color_map).mean())
        assert not np.array_equal(a.image, b.image)
    assert np.mean(changed) > 0.5


def test_recolouring_is_deterministic_per_seed_image_and_item() -> None:
    small, large = SceneWorldProbe(5, seed=3, size=48, recolor=True), SceneWorldProbe(60, seed=3, size=48, recolor=True)
    assert np.array_equal(small.render(4).image, large.render(4).image)
    assert np.array_equal(small.render(4).image, SceneWorldProbe(5, seed=3, size=48, recolor=True).render(4).image)
    other = SceneWorldProbe(5, seed=4, size=48, recolor=True).render(4)
    assert not np.array_equal(other.image, small.render(4).image)
    keyed = [recolor_rng(3, 4, k).random() for k in range(3)] + [recolor_rng(3, 5, 0).random()]
    assert len(set(keyed)) == 4 and keyed[0] == recolor_rng(3, 4, 0).random()


def test_the_recoloured_world_is_its_own_probe_set_and_twin() -> None:
    plain = SceneWorldProbe(8, seed=1, size=48)
    twin = plain.recolored()
    assert (twin.name, twin.n, twin.seed, twin.image_size) == ("sceneworld-recolored", 8, 1, (48, 48))
    assert "recolor" not in plain.identity() and twin.identity()["recolor"] is True  # old runs keep their identity
    assert probe_identity(plain).digest != probe_identity(twin).digest
    opened = open_probe("sceneworld-recolored", n=8, seed=1, size=48)
    assert opened.name == "sceneworld-recolored" and np.array_equal(opened[3].image, twin[3].image)
    assert open_probe("sceneworld-objects-recolored", n=2, size=48).name == "sceneworld-objects-recolored"
    with pytest.raises(UsageError, match="already recoloured"):
        twin.recolored()


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in mutual information (bits) of two discrete variables."""
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(joint, (xi, yi), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    seen = joint > 0
    return float((joint[seen] * np.log2(joint[seen] / outer[seen])).sum())


def _class_and_colour(probe: SceneWorldProbe) -> tuple[np.ndarray, np.ndarray]:
    """Per item of every image (placed objects and background regions; from the exact item masks): its object
    class and the named colour nearest its mean paint."""
    classes, means = [], []
    for i in range(len(probe)):
        r = probe.render(i)
        assert r.item_map is not None
        items, labels, paint = r.item_map.ravel(), r.object_map.ravel(), r.base.reshape(-1, 3)
        area = np.bincount(items)
        sums = np.stack([np.bincount(items, paint[:, c], minlength=len(area)) for c in range(3)], axis=1)
        label = np.zeros(len(area), np.int64)
        label[items] = labels  # one class per item
        shown = area > 0
        classes.append(label[shown])
        means.append(sums[shown] / area[shown, None])
    return np.concatenate(classes), name_colors(np.concatenate(means))


def test_an_items_class_says_nothing_about_its_paint_in_the_recoloured_world() -> None:
    classes, colours = _class_and_colour(SceneWorldProbe(1200, seed=0, size=32, recolor=True))
    recoloured = _mutual_information(classes, colours)
    # The plug-in estimate is biased upwards, by about this much when class and colour are independent:
    bias = (len(np.unique(classes)) - 1) * (len(np.unique(colours)) - 1) / (2 * len(classes) * np.log(2))
    original = _mutual_information(*_class_and_colour(SceneWorldProbe(300, seed=0, size=32)))  # large: fewer scenes
    print(f"\nI(class; named colour of an item's mean paint), plug-in: original {original:.3f} bits (300 scenes), "
          f"recoloured {recoloured:.3f} bits ({len(classes)} items of 1200 scenes; bias at independence "
          f"{bias:.3f}, so {recoloured - bias:.3f} corrected)")
    assert recoloured <= 0.05
    assert original > 0.5  # the measurement sees colour where there is some


def test_world_recolor_exports_the_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, extra in (("plain", []), ("recoloured", ["--recolor"])):
        result = run_cli(capsys, "world", "--out", str(tmp_path / name), "--n", "3", "--size", "32",
                         "--previews", "0", *extra)
        assert result.code == 0, result.err
    assert "recoloured scenes" in result.out
    plain, recoloured = open_probe(str(tmp_path / "plain")), open_probe(str(tmp_path / "recoloured"))
    for i in range(3):
        a, b = plain[i], recoloured[i]
        assert np.array_equal(a.pixel_labels["object"], b.pixel_labels["object"])
        assert not np.array_equal(a.image, b.image)
        assert np.array_equal(b.image, SceneWorldProbe(3, size=32, recolor=True)[i].image)


# ---------------------------------------------------------------- dissect --control recolored
SETTINGS = DissectSettings(quantile=0.02, upsample="bilinear", batch_size=16, workers=0, bootstrap=50,
                           control="recolored")


def _planted_run(tmp_path: Path, twin: str = "recolor", name: str = "run") -> DissectionResult:
    spec = write_colour_model(tmp_path)
    return dissect(spec, ["0"], PlantedColourProbe(48, twin=twin), tmp_path / name, mean=(0.0, 0.0, 0.0),
                   std=(1.0, 1.0, 1.0), settings=SETTINGS, progress=False)


def test_a_colour_filter_fails_the_control_and_a_shape_detector_survives(tmp_path: Path) -> None:
    result = _planted_run(tmp_path)
    units = DissectionResult.load(tmp_path / "run").units["0"].set_index("unit")
    for unit in (COLOUR_UNIT, SHAPE_UNIT):  # on the world where stoves are red, both detect the stove
        assert units.loc[unit, "label"] == "stove" and bool(units.loc[unit, "detector"])
        assert units.loc[unit, "iou"] > 0.25
    assert units.loc[COLOUR_UNIT, "control_iou"] < 0.04 and not units.loc[COLOUR_UNIT, "survives_control"]
    assert units.loc[SHAPE_UNIT, "control_iou"] > 0.25 and units.loc[SHAPE_UNIT, "survives_control"]
    counts = result.record.control["layers"]["0"]  # type: ignore[index]
    assert (counts["detectors"], counts["survive_control"]) == (2, 1)
    assert counts["categories"]["object"] == {"detectors": 2, "survive_control": 1}
    low, high = counts["survive_ci"]
    assert low <= 1 <= high
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert recorded["control"]["layers"]["0"]["survive_control"] == 1
    assert recorded["spec"]["settings"]["control"] == "recolored"
    assert "colour control: 1 of 2 object/part detectors survive" in confidence_lines(result)


def test_the_twin_is_measured_with_the_runs_thresholds(tmp_path: Path) -> None:
    same = _planted_run(tmp_path, twin="same", name="same").units["0"]
    # An identical twin: every detector keeps its IoU exactly and survives.
    assert np.array_equal(same["control_iou"].to_numpy(), same["iou"].to_numpy())
    assert same["survives_control"].tolist() == same["detector"].tolist() == [True, True]
    # A twin at half brightness: recomputed thresholds would find the same squares; the run's find nothing.
    dim = _planted_run(tmp_path, twin="dim", name="dim").units["0"]
    assert (dim["control_iou"] == 0).all() and not dim["survives_control"].any()


def test_units_of_other_categories_are_not_tested(tmp_path: Path) -> None:
    result = dissect(write_colour_model(tmp_path), ["0"], PlantedColourProbe(48), None, mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0), settings=DissectSettings(quantile=0.02, upsample="bilinear", workers=0,
                                                                   bootstrap=0, control="recolored", iou_threshold=0.9),
                     progress=False)
    units = result.units["0"]
    assert not units["detector"].any()  # nothing reaches IoU 0.9: nothing to test
    assert units["control_iou"].isna().all() and not units["survives_control"].any()
    assert result.record.control["layers"]["0"]["detectors"] == 0  # type: ignore[index]
    assert "survive_ci" not in result.record.control["layers"]["0"]  # type: ignore[index]


def test_the_random_twin_gets_the_control_too(tmp_path: Path) -> None:
    settings = DissectSettings(quantile=0.02, upsample="bilinear", workers=0, bootstrap=0, control="recolored",
                               baseline="random")
    result = dissect(write_colour_model(tmp_path), ["0"], PlantedColourProbe(24), None, mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0), settings=settings, progress=False)
    assert result.record.baseline is not None
    random = result.record.baseline["control"]["layers"]["0"]
    assert random["detectors"] >= random["survive_control"] >= 0 and "categories" in random
    assert result.record.baseline["control"]["data"] == "planted-colour-24-0-recolored"


def test_the_control_is_part_of_the_run_identity(tmp_path: Path) -> None:
    assert "control" not in DissectSettings().identity()  # runs before --control keep their identity
    assert DissectSettings(control="recolored").identity()["control"] == "recolored"
    spec = write_colour_model(tmp_path)
    plain = DissectSettings(quantile=0.02, upsample="bilinear", workers=0, bootstrap=0)
    dissect(spec, ["0"], PlantedColourProbe(16), tmp_path / "run", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            settings=plain, progress=False)
    with pytest.raises(UsageError, match="setting control differs"):
        dissect(spec, ["0"], PlantedColourProbe(16), tmp_path / "run", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                settings=DissectSettings(quantile=0.02, upsample="bilinear", workers=0, bootstrap=0,
                                         control="recolored"), progress=False)
    with pytest.raises(UsageError, match="--control must be one of"):
        DissectSettings(control="greyscale").validate()


def test_a_probe_without_a_twin_is_refused_before_any_work(tmp_path: Path) -> None:
    from planted import write_model

    with pytest.raises(UsageError, match="has none"):
        dissect(write_model(tmp_path), ["0"], PlantedProbe(8), tmp_path / "run", settings=SETTINGS, progress=False)
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize(("data", "fragment"), [
    ("{tmp}", "has none"), ("sceneworld-recolored", "already recoloured"),
])
def test_cli_control_needs_a_sceneworld_probe_and_says_so_before_torch(tmp_path: Path, data: str,
                                                                        fragment: str) -> None:
    import subprocess

    code = ("import sys\nfrom unitscope.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    args = ["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--data", data.format(tmp=tmp_path),
            "--control", "recolored", "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and lines[0].startswith("unitscope: error:")


def test_cli_dissect_prints_and_the_report_shows_the_survivors(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    result = _planted_run(tmp_path)

    def no_model() -> LoadedModel:
        raise AssertionError("the run stored its maps: the report needs no model")

    page = build_report(result, PlantedColourProbe(48), no_model, ReportOptions(max_units=2, images_per_unit=1))
    assert "Survive the colour control" in page
    assert ("of 2 object detectors, 1 still detects its object when every class is painted from one palette; "
            "1 is a colour filter") in page
    units = pd.read_csv(tmp_path / "run" / "0" / "units.csv")
    assert {"control_iou", "survives_control"} <= set(units.columns)
    untested = tmp_path / "untested"
    dissect(write_colour_model(tmp_path), ["0"], PlantedColourProbe(16), untested, mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0), settings=DissectSettings(quantile=0.02, upsample="bilinear", workers=0, bootstrap=0,
                                                          control="recolored", iou_threshold=0.9), progress=False)
    read = DissectionResult.load(untested).units["0"]  # empty cells read back as numbers (NaN), not text
    assert read["control_iou"].dtype == np.float64 and read["control_iou"].isna().all()
    assert read["survives_control"].dtype == bool
    bad = run_cli(capsys, "dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--control", "grey",
                  "--out", str(tmp_path / "x"))
    assert bad.code == 2 and "grey" in bad.err
    wrong = run_cli(capsys, "dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--data", str(tmp_path),
                    "--control", "recolored", "--out", str(tmp_path / "y"))
    assert_usage_error(wrong, "has none")
