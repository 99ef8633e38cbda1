"""world / train / evaluate: round trips, a training smoke test, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_usage_error, run_cli
from PIL import Image

from unitscope.data.broden import BrodenProbe
from unitscope.data.sceneworld import SCENE_CLASSES, SceneWorldProbe
from unitscope.models.builtin import SceneWorldCheckpoint
from unitscope.models.sceneworld_net import SceneWorldNetConfig
from unitscope.training import train_sceneworld_net
from unitscope.training_config import TrainConfig


def test_world_export_reads_back_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "world"
    result = run_cli(capsys, "world", "--out", str(out), "--data", "sceneworld", "--n", "6", "--seed", "3",
                     "--size", "64")
    assert result.code == 0, result.err
    read = BrodenProbe(out)
    made = SceneWorldProbe(n=6, seed=3, size=64)
    assert len(read) == 6 and read.label_size == made.label_size and read.image_size == (64, 64)
    assert {(c.number, c.name, c.category) for c in read.concepts.concepts} >= {
        (c.number, c.name, c.category) for c in made.concepts.concepts
        if any(c.number in np.unique(made[i].pixel_labels.get(c.category, np.zeros(1)))
               or c.number in made[i].image_labels.get(c.category, ()) for i in range(6))
    }
    for i in range(6):
        a, b = made[i], read[i]
        assert np.array_equal(a.image, b.image)
        assert set(a.pixel_labels) == set(b.pixel_labels)
        for category, maps in a.pixel_labels.items():
            # Broden stores one PNG per map; empty maps may be dropped, so compare the non-empty ones.
            kept = [m for m in maps if m.any()]
            assert np.array_equal(np.stack(kept), b.pixel_labels[category][: len(kept)])
        assert {k: set(v) for k, v in a.image_labels.items()} == {k: set(v) for k, v in b.image_labels.items()}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--n", "0"], "--n must be positive"),
        (["--size", "-3"], "--size must be positive"),
    ],
)
def test_world_bad_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    assert_usage_error(run_cli(capsys, "world", str(tmp_path / "w"), *args), fragment)


def test_world_refuses_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "keep.txt").write_text("mine")
    assert_usage_error(run_cli(capsys, "world", str(tmp_path / "w"), "--n", "2"), "pass --overwrite")
    assert (tmp_path / "w" / "keep.txt").read_text() == "mine"


def test_training_smoke_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig(task="scene", n_train=40, n_val=10, epochs=1, batch_size=20, threads=1)
    checkpoint = train_sceneworld_net(config, progress=False)
    assert checkpoint.class_names == SCENE_CLASSES and len(checkpoint.info["history"]) == 1
    path = tmp_path / "tiny.pt"
    checkpoint.save(path)
    again = SceneWorldCheckpoint.load(path)
    assert again.config == SceneWorldNetConfig(num_classes=len(SCENE_CLASSES), input_size=112)
    result = run_cli(capsys, "evaluate", "--model", str(path), "--data", "sceneworld", "--n", "8", "--json")
    assert result.code == 0, result.err
    numbers = json.loads(result.out)
    assert 0 <= numbers["top1"] <= numbers["top5"] <= 1 and numbers["n"] == 8


def test_evaluate_image_folder_and_unknown_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = train_sceneworld_net(TrainConfig(n_train=20, n_val=5, epochs=1, batch_size=10, threads=1),
                                      progress=False)
    model = tmp_path / "m.pt"
    checkpoint.save(model)
    folder = tmp_path / "images"
    probe = SceneWorldProbe(n=4, seed=9)
    for i in range(4):
        rendered = probe.render(i)
        target = folder / SCENE_CLASSES[rendered.class_index]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rendered.image).save(target / f"{i}.png")
    ok = run_cli(capsys, "evaluate", "--model", str(model), "--data", str(folder), "--json")
    assert ok.code == 0 and json.loads(ok.out)["n"] == 4
    (folder / "volcano").mkdir()
    Image.fromarray(probe.render(0).image).save(folder / "volcano" / "x.png")
    assert_usage_error(run_cli(capsys, "evaluate", "--model", str(model), "--data", str(folder)), "volcano")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--model", "sceneworld-nope"], "unknown model 'sceneworld-nope'"),
        (["--model", "alexnet", "--data", "sceneworld"], "no class names"),
        (["--model", "alexnet", "--data", "imagenet"], "nor a folder of class sub-folders"),  # before the model
        (["--model", "alexnet", "--n", "-1"], "--n must be positive"),
    ],
)
def test_evaluate_errors(capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    assert_usage_error(run_cli(capsys, "evaluate", *args), fragment)


def test_train_refuses_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.pt"
    out.write_text("x")
    assert_usage_error(run_cli(capsys, "train", "--task", "scene", "--out", str(out)), "--overwrite")
    assert_usage_error(run_cli(capsys, "train", "--task", "scene", "--out", str(tmp_path / "n.pt"),
                               "--epochs", "0"), "--epochs must be positive")


def test_evaluate_corrupt_image_mid_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = train_sceneworld_net(TrainConfig(n_train=20, n_val=5, epochs=1, batch_size=10, threads=1),
                                      progress=False)
    model = tmp_path / "m.pt"
    checkpoint.save(model)
    folder = tmp_path / "images" / SCENE_CLASSES[0]
    folder.mkdir(parents=True)
    probe = SceneWorldProbe(n=3, seed=1)
    for i in range(3):
        Image.fromarray(probe.render(i).image).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(b"broken")
    result = run_cli(capsys, "evaluate", "--model", str(model), "--data", str(tmp_path / "images"),
                     "--batch-size", "1")
    assert_usage_error(result, "2.png")
