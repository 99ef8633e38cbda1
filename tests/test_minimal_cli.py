"""``unitscope minimal`` end to end with a tiny colour network written by the test itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from unitscope.cli.main import main
from unitscope.minimal import run as minimal_run

MODEL_SOURCE = '''
import torch
from torch import nn


class ColourNet(nn.Module):
    """Scores: share-weighted strong red, strong green, and a constant 'neither'. Undoes ImageNet scaling."""

    class_names = ["red", "green", "neither"]

    def forward(self, x):
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        rgb = x * std + mean
        red = torch.relu(rgb[:, 0] - rgb[:, 1] - 0.3).mean(dim=(1, 2))
        green = torch.relu(rgb[:, 1] - rgb[:, 0] - 0.3).mean(dim=(1, 2))
        return torch.stack([red, green, torch.full_like(red, 0.04)], dim=1)


def colour_net():
    return ColourNet()
'''


def blob_image(seed: int, colour: tuple[int, int, int], size: int = 32) -> np.ndarray:
    """Grey-blue background with a few blobs and one guaranteed patch of ``colour``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.full((size, size, 3), [90.0, 100.0, 130.0])
    for _ in range(4):
        cy, cx, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(3, 7)]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.choice([[60, 60, 200], [200, 200, 60], [160, 160, 160]])
    top, left = rng.integers(0, size // 2, 2)
    image[top : top + size // 3, left : left + size // 3] = colour
    return image.astype(np.uint8)


@pytest.fixture()
def model_spec(tmp_path: Path) -> str:
    path = tmp_path / "colour_net.py"
    path.write_text(MODEL_SOURCE)
    return f"{path}:colour_net"


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def class_folder(root: Path) -> Path:
    for i in range(2):
        save(root / "red" / f"r{i}.png", blob_image(i, (230, 40, 30)))
        save(root / "green" / f"g{i}.png", blob_image(10 + i, (30, 220, 40)))
    return root


def run_cli(args: list[str]) -> None:
    main(args)


def test_single_image_outputs_and_evaluate_rechecks_them(tmp_path: Path, model_spec: str, capsys) -> None:
    image = save(tmp_path / "in" / "poppy.png", blob_image(0, (230, 40, 30)))
    out = tmp_path / "out"
    run_cli(["minimal", "--model", model_spec, "--image", str(image), "--class", "red", "--out", str(out),
             "--segments", "12", "--fill", "gradient"])
    assert (out / "images" / "red" / "poppy.png").is_file()
    assert (out / "strips" / "poppy.png").is_file()
    assert not (out.parent / "out.partial").exists()
    sequence = pd.read_csv(out / "sequences" / "poppy.csv")
    assert sequence["step"].tolist() == list(range(len(sequence)))
    assert sequence["correct"].iloc[:-1].all() and not sequence["correct"].iloc[-1]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["status"].tolist() == ["ok"]
    assert summary["regions_kept"].iloc[0] == summary["regions"].iloc[0] - (len(sequence) - 2)
    assert 0 < summary["pixel_fraction"].iloc[0] < 1
    capsys.readouterr()
    run_cli(["evaluate", "--model", model_spec, "--data", str(out / "images"), "--json"])
    assert json.loads(capsys.readouterr().out)["top1"] == 1.0


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_set_run_is_deterministic_resumable_and_rechecks(
    tmp_path: Path, model_spec: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = class_folder(tmp_path / "data")
    common = ["minimal", "--model", model_spec, "--data", str(data), "--segments", "10"]
    run_cli([*common, "--out", str(tmp_path / "a"), "--batch-size", "64"])
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["processed"] == 4 and summary["skipped"] == {}
    assert sorted(summary["per_class"]) == ["green", "red"]
    capsys.readouterr()
    run_cli(["evaluate", "--model", model_spec, "--data", str(tmp_path / "a" / "images"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == 1.0 and result["n"] == 4

    calls = {"n": 0}
    original = minimal_run._Runner.process

    def killed_after_two(self: object, sample: object) -> object:
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(self, sample)  # type: ignore[arg-type]

    monkeypatch.setattr(minimal_run._Runner, "process", killed_after_two)
    with pytest.raises(SystemExit):
        run_cli([*common, "--out", str(tmp_path / "b"), "--batch-size", "3"])
    assert (tmp_path / "b.partial" / "records").is_dir() and not (tmp_path / "b").exists()
    monkeypatch.setattr(minimal_run._Runner, "process", original)
    run_cli([*common, "--out", str(tmp_path / "b"), "--batch-size", "3"])
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")  # same bytes, whatever the batch size


def error_line(capsys, args: list[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("unitscope: error: ")
    return err


def test_bad_inputs_give_one_line_and_status_2(tmp_path: Path, model_spec: str, capsys) -> None:
    good = save(tmp_path / "good.png", blob_image(0, (230, 40, 30)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    flat = save(tmp_path / "flat.png", np.full((16, 16, 3), 100, dtype=np.uint8))
    out = tmp_path / "out"
    base = ["minimal", "--model", model_spec, "--out", str(out)]
    assert "cannot be decoded" in error_line(capsys, [*base, "--image", str(broken), "--class", "red"])
    assert "no class 'blue'" in error_line(capsys, [*base, "--image", str(good), "--class", "blue"])
    assert "1 region" in error_line(capsys, [*base, "--image", str(flat), "--class", "red", "--segments", "2"])
    wrong = error_line(capsys, [*base, "--image", str(good), "--class", "green"])
    assert "classifies good as 'red', not 'green'" in wrong
    assert "either --image" in error_line(capsys, base)
    folder = class_folder(tmp_path / "data")
    save(folder / "blue" / "b.png", blob_image(5, (20, 20, 230)))
    assert "not class names of the model: blue" in error_line(capsys, [*base, "--data", str(folder)])
    assert not out.exists() and not (tmp_path / "out.partial").exists()
