"""``unitscope report RUN``: re-renders a finished run from its data, and refuses bad runs in one line."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_usage_error, lock_held_elsewhere, run_cli
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden
from unitscope.errors import UsageError
from unitscope.report import image_files
from unitscope.report.run_report import report


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


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", ["disk-full", "disk-full-out", "exception"])
def test_a_report_that_fails_midway_leaves_everything_as_it_was(
        failure: str, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The image writer fails after four files of a report with PNG files the run's report lacks: no
    half-written units/ in the run, no half-written --out, the previous report whole, no staging folder left,
    and no promise of a resume the report cannot do."""
    real, calls = image_files.save_image, {"n": 0}

    def failing(image: np.ndarray, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] > 4:
            if failure == "exception":
                raise RuntimeError("the image writer broke")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(image, path)

    monkeypatch.setattr(image_files, "save_image", failing)
    before = _files(finished_run)
    assert "report.html" in before and "units/0/0.jpg" in before
    elsewhere = tmp_path / "elsewhere"
    if failure == "exception":
        with pytest.raises(RuntimeError, match="broke"):
            report(finished_run, png=True)
    else:
        out = ["--out", str(elsewhere)] if failure == "disk-full-out" else []
        result = run_cli(capsys, "report", str(finished_run), "--png", *out)
        assert_usage_error(result, "No space left on device")
    assert calls["n"] > 4
    assert _files(finished_run) == before
    assert failure == "exception" or "resume" not in result.err
    assert not elsewhere.exists()
    assert not [str(p) for p in tmp_path.rglob("*.partial")] and not list(tmp_path.rglob("*.lock"))


def test_a_report_replaces_the_previous_one_whole(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (finished_run / "units" / "0" / "stale.html").write_text("from an older report")
    result = run_cli(capsys, "report", str(finished_run), "--units", "1")
    assert result.code == 0, result.err
    assert not (finished_run / "units" / "0" / "stale.html").exists()
    assert "1 of 3 units shown" in (finished_run / "report.html").read_text()
    assert not list(finished_run.parent.rglob("*.partial"))


def test_a_second_writer_is_refused(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = (finished_run / "report.html").read_bytes()
    with lock_held_elsewhere(finished_run) as pid:  # e.g. a dissect writing the run
        assert_usage_error(run_cli(capsys, "report", str(finished_run)), f"is being written by process {pid}")
        with pytest.raises(UsageError, match=f"process {pid}"):
            report(finished_run)  # the Python API takes the same lock
    elsewhere = tmp_path / "elsewhere"
    with lock_held_elsewhere(elsewhere) as pid:
        assert_usage_error(run_cli(capsys, "report", str(finished_run), "--out", str(elsewhere)),
                           f"is being written by process {pid}")
    assert (finished_run / "report.html").read_bytes() == page and not elsewhere.exists()
