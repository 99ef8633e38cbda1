"""Every ordinary bad input: exit 2, one stderr line (not a progress bar), no traceback, nothing left behind.

Each case is a fixture-like builder that writes its own bad input under ``inputs/`` and returns the
command line and a fragment of the expected message; outputs go under ``work/``, which must stay as it was.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_usage_error, run_cli
from PIL import Image
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings

Case = Callable[[Path, Path], tuple[list[str], str]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(build: Case) -> Case:
        CASES[name] = build
        return build
    return register


def _model_file(inputs: Path, source: str) -> str:
    path = inputs / "user_net.py"
    path.write_text(source)
    return f"{path}:build"


def _dissect(model: str, work: Path, *extra: str) -> list[str]:
    return ["dissect", "--model", model, "--layer", "conv1", "--n", "4", "--size", "16", "--no-report",
            "--workers", "0", *extra, "--out", str(work / "run")]


# ---------------------------------------------------------------- user model files (code by nature)
@case("model-raises")
def _model_raises(inputs: Path, work: Path) -> tuple[list[str], str]:
    return _dissect(_model_file(inputs, "def build():\n    raise RuntimeError('boom')\n"), work), "raised RuntimeError"


@case("model-syntax-error")
def _model_syntax(inputs: Path, work: Path) -> tuple[list[str], str]:
    return _dissect(_model_file(inputs, "def build(:\n"), work), "syntax error on line 1"


@case("model-missing-import")
def _model_import(inputs: Path, work: Path) -> tuple[list[str], str]:
    source = "import no_such_module_xyz\ndef build():\n    pass\n"
    return _dissect(_model_file(inputs, source), work), "no_such_module_xyz"


@case("model-needs-arguments")
def _model_args(inputs: Path, work: Path) -> tuple[list[str], str]:
    source = "def build(depth, width):\n    pass\n"
    return _dissect(_model_file(inputs, source), work), "cannot be called without arguments"


@case("model-not-a-module")
def _model_not_module(inputs: Path, work: Path) -> tuple[list[str], str]:
    return _dissect(_model_file(inputs, "def build():\n    return 42\n"), work), "returned int, not a torch.nn.Module"


# ---------------------------------------------------------------- checkpoints
def _weights(inputs: Path, work: Path, path: Path) -> list[str]:
    return _dissect("sceneworld-scene", work, "--weights", str(path))


@case("checkpoint-text")
def _ckpt_text(inputs: Path, work: Path) -> tuple[list[str], str]:
    path = inputs / "notes.pth"
    path.write_text("these are not weights\n")
    return _weights(inputs, work, path), "not a complete file saved by torch.save"


@case("checkpoint-truncated")
def _ckpt_truncated(inputs: Path, work: Path) -> tuple[list[str], str]:
    path = inputs / "cut.pth"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    return _weights(inputs, work, path), "not a complete file saved by torch.save"


@case("checkpoint-not-a-mapping")
def _ckpt_list(inputs: Path, work: Path) -> tuple[list[str], str]:
    path = inputs / "list.pth"
    torch.save([torch.zeros(2)], path)
    return _weights(inputs, work, path), "holds no state_dict of tensors"


# ---------------------------------------------------------------- numbers
@case("n-beyond-int64")
def _n_huge(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["world", str(work / "w"), "--n", "9223372036854775808"], "give at most 10,000,000"


@case("n-10e12")
def _n_tera(inputs: Path, work: Path) -> tuple[list[str], str]:
    return _dissect("sceneworld-scene", work, "--n", str(10**12)), "TB of pixels"


@case("size-100000")
def _size(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["world", str(work / "w"), "--size", "100000"], "give at most 4096"


@case("world-larger-than-disk")
def _world_disk(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["world", str(work / "w"), "--n", "10000000", "--size", "4096"], "GB free; lower --n or --size"


@case("lr-negative")
def _lr_negative(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["train", "--task", "scene", "--out", str(work / "net.pt"), "--lr", "-0.1"], "--lr must be a positive"


@case("lr-nan")
def _lr_nan(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["train", "--task", "scene", "--out", str(work / "net.pt"), "--lr", "nan"], "--lr must be a positive"


def _num_classes(command: list[str]) -> Case:
    def build(inputs: Path, work: Path) -> tuple[list[str], str]:
        out = ["--out", str(work / "o")] if command[0] in ("cam", "minimal", "dissect") else []
        return [*command, "--model", "resnet18", "--num-classes", "0", *out], "--num-classes must be positive"
    return build


for _command in (["dissect", "--layer", "layer4"], ["rf"], ["evaluate"], ["cam", "--data", "sceneworld"],
                 ["minimal", "--data", "sceneworld"]):
    CASES[f"num-classes-0-{_command[0]}"] = _num_classes(_command)


def _device(name: str) -> Case:
    def build(inputs: Path, work: Path) -> tuple[list[str], str]:
        return _dissect("sceneworld-scene", work, "--device", name), f"--device {name}"
    return build


for _name in ("meta", "mps", "cuda:7"):
    CASES[f"device-{_name}"] = _device(_name)


# ---------------------------------------------------------------- data and runs
def _broden(inputs: Path) -> Path:
    data = inputs / "broden"
    write_broden(data, PlantedProbe(2), progress=False)
    return data


@case("index-csv-binary")
def _index_binary(inputs: Path, work: Path) -> tuple[list[str], str]:
    data = _broden(inputs)
    (data / "index.csv").write_bytes(b"image,split\x00\xff\xfe\x00\x01" * 20)
    return _dissect("sceneworld-scene", work, "--data", str(data)), "index.csv is not"


@case("index-csv-latin1")
def _index_latin1(inputs: Path, work: Path) -> tuple[list[str], str]:
    data = _broden(inputs)
    text = (data / "index.csv").read_text().replace("train", "tr\xe9in")
    (data / "index.csv").write_bytes(text.encode("latin-1"))
    return _dissect("sceneworld-scene", work, "--data", str(data)), "is not UTF-8 text"


@case("broden-without-index")
def _no_index(inputs: Path, work: Path) -> tuple[list[str], str]:
    data = _broden(inputs)
    (data / "index.csv").unlink()
    return _dissect("sceneworld-scene", work, "--data", str(data)), "no index.csv"


@case("images-of-two-sizes")
def _two_sizes(inputs: Path, work: Path) -> tuple[list[str], str]:
    folder = inputs / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(folder / "b.png")
    return _dissect("sceneworld-scene", work, "--data", str(folder), "--batch-size", "2"), \
        "image 1 is 64×48 but image 0 is 64×64"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    out = root / "run"
    dissect(write_model(root), ["0"], PlantedProbe(6), out, mean=(0, 0, 0), std=(1, 1, 1),
            settings=DissectSettings(quantile=0.3, workers=0), progress=False)
    return out


@case("compare-unknown-category")
def _compare_category(inputs: Path, work: Path) -> tuple[list[str], str]:
    run = inputs.parent / "finished-run"
    return ["compare", str(run), str(run), "--out", str(work / "c"), "--category", "nonsense"], \
        "--category 'nonsense' is not a category"


@case("corrupt-summary-json")
def _corrupt_summary(inputs: Path, work: Path) -> tuple[list[str], str]:
    bad = inputs / "bad-run"
    bad.mkdir()
    (bad / "summary.json").write_text('{"format": "unitscope-run/1", "lay')
    run = inputs.parent / "finished-run"
    return ["compare", str(bad), str(run), "--out", str(work / "c")], "summary.json is corrupt"


@case("cam-nan-model")
def _cam_nan(inputs: Path, work: Path) -> tuple[list[str], str]:
    source = (
        "import torch\nfrom torch import nn\n"
        "def build():\n"
        "    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                        nn.Linear(4, 3))\n"
        "    with torch.no_grad():\n"
        "        net[4].weight.fill_(float('nan'))\n"
        "    return net\n"
    )
    return ["cam", "--model", _model_file(inputs, source), "--data", "sceneworld", "--n", "2",
            "--out", str(work / "cam")], "produced NaN"


# ---------------------------------------------------------------- output paths
@case("out-is-a-file")
def _out_file(inputs: Path, work: Path) -> tuple[list[str], str]:
    (work / "taken").write_text("x")
    return ["world", str(work / "taken"), "--n", "2"], "exists and is not a directory"


@case("out-not-empty")
def _out_not_empty(inputs: Path, work: Path) -> tuple[list[str], str]:
    (work / "full").mkdir()
    (work / "full" / "keep.txt").write_text("x")
    return ["world", str(work / "full"), "--n", "2"], "is not empty"


@case("out-parent-missing")
def _out_parent(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["world", str(work / "no" / "such" / "w"), "--n", "2"], "does not exist"


@case("out-read-only-mid-run")
def _out_read_only(inputs: Path, work: Path) -> tuple[list[str], str]:
    return ["world", str(work / "w"), "--n", "3", "--size", "32"], "Read-only file system"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    finished_run: Path,
) -> None:
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    (tmp_path / "finished-run").symlink_to(finished_run)
    args, fragment = CASES[name](inputs, work)
    if name == "out-read-only-mid-run":  # the disk turns read-only after the first image is written
        real_save = Image.Image.save
        calls = {"n": 0}

        def failing_save(self: Image.Image, fp: object, *a: object, **k: object) -> None:
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(errno.EROFS, "Read-only file system", str(fp))
            real_save(self, fp, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(Image.Image, "save", failing_save)
    before = _tree(work)
    result = run_cli(capsys, *args)
    assert_usage_error(result, fragment)
    assert _tree(work) == before, f"{name} left {sorted(_tree(work) - before)}"
