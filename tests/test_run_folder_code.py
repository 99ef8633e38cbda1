"""A run folder is untrusted input: no command runs code it names unless the user opts in (issue 23).

The payload is a ``file.py:callable`` model written beside the run's ``summary.json`` (and another in the
current directory); on import it writes a marker file. Every command that reopens a run is given the folder.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import uvicorn
from cli_helpers import assert_usage_error, run_cli

PAYLOAD = """\
from pathlib import Path
Path({marker!r}).write_text("ran")

def build():
    from unitscope.models.loading import load_model
    return load_model("sceneworld-scene").module
"""


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unitscope.dissection.run import dissect

    out = tmp_path_factory.mktemp("clean") / "run"
    dissect("sceneworld-scene", ["conv5"], "sceneworld", out, n=24, progress=False)
    return out


@pytest.fixture
def evil(clean_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A received run folder naming ``evil.py:build`` (relative), with no stored maps so a report needs the model."""
    run = tmp_path / "received"
    shutil.copytree(clean_run, run)
    marker, cwd_marker = tmp_path / "marker-run", tmp_path / "marker-cwd"
    (run / "evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "evil.py").write_text(PAYLOAD.format(marker=str(cwd_marker)))
    monkeypatch.chdir(here)
    summary = json.loads((run / "summary.json").read_text())
    summary["spec"]["model"]["spec"] = "evil.py:build"
    summary["model"] = "evil"
    summary.pop("location", None)
    for layer in summary["layers"]:
        layer["top_maps"] = None
    (run / "summary.json").write_text(json.dumps(summary))
    for maps in run.glob("*/top_maps.npy"):
        maps.unlink()
    return run, marker, cwd_marker


@pytest.mark.parametrize("command", ["report", "explain", "annotate"])
def test_commands_that_reopen_the_model_refuse_its_code(command: str, evil: tuple[Path, Path, Path],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run, marker, cwd_marker = evil

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the annotation server was started")

    monkeypatch.setattr(uvicorn.Server, "run", never)  # were the server ever reached: fail at once, never hang
    with socket.socket() as free:  # annotate binds its port before any work: it must be free
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    args = {"report": ["report", str(run)],
            "explain": ["explain", "--run", str(run), "--layer", "conv5", "--units", "0", "--out",
                        str(tmp_path / "x")],
            "annotate": ["annotate", str(run), "--port", port, "--max-units", "1", "--allow-small-tasks"]}[command]
    assert_usage_error(run_cli(capsys, *args), "--trust-model-code")
    assert not marker.exists() and not cwd_marker.exists()


@pytest.mark.parametrize("command", ["compare", "segment", "ablate"])
def test_commands_given_the_run_never_import_it(command: str, evil: tuple[Path, Path, Path], clean_run: Path,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, marker, cwd_marker = evil
    out = str(tmp_path / "out")
    args = {"compare": ["compare", str(run), str(clean_run), "--out", out],
            "segment": ["segment", "--model", "sceneworld-scene", "--run", str(run), "--method", "units",
                        "--n", "2", "--out", out],
            "ablate": ["ablate", "--model", "sceneworld-scene", "--run", str(run), "--layer", "conv5",
                       "--units", "0,1", "--n", "8", "--seeds", "2", "--out", out]}[command]
    result = run_cli(capsys, *args)
    assert "Traceback" not in result.err
    assert not marker.exists() and not cwd_marker.exists()


def test_opting_in_imports_the_file_beside_the_run_never_the_cwd(evil: tuple[Path, Path, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run, marker, cwd_marker = evil
    result = run_cli(capsys, "report", str(run), "--units", "2", "--trust-model-code")
    assert result.code == 0, result.err
    assert marker.read_text() == "ran" and not cwd_marker.exists()


def test_naming_the_model_yourself_needs_no_opt_in(evil: tuple[Path, Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run, marker, cwd_marker = evil
    result = run_cli(capsys, "report", str(run), "--units", "2", "--model", "sceneworld-scene")
    assert result.code == 0, result.err
    assert not marker.exists() and not cwd_marker.exists()


def test_ablate_refuses_a_run_of_another_model(clean_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "ablate", "--model", "sceneworld-object", "--run", str(clean_run), "--layer", "conv5",
                     "--units", "0", "--n", "8", "--seeds", "2", "--out", str(tmp_path / "out"))
    assert_usage_error(result, "model weights differ")
