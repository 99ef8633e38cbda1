"""``unitscope rf``: the theoretical table, an empirical run end to end, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_usage_error, run_cli
from PIL import Image

from unitscope.cli.rf import parse_units

TINY_MODEL = """
from torch import nn

def build():
    return nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    )
"""


@pytest.fixture
def tiny_model(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(TINY_MODEL)
    return f"{path}:build"


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_theoretical_fields_as_json(tiny_model: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rf", "--model", tiny_model, "--json", "--input-size", "32")
    assert result.code == 0, result.err
    fields = json.loads(result.out)
    # conv 5/2 pad 2 → size 5, start 0; pool 3/2 → 5 + 2*2 = 9, jump 4, start 0 + 1*2 = 2.
    assert fields["0"] == {"size": 5, "stride": 2, "start": 0.0}
    assert fields["2"] == {"size": 9, "stride": 4, "start": 2.0}
    assert "5" not in fields  # the linear layer has no receptive field


def test_theoretical_table_names_paper_layers(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "rf", "--model", "alexnet", "--layer", "conv5", "--layer", "pool5")
    assert result.code == 0, result.err
    rows = [line.split() for line in result.out.splitlines()[1:]]
    assert rows == [["features.11", "conv5", "163", "16", "15.0", "13x13"],
                    ["features.12", "pool5", "195", "32", "31.0", "6x6"]]


def test_empirical_run_end_to_end(tiny_model: str, image_folder: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    result = run_cli(capsys, "rf", "--model", tiny_model, "--layer", "2", "--empirical", "--data",
                     str(image_folder), "--topk", "2", "--patch", "3", "--stride", "2", "--units", "0-1",
                     "--out", str(out), "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)["2"]
    assert summary["theoretical"] == 9 and summary["engine"].startswith("incremental")
    record = json.loads((out / "rf.json").read_text())["layers"]["2"]
    assert set(record["units"]) == {"0", "1"} and record["theoretical"]["size"] == 9
    sizes = [s for s in record["units"].values() if s is not None]
    assert all(0 < s <= 9 + 3 - 1 for s in sizes)  # never wider than the field plus one occluder
    assert (out / "rf.csv").is_file() and (out / "rf.png").is_file()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--patch", "0"], "--patch must be positive"),
        (["--stride", "0"], "--stride must be positive"),
        (["--patch", "30"], "larger than the 24x24 image"),
        (["--units", "9"], "unit 9 is out of range"),
        (["--units", "3-1"], "--units takes"),
        (["--layer", "4"], "no spatial extent"),
        (["--layer", "nope"], "unknown layer"),
    ],
)
def test_bad_input_exits_2_with_one_line(extra: list[str], fragment: str, tiny_model: str, image_folder: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rf", "--model", tiny_model, "--empirical", "--data", str(image_folder), "--topk", "1",
            "--out", str(tmp_path / "run")]
    if "--layer" not in extra:
        args += ["--layer", "2"]
    assert_usage_error(run_cli(capsys, *args, *extra), fragment)
    assert not (tmp_path / "run").exists()


def test_empirical_needs_a_layer_and_an_output(tiny_model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert_usage_error(run_cli(capsys, "rf", "--model", tiny_model, "--empirical"), "--empirical needs")


def test_parse_units() -> None:
    assert parse_units("0-3,7,2") == [0, 1, 2, 3, 7]
    assert parse_units(None) is None


def test_images_of_different_sizes_need_an_input_size(tiny_model: str, image_folder: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((30, 20, 3), dtype=np.uint8)).save(image_folder / "9.png")
    args = ["rf", "--model", tiny_model, "--layer", "2", "--empirical", "--data", str(image_folder),
            "--topk", "1", "--patch", "3", "--out", str(tmp_path / "run")]
    assert_usage_error(run_cli(capsys, *args), "differ in size")
    result = run_cli(capsys, *args, "--input-size", "24", "--json")
    assert result.code == 0, result.err
