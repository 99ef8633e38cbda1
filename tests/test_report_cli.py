"""``unitscope report RUN``: re-renders a finished run from its data, and refuses bad runs in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_usage_error, run_cli
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden


@pytest.fixture
def finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    data = tmp_path / "broden"
    write_broden(data, PlantedProbe(12), progress=False)
    out = tmp_path / "run"
    result = run_cli(capsys, "dissect", "--model", write_model(tmp_path), "--layer", "0", "--data", str(data),
                     "--quantile", "0.3", "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--out", str(out))
    assert result.code == 0, result.err
    return out


def test_report_with_field_regions_changes_the_page_not_the_units(finished_run: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    units_before = (finished_run / "0" / "units.csv").read_bytes()
    summary_before = (finished_run / "summary.json").read_bytes()
    page_before = (finished_run / "report.html").read_text()
    assert "Outlined: where the unit" in page_before
    result = run_cli(capsys, "report", str(finished_run), "--regions", "field", "--units", "2")
    assert result.code == 0, result.err
    page = (finished_run / "report.html").read_text()
    assert page != page_before and "unit segmentation of Zhou et al." in page
    assert "2 of 3 units shown" in page
    assert (finished_run / "0" / "units.csv").read_bytes() == units_before
    assert (finished_run / "summary.json").read_bytes() == summary_before
    assert (finished_run / "units" / "0" / "0.jpg").is_file()


def test_corrupt_summary_is_one_line(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (finished_run / "summary.json").write_text('{"format": "unitscope-dissection/1", "schema": 2, "layers": [')
    assert_usage_error(run_cli(capsys, "report", str(finished_run)), "corrupt")
    older = json.loads('{"format": "unitscope-dissection/1", "layers": {}}')
    (finished_run / "summary.json").write_text(json.dumps(older))
    assert_usage_error(run_cli(capsys, "report", str(finished_run)), "schema")


def test_missing_run_is_reported_before_heavy_imports(tmp_path: Path) -> None:
    code = ("import sys; from unitscope.cli.main import main\n"
            "try:\n    main(['report', sys.argv[1]])\nexcept SystemExit as e:\n"
            "    assert 'torch' not in sys.modules, 'torch was imported'; raise\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "no summary.json" in done.stderr


def test_version_and_the_old_world_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--version")
    assert result.code == 0 and result.out.startswith("unitscope, version ")
    assert_usage_error(run_cli(capsys, "world", str(tmp_path / "a"), "--out", str(tmp_path / "b")), "once")
