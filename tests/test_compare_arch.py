"""compare across architectures: three networks of different depths and widths, one column each.

A tiny ResNet-18 (``layer2``, ``layer4``; 12 convolutions), the SceneWorld scene net (``conv3``, ``conv5``,
``pool5``; 5 convolutions) and a tiny VGG-16 (``conv7``, ``conv10``, ``pool13``; 13 convolutions), each
dissected on the same ten SceneWorld images. Relative depths (convolutions passed / all): layer2 6/12 = 50 %,
layer4 100 %; conv3 60 %, conv5 and pool5 100 % (pool5 later in module order); conv7 7/13 = 54 %,
conv10 77 %, pool13 100 %. The ResNet has the fewest layers, so it leads: layer2 pairs with conv3 and conv7,
layer4 with pool5 and pool13; conv5 and conv10 are nearer to none of its layers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_helpers import assert_usage_error, run_cli
from unitscope.analysis.compare.nulls import NOT_MEASURED_RANDOM
from unitscope.analysis.compare.pairing import pair_layers
from unitscope.analysis.compare.plots import categories_figure
from unitscope.analysis.compare.runs import compare_many
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError

MODELS = Path(__file__).with_name("arch_models.py")
NETS = {"scene": ("sceneworld-scene", ["conv3", "conv5", "pool5"]),
        "resnet": (f"{MODELS}:tiny_resnet18", ["layer2", "layer4"]),
        "vgg": (f"{MODELS}:tiny_vgg16", ["conv7", "conv10", "pool13"])}
DEPTH_GROUPS = ["conv3 ↔ layer2 ↔ conv7", "pool5 ↔ layer4 ↔ pool13"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arch_runs")
    for name, (model, layers) in NETS.items():
        dissect(model, layers, "sceneworld", root / name, n=10, size=64,
                settings=DissectSettings(topk=3, batch_size=10), progress=False)
    return {name: root / name for name in NETS}


def _compare(capsys: pytest.CaptureFixture[str], paths: list[Path], out: Path, *extra: str) -> object:
    return run_cli(capsys, "compare", *map(str, paths), "--out", str(out), *extra)


def test_three_architectures_pair_by_relative_depth_and_count_shares(runs: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    result = _compare(capsys, [runs["scene"], runs["resnet"], runs["vgg"]], out)
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    said = ("Layers paired by relative depth (the share of the network's convolutions a layer's output has passed "
            "through, 100% at its last convolutional stage): conv3 (60%) ↔ layer2 (50%) ↔ conv7 (54%); pool5 (100%) "
            "↔ layer4 (100%) ↔ pool13 (100%). Not paired (nearer to none of the leading run's layers): conv5 (100%) "
            "of scene, conv10 (77%) of vgg.")
    assert said in result.out  # type: ignore[attr-defined]
    table = pd.read_csv(out / "compare.csv")
    assert list(dict.fromkeys(table["layer"])) == DEPTH_GROUPS
    assert {"share_a", "share_b", "share_c", "random_detectors_c", "vs_random_c", "depth_b"} <= set(table.columns)
    assert (table["random_detectors_c"] == NOT_MEASURED_RANDOM).all()  # dissected without --baseline random
    top = table[table["layer"] == DEPTH_GROUPS[1]].set_index("category")
    assert top.loc["total", ["units_a", "units_b", "units_c"]].tolist() == [128, 32, 32]  # the nets' widths
    assert top.loc["total", ["layer_a", "layer_b", "layer_c"]].tolist() == ["pool5", "layer4", "pool13"]
    for side, name in zip("abc", NETS, strict=True):  # shares recounted from each run's own units.csv
        for group in DEPTH_GROUPS:
            rows = table[table["layer"] == group].set_index("category")
            layer = rows.loc["total", f"layer_{side}"]
            units = pd.read_csv(runs[name] / layer / "units.csv")
            detectors = units[units["detector"].astype(bool)]
            for category in rows.index:
                chosen = detectors if category == "total" else detectors[detectors["category"] == category]
                assert rows.loc[category, f"detectors_{side}"] == len(chosen)
                assert rows.loc[category, f"share_{side}"] == pytest.approx(len(chosen) / len(units), abs=1e-6)
    report = json.loads((out / "compare.json").read_text())
    assert report["pairing"] in result.out and set(report["runs"]) == {"a", "b", "c"}  # type: ignore[attr-defined]
    assert report["layers"][1] == {"label": DEPTH_GROUPS[1], "a": "pool5", "b": "layer4", "c": "pool13",
                                   "depths": {"a": 1.0, "b": 1.0, "c": 1.0}}
    html = (out / "report.html").read_text()
    assert "Layers paired by relative depth" in html and "pool5 (100%) ↔ layer4 (100%) ↔ pool13 (100%)" in html
    assert html.count("share of units</th>") == 3 and "scene vs resnet vs vgg" in html


def test_the_chart_shows_shares_of_units(runs: dict[str, Path]) -> None:
    loaded = [DissectionResult.load(runs[name]) for name in NETS]
    comparison = compare_many(loaded)
    figure = categories_figure(comparison)
    ax = figure.axes[0]
    assert "% of the layer's units" in ax.get_ylabel()
    table = comparison.categories.set_index(["layer", "category"])
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    for category in ("object", "scene"):
        for side, name in zip("abc", comparison.names, strict=True):
            expected = [100 * table.loc[(group, category), f"share_{side}"] for group in DEPTH_GROUPS]
            assert lines[f"{category} ({name})"] == pytest.approx(expected)


def test_pair_overrides_relative_depth(runs: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    result = _compare(capsys, [runs["scene"], runs["resnet"], runs["vgg"]], out, "--pair", "conv5:layer2:conv10")
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    assert "Layers paired as given by --pair: conv5 ↔ layer2 ↔ conv10." in result.out  # type: ignore[attr-defined]
    assert set(pd.read_csv(out / "compare.csv")["layer"]) == {"conv5 ↔ layer2 ↔ conv10"}
    assert "Layers paired as given by --pair" in (out / "report.html").read_text()


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--pair", "conv5:layer4"], "--pair conv5:layer4 names 2 layers for 3 runs"),
    (["--pair", "conv5:layer9:conv10"], "--pair conv5:layer9:conv10: resnet has no layer 'layer9'; it dissected "
                                         "layer2, layer4"),
])
def test_wrong_pairs_are_one_line(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  extra: list[str], fragment: str) -> None:
    result = _compare(capsys, [runs["scene"], runs["resnet"], runs["vgg"]], tmp_path / "cmp", *extra)
    assert_usage_error(result, fragment)  # type: ignore[arg-type]
    assert not (tmp_path / "cmp").exists()


def _edited(run: Path, to: Path, edit: object) -> Path:
    """A copy of ``run`` whose summary.json went through ``edit`` (a function of the parsed JSON)."""
    shutil.copytree(run, to)
    summary = json.loads((to / "summary.json").read_text())
    edit(summary)  # type: ignore[operator]
    summary["location"] = str(to.resolve())
    (to / "summary.json").write_text(json.dumps(summary))
    return to


def test_runs_of_different_probe_sets_need_force(runs: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def reseed(summary: dict) -> None:
        summary["spec"]["data"]["seed"] = 7

    other = _edited(runs["vgg"], tmp_path / "vgg7", reseed)
    result = _compare(capsys, [runs["scene"], runs["resnet"], other], tmp_path / "cmp")
    assert_usage_error(result, "scene and vgg7 used different probe sets")  # type: ignore[arg-type]
    assert "--force" in result.err  # type: ignore[attr-defined]
    forced = _compare(capsys, [runs["scene"], runs["resnet"], other], tmp_path / "cmp", "--force")
    assert forced.code == 0, forced.err  # type: ignore[attr-defined]
    notes = json.loads((tmp_path / "cmp" / "compare.json").read_text())["notes"]
    assert any(note.startswith("Scene and vgg7 used different probe sets") for note in notes)


def test_compare_needs_two_runs(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _compare(capsys, [runs["scene"]], tmp_path / "cmp")
    assert_usage_error(result, "compare needs two or more runs, got 1")  # type: ignore[arg-type]


def _forget_depths(summary: dict) -> None:
    for layer in summary["layers"]:
        layer.pop("depth", None)


def test_runs_recorded_without_depths(runs: dict[str, Path], tmp_path: Path) -> None:
    """A built-in model's architecture is rebuilt (no weights) to measure depths; a model from a file is not
    imported: its run asks for --pair."""
    scene = DissectionResult.load(_edited(runs["scene"], tmp_path / "scene", _forget_depths))
    resnet = DissectionResult.load(runs["resnet"])
    pairing = pair_layers((scene, resnet), ("scene", "resnet"))
    assert [group.described() for group in pairing.groups] == ["conv3 (60%) ↔ layer2 (50%)",
                                                               "pool5 (100%) ↔ layer4 (100%)"]
    old_resnet = DissectionResult.load(_edited(runs["resnet"], tmp_path / "resnet", _forget_depths))
    with pytest.raises(UsageError, match=r"resnet was dissected before .* --pair A:B"):
        pair_layers((scene, old_resnet), ("scene", "resnet"))
    assert pair_layers((scene, old_resnet), ("scene", "resnet"), ["conv5:layer4"]).groups[0].layers == \
        ("conv5", "layer4")
