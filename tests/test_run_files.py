"""Every file of a run folder is untrusted input: a damaged, mistyped or foreign file is one line, exit 2.

One small real run is made per module; each case damages a copy of it (a truncated or mistyped array, a
table missing a column or cut off mid-row, a summary.json of wrong types, a layer folder outside the run, a
resume checkpoint that does not fit) and runs a command that reads it: one ``unitscope: error:`` line naming
the file, never a traceback, a silently wrong table, or a file of another run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import assert_usage_error, run_cli
from planted import PlantedProbe, write_model

from unitscope.cli.main import main
from unitscope.data.broden_export import write_broden
from unitscope.dissection.engine import DissectionEngine
from unitscope.dissection.result import DissectionResult, save_npz

Damage = Callable[[Path], str]  # damages the run folder given; returns a fragment of the expected message
DAMAGE: dict[str, Damage] = {}


def damage(name: str) -> Callable[[Damage], Damage]:
    def register(make: Damage) -> Damage:
        DAMAGE[name] = make
        return make
    return register


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A finished run of the planted model on a 12-image Broden export, and its dissect command."""
    root = tmp_path_factory.mktemp("runfiles")
    write_broden(root / "broden", PlantedProbe(12), progress=False)
    command = ["dissect", "--model", write_model(root), "--layer", "0", "--data", str(root / "broden"),
               "--quantile", "0.3", "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--no-report"]
    assert _cli(*command, "--out", str(root / "run")) == 0
    return root / "run", command


@pytest.fixture
def run(made: tuple[Path, list[str]], tmp_path: Path) -> Path:
    """A fresh copy of the finished run, beside an intact second run ``other`` (a foreign folder to point at)."""
    shutil.copytree(made[0], tmp_path / "other")
    return Path(shutil.copytree(made[0], tmp_path / "run"))


def _summary(run: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((run / "summary.json").read_text())
    change(data)
    (run / "summary.json").write_text(json.dumps(data))


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cut_last_row(path: Path) -> None:
    """Cut a CSV file in the middle of its last row, as a full disk or an interrupted copy does."""
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind(",") - 1])


def _table(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(pd.read_csv(path, keep_default_na=False)).to_csv(path, index=False)


# ---------------------------------------------------------------- arrays
@damage("iou-truncated")
def _iou_truncated(run: Path) -> str:
    _cut(run / "0" / "iou.npy")
    return "iou.npy is corrupt"


@damage("iou-text-dtype")
def _iou_text(run: Path) -> str:
    np.save(run / "0" / "iou.npy", np.full((3, 8), "x"))
    return "iou.npy is corrupt (<U1 values, expected float)"


@damage("iou-wrong-shape")
def _iou_shape(run: Path) -> str:
    np.save(run / "0" / "iou.npy", np.zeros((2, 8), np.float32))
    return "iou.npy is corrupt (shape (2, 8), expected 3×any)"


@damage("iou-too-few-labels")
def _iou_labels(run: Path) -> str:
    np.save(run / "0" / "iou.npy", np.zeros((3, 4), np.float32))
    return "4 label columns, the run's concepts need 8"


@damage("iou-above-one")
def _iou_above_one(run: Path) -> str:
    np.save(run / "0" / "iou.npy", np.full((3, 8), 7.0, np.float32))
    return "values outside [0, 1]"


@damage("iou-pickled-objects")
def _iou_pickle(run: Path) -> str:
    np.save(run / "0" / "iou.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    return "Object arrays cannot be loaded when allow_pickle=False"


@damage("histogram-truncated")
def _histogram_truncated(run: Path) -> str:
    _cut(run / "0" / "histogram.npz")
    return "histogram.npz is corrupt"


@damage("histogram-wrong-shape")
def _histogram_shape(run: Path) -> str:
    save_npz(run / "0" / "histogram.npz", counts=np.zeros((3, 7), np.int64))
    return "counts: shape (3, 7)"


@damage("histogram-float-counts")
def _histogram_float(run: Path) -> str:
    with np.load(run / "0" / "histogram.npz") as stored:
        counts = stored["counts"]
    save_npz(run / "0" / "histogram.npz", counts=counts.astype(np.float64))
    return "counts: float64 values, expected int"


@damage("top-maps-truncated")
def _maps_truncated(run: Path) -> str:
    _cut(run / "0" / "top_maps.npy")
    return "top_maps.npy is corrupt"


@damage("top-maps-wrong-shape")
def _maps_shape(run: Path) -> str:
    np.save(run / "0" / "top_maps.npy", np.zeros((3, 12, 8, 8), np.float32))
    return "shape (3, 12, 8, 8), expected 3×12×16×16"


@damage("thresholds-text")
def _thresholds_text(run: Path) -> str:
    np.save(run / "0" / "thresholds.npy", np.array(["a", "b", "c"]))
    return "thresholds.npy is corrupt"


# ---------------------------------------------------------------- tables
@damage("concepts-missing-column")
def _concepts_column(run: Path) -> str:
    _table(run / "concepts.csv", lambda t: t.drop(columns="category"))
    return "concepts.csv is corrupt (no column category)"


@damage("concepts-cut-off-row")
def _concepts_cut(run: Path) -> str:
    _cut_last_row(run / "concepts.csv")
    return "concepts.csv is corrupt"


@damage("concepts-number-text")
def _concepts_number(run: Path) -> str:
    _table(run / "concepts.csv", lambda t: t.assign(number=["one", *t["number"][1:].astype(str)]))
    return "column number on line 2 holds 'one'"


@damage("concepts-huge-label-number")
def _concepts_huge(run: Path) -> str:
    _table(run / "concepts.csv", lambda t: t.assign(number=[10**12, *t["number"][1:]]))
    return "concepts.csv is corrupt (label numbers"


@damage("units-missing-label-column")
def _units_label(run: Path) -> str:
    _table(run / "0" / "units.csv", lambda t: t.drop(columns="label"))
    return "units.csv is corrupt (no column label)"


@damage("units-missing-iou-column")
def _units_iou(run: Path) -> str:
    _table(run / "0" / "units.csv", lambda t: t.drop(columns="iou"))
    return "units.csv is corrupt (no column iou)"


@damage("units-cut-off-row")
def _units_cut(run: Path) -> str:
    _cut_last_row(run / "0" / "units.csv")
    return "units.csv is corrupt"


@damage("units-detector-not-bool")
def _units_detector(run: Path) -> str:
    _table(run / "0" / "units.csv", lambda t: t.assign(detector=["maybe", *t["detector"][1:].astype(str)]))
    return "column detector on line 2 holds 'maybe'"


@damage("units-row-missing")
def _units_row(run: Path) -> str:
    _table(run / "0" / "units.csv", lambda t: t.iloc[:2])
    return "2 rows for units 0-1, the run records units 0-2"


@damage("top-images-missing-column")
def _top_column(run: Path) -> str:
    _table(run / "0" / "top_images.csv", lambda t: t.drop(columns="score"))
    return "top_images.csv is corrupt (no column score)"


@damage("top-images-foreign-image")
def _top_image(run: Path) -> str:
    _table(run / "0" / "top_images.csv", lambda t: t.assign(image=[999, *t["image"][1:]]))
    return "column image holds 0-999, outside 0-11"


@damage("top-images-cut-off-row")
def _top_cut(run: Path) -> str:
    _cut_last_row(run / "0" / "top_images.csv")
    return "top_images.csv is corrupt"


# ---------------------------------------------------------------- summary.json
@damage("summary-units-many")
def _units_many(run: Path) -> str:
    _summary(run, lambda d: d["layers"][0].update(units="many"))
    return "layers[0].units is 'many', expected int"


@damage("summary-layers-not-a-list")
def _layers_not_list(run: Path) -> str:
    _summary(run, lambda d: d.update(layers=5))
    return "summary.json is corrupt"


@damage("summary-n-images-text")
def _n_images_text(run: Path) -> str:
    _summary(run, lambda d: d.update(n_images="12"))
    return "n_images is '12', expected int"


@damage("summary-map-size-one-number")
def _map_size(run: Path) -> str:
    _summary(run, lambda d: d["layers"][0].update(map_size=[16]))
    return "layers[0].map_size has 1 items, expected 2"


@damage("summary-skipped-not-an-image")
def _skipped(run: Path) -> str:
    _summary(run, lambda d: d.update(skipped={"x": "unreadable"}))
    return "skipped image 'x'"


@damage("summary-settings-list")
def _settings_list(run: Path) -> str:
    _summary(run, lambda d: d["spec"].update(settings={"quantile": [0.3]}))
    return "spec.settings.quantile is [0.3]"


# ---------------------------------------------------------------- folders outside the run
@damage("directory-parent")
def _directory_parent(run: Path) -> str:
    _summary(run, lambda d: d["layers"][0].update(directory="../other/0"))
    return "layers[0].directory '../other/0' is not a plain name inside the run"


@damage("directory-absolute")
def _directory_absolute(run: Path) -> str:
    _summary(run, lambda d: d["layers"][0].update(directory=str(run.parent / "other" / "0")))
    return "is not a plain name inside the run"


@damage("directory-not-the-layers")
def _directory_other(run: Path) -> str:
    (run / "0").rename(run / "zero")
    _summary(run, lambda d: d["layers"][0].update(directory="zero"))
    return "layer '0' has directory 'zero', not '0'"


@damage("directory-symlink-out")
def _directory_symlink(run: Path) -> str:
    shutil.rmtree(run / "0")
    (run / "0").symlink_to(run.parent / "other" / "0")
    return "points outside the run"


@damage("units-csv-symlink-out")
def _units_symlink(run: Path) -> str:
    (run / "0" / "units.csv").unlink()
    (run / "0" / "units.csv").symlink_to(run.parent / "other" / "0" / "units.csv")
    return "points outside the run"


@damage("top-maps-name-a-path")
def _maps_path(run: Path) -> str:
    _summary(run, lambda d: d["layers"][0].update(top_maps="../../other/0/top_maps.npy"))
    return "layers[0].top_maps"


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_report_of_a_damaged_run_is_one_line(kind: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fragment = DAMAGE[kind](run)
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert_usage_error(run_cli(capsys, "report", str(run)), fragment)
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before  # nothing written


@pytest.mark.parametrize("kind", ["units-missing-label-column", "iou-wrong-shape", "summary-units-many",
                                  "directory-parent", "units-csv-symlink-out"])
@pytest.mark.parametrize("command", ["compare", "explain", "segment"])
def test_every_reader_refuses_a_damaged_run(kind: str, command: str, run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fragment = DAMAGE[kind](run)
    out = str(tmp_path / "out")
    args = {"compare": ["compare", str(tmp_path / "other"), str(run), "--out", out],
            "explain": ["explain", "--run", str(run), "--layer", "0", "--out", out],
            "segment": ["segment", "--model", "sceneworld-scene", "--run", str(run), "--data", "sceneworld",
                        "--n", "2", "--out", out]}[command]
    assert_usage_error(run_cli(capsys, *args), fragment)
    assert not (tmp_path / "out").exists()


def test_an_intact_run_passes_every_check(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loaded = DissectionResult.load(run)
    layer = loaded.layers["0"]
    assert layer.units["label"].tolist()[:2] == ["square", "bar"] and layer.units["detector"].dtype == bool
    assert layer.iou is not None and layer.top_maps is not None and layer.histogram is not None
    result = run_cli(capsys, "report", str(run), "--units", "1")
    assert result.code == 0, result.err
    assert "unlabelled" not in (run / "report.html").read_text().lower()


def test_a_run_reached_through_a_symlink_is_its_own(run: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(run)
    assert DissectionResult.load(tmp_path / "alias").layers["0"].units.shape[0] == 3


# ---------------------------------------------------------------- resume state (RUN.partial)
@pytest.fixture(scope="module")
def interrupted(made: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``RUN.partial`` of the same command stopped after pass 1 (as by Ctrl-C): config.json, work/pass1.pt, caches."""
    out = tmp_path_factory.mktemp("interrupted") / "run"

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DissectionEngine, "_pass_two", stop)
        assert _cli(*made[1], "--out", str(out)) == 130
    staging = out.with_name("run.partial")
    assert (staging / "work" / "pass1.pt").is_file()
    return staging


def _state(staging: Path, name: str, change: Callable[[dict], object]) -> None:
    """Change the checkpoint ``work/NAME`` in place (``change`` mutates it)."""
    path = staging / "work" / name
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _new_state(staging: Path, name: str, state: object) -> None:
    torch.save(state, staging / "work" / name)


STATES: dict[str, tuple[Callable[[Path], None], str]] = {
    "pass1-layer-renamed": (lambda s: _state(s, "pass1.pt", lambda d: d.update(layers={"other": d["layers"]["0"]})),
                            "holds layer 'other', which this run does not dissect"),
    "pass1-next-index-text": (lambda s: _state(s, "pass1.pt", lambda d: d.update(next_index="many")),
                              "next_index 'many' is not an image count 0-12"),
    "pass1-topk-missing": (lambda s: _state(s, "pass1.pt", lambda d: d["layers"]["0"].pop("topk")),
                           "(no 'topk')"),
    "pass1-shape-wrong": (lambda s: _state(s, "pass1.pt", lambda d: d["layers"]["0"].update(shape="3x16x16")),
                          "layer '0' has shape '3x16x16'"),
    "pass1-not-a-checkpoint": (lambda s: _new_state(s, "pass1.pt", [1, 2, 3]),
                               "it holds list, not a checkpoint"),
    "pass1-cache-truncated": (lambda s: _cut(s / "work" / "activations-0.f32"),
                              "activations-0.f32 is 9,600 bytes, expected 19,200 bytes or more"),
    "pass2-layer-missing": (lambda s: _new_state(s, "pass2.pt", {"next_index": 6, "layers": {}, "evidence": {}}),
                            "layers lacks layer '0' after 6 images"),
    "pass2-foreign-layer": (lambda s: _new_state(s, "pass2.pt", {"next_index": 6, "layers": {"pool5": {}}}),
                            "holds layer 'pool5'"),
    "config-json-cut": (lambda s: _cut(s / "config.json"), "holds an interrupted run of a different command"),
}


@pytest.mark.parametrize("kind", sorted(STATES))
def test_a_resume_state_that_does_not_fit_is_one_line(kind: str, interrupted: Path, made: tuple[Path, list[str]],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    staging = Path(shutil.copytree(interrupted, tmp_path / "run.partial"))
    spoil, fragment = STATES[kind]
    spoil(staging)
    assert_usage_error(run_cli(capsys, *made[1], "--out", str(tmp_path / "run")), fragment)
    assert not (tmp_path / "run").exists()


def test_an_intact_resume_state_resumes(interrupted: Path, made: tuple[Path, list[str]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(interrupted, tmp_path / "run.partial")
    result = run_cli(capsys, *made[1], "--out", str(tmp_path / "run"))
    assert result.code == 0 and "resuming the interrupted run" in result.out, result.err
    for name in ("0/units.csv", "0/iou.npy", "0/top_images.csv"):
        assert (tmp_path / "run" / name).read_bytes() == (made[0] / name).read_bytes(), name
    assert not os.path.exists(tmp_path / "run.partial")
