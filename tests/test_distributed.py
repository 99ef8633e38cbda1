"""torchrun (gloo on CPU) gives the same bytes as one process; a killed rank resumes; shards never pad.

Each rank runs with one thread (torchrun's OMP_NUM_THREADS=1), so the one-process reference does too:
CPU convolution kernels round differently with another thread count, distributed or not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from unitscope.distributed import Group

FILES = ["conv5/units.csv", "conv5/top_images.csv", "conv5/iou.npy", "conv5/top_maps.npy", "conv5/histogram.npz",
         "pool5/units.csv", "pool5/top_images.csv", "pool5/iou.npy", "concepts.csv"]
ARGS = ["dissect", "--layer", "conv5", "--layer", "pool5", "--images", "13",
        "--size", "48", "--batch-size", "2", "--no-report", "--checkpoint-seconds", "0"]


def _env(**extra: str) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "UNITSCOPE_DIST_TIMEOUT": "60", **extra}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(*launcher: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "unitscope"]


def _run(cmd: list[str], check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


KILLER = '''
import os, signal
from pathlib import Path
from unitscope.models.loading import load_model


def build(num_classes=None):
    """SceneWorld's scene net; with KILL_MARKER set, rank 1 kills itself on its fourth forward pass, once
    (the shape probe's layout probe and pass, then its first two batches: the kill lands in its second)."""
    net = load_model("sceneworld-scene").module
    seen = []
    marker = Path(os.environ.get("KILL_MARKER", "-"))

    def hook(module, inputs):
        seen.append(1)
        if os.environ.get("RANK") == "1" and len(seen) == 4 and str(marker) != "-" and not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)

    net.register_forward_pre_hook(hook)
    return net
'''


@pytest.fixture(scope="module")
def args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    model = tmp_path_factory.mktemp("model") / "killer.py"
    model.write_text(KILLER)
    return [*ARGS, "--model", f"{model}:build"]


JOB = """
import sys
from unitscope.cli.main import main

out, dissect = sys.argv[1], sys.argv[2:]
main([*dissect, "--out", f"{out}/run"])
main(["rf", "--model", "sceneworld-scene", "--layer", "conv3", "--empirical", "--images", "9", "--size", "48",
      "--topk", "3", "--units", "0-5", "--stride", "6", "--out", f"{out}/rf"])
main(["minimal", "--model", "sceneworld-scene", "--data", "sceneworld", "--images", "5", "--segments", "8",
      "--out", f"{out}/minimal"])
# a run with object detectors (no significance test on 12 images), then 7 images in batches of 2:
# rank 0 takes batches 0 and 2, rank 1 batches 1 and 3
main(["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--images", "12", "--size", "48",
      "--bootstrap", "0", "--batch-size", "4", "--no-report", "--out", f"{out}/detectors"])
common = ["--model", "sceneworld-scene", "--data", "sceneworld", "--n", "7", "--batch-size", "2", "--pictures", "3"]
main(["segment", *common, "--run", f"{out}/detectors", "--method", "units", "--out", f"{out}/units"])
main(["segment", *common, "--run", f"{out}/detectors", "--method", "vectors", "--fit-n", "12",
      "--out", f"{out}/vectors"])
main(["cam", *common, "--out", f"{out}/cam"])
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One launch, seven commands (dissect, rf --empirical, minimal --data, dissect, segment twice, cam --data):
    process start-up is the cost."""
    path = tmp_path_factory.mktemp("job") / "job.py"
    path.write_text(JOB)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, args: list[str], job: Path) -> Path:
    out = tmp_path_factory.mktemp("one")
    _run([sys.executable, str(job), str(out), *args])
    return out


def _same(a: Path, b: Path) -> None:
    """The dissection files of run directories a and b (under ``run/``) are byte-identical, and their
    ``summary.json`` equal but for the wall-clock ``seconds`` and ``location`` (each run's own path)."""
    for name in FILES:
        assert (a / "run" / name).read_bytes() == (b / "run" / name).read_bytes(), name
    _same_summary(a / "run", b / "run")


def _same_summary(a: Path, b: Path) -> None:
    mine, theirs = (json.loads((run / "summary.json").read_text()) for run in (a, b))
    assert isinstance(mine.pop("seconds"), float) and isinstance(theirs.pop("seconds"), float)
    assert set(mine.pop("phases")) == set(theirs.pop("phases"))  # the same phases, each its own time
    assert (mine.pop("location"), theirs.pop("location")) == (str(a.resolve()), str(b.resolve()))
    assert mine == theirs


def _same_tree(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize(("n", "batch", "world"), [(13, 2, 2), (13, 4, 3), (7, 1, 2), (8, 8, 1), (9, 3, 3)])
def test_shards_cover_every_image_once_in_one_process_batches(n: int, batch: int, world: int) -> None:
    parts = [Group(r, world).shard(n, batch) for r in range(world)]
    assert sorted(i for p in parts for i in p) == list(range(n))  # no padding, no duplicate
    for rank, part in enumerate(parts):
        for i in part:
            assert (i // batch) % world == rank  # whole batches of the one-process run


def test_two_ranks_write_the_bytes_of_one_process(reference: Path, args: list[str], job: Path,
                                                  tmp_path: Path) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_port()}"]
    done = _run([*launcher, str(job), str(tmp_path), *args])
    _same(reference, tmp_path)
    _same_summary(reference / "detectors", tmp_path / "detectors")
    _same_tree(reference / "rf", tmp_path / "rf")  # rf --empirical: maps, sizes, figures
    _same_tree(reference / "minimal", tmp_path / "minimal")  # minimal --data: images, sequences, tables
    for name in ("units", "vectors", "cam"):  # segment and cam --data: label PNGs, pictures, tables, metrics
        _same_tree(reference / name, tmp_path / name)
    assert len(list((tmp_path / "units").glob("labels_*.png"))) == 7
    assert len(list((tmp_path / "cam").glob("cam_*.png"))) == 3  # --pictures 3 over two ranks' batches
    assert done.stdout.count("results in") == 3  # dissect twice and rf, each from rank 0 only
    assert done.stdout.count("segmented 7 image(s)") == 2 and done.stdout.count("image(s) →") == 3
    assert not list(tmp_path.glob("*.partial"))


def test_two_local_nodes_write_the_bytes_of_one_process(reference: Path, args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    endpoint = f"127.0.0.1:{_port()}"
    nodes = [
        subprocess.Popen(
            [*_torchrun("--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1", "--rdzv_backend=c10d",
                        f"--rdzv_endpoint={endpoint}", "--rdzv_id=unitscope-test"), *args, "--out", str(out)],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=120) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    _same(reference, tmp_path)


def test_a_killed_rank_resumes_to_the_same_bytes(reference: Path, args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    marker = tmp_path / "killed"
    first = _run([*_torchrun("--nproc_per_node=2", f"--master_port={_port()}"), *args, "--out", str(out)],
                 check=False, KILL_MARKER=str(marker))
    assert first.returncode != 0 and marker.exists()
    assert not out.exists()
    work = tmp_path / "run.partial" / "work"
    assert (work / "rank1-of-2" / "pass1.pt").exists()  # rank 1 checkpointed before it was killed
    _run([*_torchrun("--nproc_per_node=2", f"--master_port={_port()}"), *args, "--out", str(out)],
         KILL_MARKER=str(marker))
    _same(reference, tmp_path)
    assert not (tmp_path / "run.partial").exists()



def test_a_bad_image_on_one_rank_stops_both_with_one_line(reference: Path, tmp_path: Path) -> None:
    """Image 2 (rank 1's batch) has the wrong size: both ranks stop after that round, nothing is written."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i, side in enumerate((48, 48, 40, 48)):
        Image.new("RGB", (side, side), (40 * i, 90, 160)).save(folder / f"{i:02d}.png")
    out = tmp_path / "seg"
    done = _run([*_torchrun("--nproc_per_node=2", f"--master_port={_port()}"), "segment", "--model",
                 "sceneworld-scene", "--run-dir", str(reference / "detectors"), "--method", "units", "--data",
                 str(folder), "--batch-size", "2", "--out", str(out)], check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("unitscope: error:")]
    assert len(errors) == 2 and len(set(errors)) == 1 and "40x40" in errors[0], done.stderr  # rank 1's, on both
    assert not out.exists() and not (tmp_path / "seg.partial").exists()
