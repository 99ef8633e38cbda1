"""Untrusted files run no code; one writer per run directory; no orphaned data-loading workers."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_usage_error, run_cli
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden
from unitscope.models.loading import load_model


class _Planted:
    """Unpickling this runs ``open(path, 'w')``: what a hostile checkpoint would do, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, (f"(open({self.path!r}, 'w').close(), 0)[1]",)


def _hostile(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A checkpoint with a real state_dict and a payload that creates ``flag`` when unpickled."""
    flag = tmp_path / f"pwned-{kind}"
    state = load_model("sceneworld-scene").module.state_dict()
    payload = {"state_dict": state, "extra": _Planted(flag)}
    path = tmp_path / f"hostile-{kind}.pth"
    if kind == "zip":
        torch.save(payload, path)
    elif kind == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path, flag


@pytest.mark.parametrize("kind", ["zip", "legacy", "plain"])
def test_hostile_checkpoint_never_runs_without_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     kind: str) -> None:
    path, flag = _hostile(tmp_path, kind)
    for command in (["rf"], ["dissect", "--layer", "conv1", "--out", str(tmp_path / "run")]):
        result = run_cli(capsys, *command, "--model", "sceneworld-scene", "--weights", str(path))
        assert_usage_error(result, "--trust-checkpoint" if kind != "plain" else str(path))
        assert not flag.exists(), "unpickling ran code from the checkpoint"
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    if kind != "plain":  # torch.load cannot read a bare pickle.dump at all; the torch.save files load when trusted
        result = run_cli(capsys, "rf", "--model", "sceneworld-scene", "--weights", str(path), "--trust-checkpoint")
        assert result.code == 0, result.err
        assert flag.exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unitscope.cli", *args]


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A Broden export and a dissect command slow enough (one image per batch) to act on mid-run."""
    root = tmp_path_factory.mktemp("safety")
    data = root / "broden"
    write_broden(data, PlantedProbe(60), progress=False)
    common = ["dissect", "--model", write_model(root), "--layer", "0", "--data", str(data), "--quantile", "0.3",
              "--mean", "0,0,0", "--std", "1,1,1", "--no-report", "--batch-size", "1", "--checkpoint-seconds", "0"]
    return root, common


# Runs the CLI, pausing before pass 1's first forward pass (the output's lock already held) until a line
# arrives on stdin; says "paused" on stdout when it gets there. Test code only.
PAUSE_IN_PASS_ONE = """
import sys
from unitscope.dissection.engine import DissectionEngine
forward = DissectionEngine._input_batch
paused = []

def pausing(self, samples):
    if not paused:
        paused.append(1)
        print("paused", flush=True)
        sys.stdin.readline()
    return forward(self, samples)

DissectionEngine._input_batch = pausing
from unitscope.cli.main import main
main(sys.argv[1:])
"""


def test_two_dissections_on_one_out_exactly_one_writes(slow_run: tuple[Path, list[str]], tmp_path: Path) -> None:
    """The first writer is held inside its run (lock taken, pass 1 begun) while the second one starts and
    ends: no race, whatever the machine's speed."""
    _, common = slow_run
    out = tmp_path / "run"
    command = [*common, "--workers", "0", "--out", str(out)]
    first = subprocess.Popen([sys.executable, "-c", PAUSE_IN_PASS_ONE, *command], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline().strip() == "paused", first.stderr.read()  # type: ignore[union-attr]
        assert (tmp_path / "run.lock").read_text() == str(first.pid)
        second = subprocess.run(_cli(*command), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert lines == [f"unitscope: error: {out} is being written by process {first.pid}; wait for it to "
                         "finish or choose another output path"]
        assert not out.exists()  # the refused writer touched nothing
        first.stdin.write("go\n")
        first.stdin.close()
        assert first.wait(timeout=120) == 0, first.stderr.read()  # type: ignore[union-attr]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (out / "summary.json").is_file() and (out / "0" / "units.csv").is_file()
    assert not (tmp_path / "run.partial").exists() and not (tmp_path / "run.lock").exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_minus_nine_leaves_no_orphan_worker(slow_run: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, common = slow_run
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(*common, "--workers", "2", "--out", str(out)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "run.partial" / "work" / "pass1.pt"
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert proc.poll() is None and len(workers) >= 2, "the run ended before its workers could be seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 1.5  # PyTorch's own watchdog would take up to 5 s
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [w for w in workers if _alive(w)], "a data-loading worker outlived its parent"


def test_ctrl_c_exits_promptly_keeping_resumable_state(slow_run: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, common = slow_run
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(*common, "--workers", "2", "--out", str(out)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "run.partial" / "work" / "pass1.pt"
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=5)  # a liveness bound, not a speed measurement: a hang fails here
    assert code == 130 and "run the same command again to resume" in proc.stderr.read()  # type: ignore[union-attr]
    assert marker.exists() and not out.exists()
    deadline = time.monotonic() + 3  # workers get SIGKILL from the kernel when the parent dies: give it a moment
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [w for w in workers if _alive(w)]


def test_same_data_other_spelling_or_layer_order_is_the_same_run(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from unitscope.dissection.naming import named_identity
    from unitscope.dissection.record import DataSpec, ModelSpec
    from unitscope.dissection.run import same_run
    from unitscope.dissection.settings import DissectSettings

    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = DissectSettings()
    spellings = ["d", "./d", str(tmp_path / "d"), "d/"]
    specs = [named_identity(ModelSpec("m"), DataSpec(s), layers, settings)
             for s, layers in zip(spellings, (["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]), strict=True)]
    assert all(same_run(spec, specs[0]) for spec in specs)
    assert specs[0].data.data == str(tmp_path / "d")  # absolute: the record reopens from any directory
    assert not same_run(named_identity(ModelSpec("m"), DataSpec("sceneworld"), ["a"], settings), specs[0])
