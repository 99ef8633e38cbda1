"""``--class-names FILE``: a checkpoint's classes from the files checkpoints ship with, checked against the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.cli_helpers import assert_usage_error, run_cli
from unitscope.api import as_model
from unitscope.data import class_names as class_names_module
from unitscope.data.class_names import read_class_names
from unitscope.data.sceneworld import SCENE_CLASSES
from unitscope.errors import UsageError
from unitscope.models.classes import output_width, require_class_names, with_class_names
from unitscope.models.loading import load_model

# A torchvision-shaped network (features → avgpool → fc) with 10 outputs and no class names.
TINY_MODEL = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def build(num_classes: int = 10) -> nn.Module:
    return Tiny(num_classes)


def named() -> nn.Module:
    net = Tiny(10)
    net.class_names = [f"own{k}" for k in range(10)]
    return net
'''


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    return str(write(tmp_path / "tiny.py", TINY_MODEL))


@pytest.fixture
def scene_names(tmp_path: Path) -> Path:
    return write(tmp_path / "scenes.txt", "\n".join(SCENE_CLASSES) + "\n")


# --- the three formats -------------------------------------------------------------------------------------


def test_places365_categories_are_ordered_by_index_and_lose_only_the_letter_folder(tmp_path: Path) -> None:
    file = write(tmp_path / "categories_places365.txt",
                 "/b/bedroom 3\n/a/airfield 0\n/s/ski_slope 2\n/a/apartment_building/outdoor 1\n")
    assert read_class_names(file) == ["airfield", "apartment_building/outdoor", "ski_slope", "bedroom"]


def test_plain_one_name_per_line_keeps_spaces_and_ignores_trailing_blank_lines(tmp_path: Path) -> None:
    file = write(tmp_path / "imagenet_classes.txt", "tench\ngreat white shark \ncrane\ncrane\n\n\n")
    assert read_class_names(file) == ["tench", "great white shark", "crane", "crane"]  # ImageNet has two cranes
    assert read_class_names(write(tmp_path / "bom.txt", "\ufefftench\ngoldfish")) == ["tench", "goldfish"]


def test_imagenet_class_index_json_takes_the_readable_name(tmp_path: Path) -> None:
    index = {"1": ["n01443537", "goldfish"], "0": ["n01440764", "tench"], "2": ["n01484850", "great_white_shark"]}
    assert read_class_names(write(tmp_path / "imagenet_class_index.json", json.dumps(index))) == [
        "tench", "goldfish", "great_white_shark"]
    assert read_class_names(write(tmp_path / "plain.json", '{"0": "a", "1": "b"}')) == ["a", "b"]
    assert read_class_names(write(tmp_path / "list.json", '["a", "b"]')) == ["a", "b"]


def test_imagenet_synset_mapping_keeps_the_first_name(tmp_path: Path) -> None:
    file = write(tmp_path / "LOC_synset_mapping.txt", "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius\n")
    assert read_class_names(file) == ["tench", "goldfish"]


# --- hostile files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("  \n\n", "empty"),
    ("/a/airfield 0\n/b/bedroom 0\n", "line 2 repeats index 0"),
    ("/a/airfield 0\n/b/bedroom 2\n", "no class has index 1"),
    ("tench\n\ngoldfish\n", "line 2 is empty"),
    ('{"0": ["n1", "a"], "2": ["n2", "b"]}', "no class has key 1"),
    ('{"zero": "a"}', "is not a class index"),
    ('{"0": ["n1", "a"],}', "not valid JSON"),
    ('{"0": 7}', "not a name"),
    ("[1, 2]", "not a name"),
])
def test_bad_files_are_one_line_naming_the_file_and_the_mend(tmp_path: Path, text: str, fragment: str) -> None:
    file = write(tmp_path / "names.txt", text)
    with pytest.raises(UsageError) as caught:
        read_class_names(file)
    message = str(caught.value)
    assert message.startswith(f"--class-names {file}: ") and fragment in message and "\n" not in message
    assert "; " in message  # what is wrong; how to mend it


def test_size_limit_missing_file_and_binary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(class_names_module, "MAX_BYTES", 100)
    with pytest.raises(UsageError, match="over the 0 MiB"):
        read_class_names(write(tmp_path / "big.txt", "name\n" * 30))
    with pytest.raises(UsageError, match="no such file"):
        read_class_names(tmp_path / "gone.txt")
    with pytest.raises(UsageError, match="not a file"):
        read_class_names(tmp_path)
    binary = tmp_path / "weights.pth"
    binary.write_bytes(b"PK\x03\x04\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_class_names(binary)


# --- against the model ---------------------------------------------------------------------------------------


def test_names_must_match_the_model_outputs(tmp_path: Path, tiny: str) -> None:
    model = load_model(f"{tiny}:build")
    assert output_width(model) == 10 and model.class_names is None
    three = write(tmp_path / "three.txt", "a\nb\nc\n")
    with pytest.raises(UsageError) as caught:
        with_class_names(model, three)
    assert f"--class-names {three} names 3 classes but the model outputs 10 scores" in str(caught.value)
    with pytest.raises(UsageError, match="class_names names 2 classes"):
        with_class_names(model, ["a", "b"])
    named = with_class_names(model, [f"c{k}" for k in range(10)])
    assert named.class_names == [f"c{k}" for k in range(10)] and model.class_names is None  # a copy
    with pytest.raises(UsageError, match=r"which segment needs; give --class-names FILE"):
        require_class_names(model, "segment")


def test_api_takes_a_file_or_a_list(tmp_path: Path, scene_names: Path) -> None:
    reversed_names = write(tmp_path / "reversed.txt", "\n".join(reversed(SCENE_CLASSES)))
    assert as_model("sceneworld-scene", class_names=str(reversed_names)).class_names == list(reversed(SCENE_CLASSES))
    assert as_model("sceneworld-scene", class_names=scene_names).class_names == list(SCENE_CLASSES)
    with pytest.raises(UsageError, match="outputs 10 scores"):
        as_model("sceneworld-scene", class_names=["bedroom", "kitchen"])


# --- the commands --------------------------------------------------------------------------------------------


def _top1(capsys: pytest.CaptureFixture[str], *extra: str) -> float:
    result = run_cli(capsys, "evaluate", "--model", "sceneworld-scene", "--n", "24", "--json", *extra)
    assert result.code == 0, result.err
    return float(json.loads(result.out)["top1"])


def test_evaluate_reads_the_names_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              scene_names: Path) -> None:
    """The right names give the model's own accuracy; the same names in the wrong order mislabel its outputs."""
    own = _top1(capsys)
    assert _top1(capsys, "--class-names", str(scene_names)) == own > 0.5
    shifted = write(tmp_path / "shifted.txt", "\n".join(SCENE_CLASSES[1:] + SCENE_CLASSES[:1]))
    assert _top1(capsys, "--class-names", str(shifted)) < own / 2
    wrong = write(tmp_path / "wrong.txt", "a\nb\nc\n")
    assert_usage_error(run_cli(capsys, "evaluate", "--model", "sceneworld-scene", "--n", "4",
                               "--class-names", str(wrong)), f"--class-names {wrong} names 3 classes")


def test_minimal_finds_a_class_by_the_files_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = write(tmp_path / "renamed.txt", "".join(f"/x/{n}_renamed {k}\n" for k, n in enumerate(SCENE_CLASSES)))
    image = tmp_path / "img.png"
    Image.fromarray(np.full((112, 112, 3), 120, np.uint8)).save(image)
    base = ["minimal", "--model", "sceneworld-scene", "--image", str(image), "--class", "bathroom_renamed",
            "--segments", "4"]
    assert_usage_error(run_cli(capsys, *base, "--out", str(tmp_path / "a")), "no class 'bathroom_renamed'")
    result = run_cli(capsys, *base, "--out", str(tmp_path / "b"), "--class-names", str(names))
    assert result.code == 0, result.err
    assert pd.read_csv(tmp_path / "b" / "sequences" / "img.csv")["predicted_class"].str.endswith("_renamed").all()


def test_ablate_without_names_names_the_option_and_ablate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          tiny: str) -> None:
    result = run_cli(capsys, "ablate", "--model", f"{tiny}:build", "--layer", "features", "--units", "0,1",
                     "--n", "4", "--seeds", "2", "--out", str(tmp_path / "out"))
    assert_usage_error(result, "the model has no class names, which ablate needs; give --class-names FILE")
    assert "evaluate" not in result.err


def test_ablate_and_evaluate_run_on_a_checkpoint_given_names(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             tiny: str, scene_names: Path) -> None:
    result = run_cli(capsys, "ablate", "--model", f"{tiny}:build", "--class-names", str(scene_names), "--layer",
                     "features", "--units", "0,1", "--n", "6", "--seeds", "2", "--out", str(tmp_path / "out"))
    assert result.code == 0, result.err
    scenes = set(pd.read_csv(tmp_path / "out" / "ablation.csv")["scene"]) - {"(all)"}
    assert scenes and scenes <= set(SCENE_CLASSES)
    assert_usage_error(run_cli(capsys, "evaluate", "--model", f"{tiny}:build", "--n", "4"),
                       "which evaluate needs; give --class-names FILE")


def test_a_model_file_may_carry_its_names(tmp_path: Path, tiny: str) -> None:
    """The documented route for file.py:callable models: a class_names attribute on the network."""
    assert load_model(f"{tiny}:named").class_names == [f"own{k}" for k in range(10)]
    assert "class_names attribute" in " ".join(_help("evaluate").split())


def _help(command: str) -> str:
    from click import Context

    from unitscope.cli.main import cli, register_commands

    register_commands(cli)
    found = cli.commands[command]
    return str(found.get_help(Context(found, info_name=command)))


@pytest.mark.parametrize("command", ["evaluate", "ablate", "minimal", "cam", "segment"])
def test_every_command_that_shows_classes_takes_class_names(command: str) -> None:
    assert "--class-names FILE" in _help(command)


def test_output_width_is_none_for_a_map(tmp_path: Path) -> None:
    from unitscope.models.loading import LoadedModel
    from unitscope.models.preprocessing import Preprocessing

    conv = LoadedModel(torch.nn.Conv2d(3, 4, 3), "conv", Preprocessing((16, 16)))
    assert output_width(conv) is None
    assert with_class_names(conv, ["a"]).class_names == ["a"]  # nothing to check against: taken as given
