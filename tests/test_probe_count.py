"""``--n`` on a directory: its first n rows when given, every row when not (it was silently ignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image
from planted import PlantedProbe, write_model

from unitscope.api import dissect as api_dissect
from unitscope.data import open_probe, probe_count
from unitscope.data.broden import BrodenProbe
from unitscope.data.broden_export import write_broden
from unitscope.data.image_folder import ImageFolderProbe
from unitscope.defaults import PROBE_N
from unitscope.dissection.record import read_record
from unitscope.dissection.result import DissectionResult
from unitscope.report.run_report import reopen_probe

ROWS = 5


@pytest.fixture
def broden_dir(tmp_path: Path) -> Path:
    return write_broden(tmp_path / "broden", PlantedProbe(ROWS), progress=False)


def test_open_probe_takes_the_first_n_rows_of_a_broden_directory(broden_dir: Path) -> None:
    whole = open_probe(str(broden_dir))
    assert isinstance(whole, BrodenProbe)
    assert len(whole) == ROWS and whole.limit is None and whole.rows_taken == ROWS
    first = open_probe(str(broden_dir), n=3)
    assert isinstance(first, BrodenProbe)
    assert len(first) == 3 and first.limit == 3 and first.rows_taken == 3
    assert [first.image_path(i) for i in range(3)] == [whole.image_path(i) for i in range(3)]
    np.testing.assert_array_equal(first[2].pixel_labels["object"], whole[2].pixel_labels["object"])
    more = open_probe(str(broden_dir), n=50)
    assert isinstance(more, BrodenProbe) and more.rows_taken == ROWS and more.limit == 50


def test_open_probe_takes_the_first_n_images_of_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i}.png")
    assert len(open_probe(str(folder))) == 4
    first = open_probe(str(folder), n=2)
    assert isinstance(first, ImageFolderProbe) and len(first) == 2 and first.limit == 2
    assert [p.name for p in first.paths] == ["0.png", "1.png"]


def test_sceneworld_keeps_its_default_count() -> None:
    assert len(open_probe("sceneworld")) == PROBE_N and len(open_probe("sceneworld", n=7)) == 7
    assert probe_count("sceneworld", None) == PROBE_N and probe_count("/some/dir", None) is None
    assert probe_count("/some/dir", 3) == 3


def _dissect(tmp_path: Path, data: Path, out: str, *extra: str) -> list[str]:
    return ["dissect", "--model", write_model(tmp_path), "--layer", "0", "--data", str(data), "--quantile", "0.3",
            "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--bootstrap", "0", "--no-report",
            "--out", str(tmp_path / out), *extra]


def test_cli_n_takes_the_first_rows_and_without_it_every_row(tmp_path: Path, broden_dir: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    three = run_cli(capsys, *_dissect(tmp_path, broden_dir, "three", "--n", "3"))
    assert three.code == 0, three.err
    record = read_record(tmp_path / "three")
    assert record.n_images == 3 and record.spec.data.n == 3
    # The report, explain and compare reopen what the run saw: the same first 3 rows.
    assert len(reopen_probe(DissectionResult.load(tmp_path / "three"))) == 3
    whole = run_cli(capsys, *_dissect(tmp_path, broden_dir, "whole"))
    assert whole.code == 0, whole.err
    record = read_record(tmp_path / "whole")
    assert record.n_images == ROWS and record.spec.data.n is None
    assert len(reopen_probe(DissectionResult.load(tmp_path / "whole"))) == ROWS


def test_api_n_takes_the_first_rows_and_without_it_every_row(tmp_path: Path, broden_dir: Path) -> None:
    three = api_dissect(write_model(tmp_path), ["0"], str(broden_dir), None, n=3, progress=False)
    assert three.result.record.n_images == 3 and len(three.probe) == 3
    assert three.result.record.spec.data.n == 3
    whole = api_dissect(write_model(tmp_path), ["0"], str(broden_dir), None, progress=False)
    assert whole.result.record.n_images == ROWS and whole.result.record.spec.data.n is None
