"""Transfer: a linear SVM on pooled features beats chance on SceneWorld; splits and batching behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unitscope.cli.main import main
from unitscope.evaluation.transfer import open_transfer_splits, pooled_features, transfer_accuracy
from unitscope.models.loading import LoadedModel
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig

SMALL_NET = """
import torch
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig


def build():
    torch.manual_seed(0)
    return SceneWorldNet(SceneWorldNetConfig(10, widths=(8, 16, 16, 16, 16), fc_width=16, input_size=112))
"""


def _random_net(size: int = 64) -> LoadedModel:
    torch.manual_seed(0)
    net = SceneWorldNet(SceneWorldNetConfig(10, widths=(16, 32, 32, 32, 32), fc_width=16, input_size=size)).eval()
    return LoadedModel(net, "random-sceneworld", Preprocessing((size, size)))


def test_linear_probe_beats_chance_on_sceneworld_scenes() -> None:
    # Even random convolutional features carry scene information; the SVM must find it on unseen images.
    result = transfer_accuracy(_random_net(), "conv5", "sceneworld", n=100, seed=1, train_n=200, train_seed=2,
                               size=64)
    assert result.n_train == 200 and result.n_test == 100 and result.features == 32
    assert result.accuracy > result.majority + 0.1 and result.accuracy > 3 * result.chance


def test_features_do_not_depend_on_batch_size() -> None:
    model = _random_net(32)
    _, test = open_transfer_splits("sceneworld", 9, 5, 4, 6, size=32)
    one = pooled_features(model, "conv5", test, batch_size=1)
    many = pooled_features(model, "conv5", test, batch_size=4)
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_class_folder_is_split_in_stratified_halves(tmp_path: Path) -> None:
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    for name, rgb in colours.items():
        (tmp_path / name).mkdir()
        for k in range(4):
            image = np.full((16, 16, 3), rgb, np.uint8) + np.uint8(k)
            Image.fromarray(image).save(tmp_path / name / f"{k}.png")
    train, test = open_transfer_splits(str(tmp_path), 10, 0, 10, 1)
    assert len(train) == len(test) == 4 and sorted(np.bincount(test.targets)) == [2, 2]
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        net[0].bias.zero_()
    model = LoadedModel(net, "identity", Preprocessing(None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    result = transfer_accuracy(model, "0", str(tmp_path), n=10, seed=0)
    assert result.accuracy == 1.0 and result.train_seed == result.test_seed == 0


def test_cli_transfer_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "small.py"
    source.write_text(SMALL_NET)
    main(["evaluate", "--model", f"{source}:build", "--transfer", "conv4", "--data", "sceneworld", "--n", "30",
          "--train-n", "40", "--seed", "7", "--train-seed", "8", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["layer"] == "conv4" and report["n_test"] == 30 and report["n_train"] == 40
    assert report["train_seed"] == 8 and report["test_seed"] == 7 and 0 <= report["accuracy"] <= 1


@pytest.mark.parametrize("args", [["--train-seed", "7"], ["--data", "nowhere"], ["--train-n", "0"]])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str]) -> None:
    source = tmp_path / "small.py"
    source.write_text(SMALL_NET)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", f"{source}:build", "--transfer", "conv5", "--n", "5", "--seed", "7", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unitscope: error:") and "\n" not in err
