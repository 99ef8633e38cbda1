"""Defaults that fit the user's network, not only SceneWorld's: 224 px exports, no previews unless asked, and
warnings that say what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_helpers import run_cli
from unitscope.data.broden import BrodenProbe
from unitscope.dissection.confidence import small_probe_warning


def test_world_writes_224_px_images_and_no_previews_by_default(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "world", "--out", str(tmp_path / "w"), "--n", "1")
    assert result.code == 0, result.err
    assert BrodenProbe(tmp_path / "w").image_size == (224, 224)
    assert not (tmp_path / "w" / "preview").exists()
    assert "224×224" in result.out and "preview" not in result.out
    asked = run_cli(capsys, "world", "--out", str(tmp_path / "p"), "--n", "2", "--size", "32", "--previews", "1")
    assert asked.code == 0, asked.err
    assert len(list((tmp_path / "p" / "preview").glob("*/*_object.png"))) == 1 and "colour previews of 1" in asked.out


def test_sceneworld_nets_resize_a_224_px_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped nets take 112 px: a 224 px export is resized in preprocessing, not refused."""
    assert run_cli(capsys, "world", "--out", str(tmp_path / "w"), "--n", "6", "--seed", "1").code == 0
    result = run_cli(capsys, "dissect", "--model", "sceneworld-scene", "--layer", "conv3", "--data",
                     str(tmp_path / "w"), "--out", str(tmp_path / "run"), "--no-report", "--bootstrap", "0")
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["image_size"] == [224, 224] and summary["input_size"] == [112, 112]
    units = pd.read_csv(tmp_path / "run" / "conv3" / "units.csv")
    assert len(units) == 96 and (units["iou"] > 0).mean() > 0.5  # labels, not an empty run


def test_small_probe_warning_says_what_to_change() -> None:
    small = small_probe_warning(0.005, 100, (512, 4, 4), "layer4", image_side=112)
    assert small is not None
    assert "use at least 625 probe images (--n 625; for an export, unitscope world --n 625)" in small
    assert "or larger images: unitscope world --size 224 gives this layer about 8x8 cells, where 157 images " \
           "suffice" in small
    # A network that resizes every image to its own input size gains nothing from larger images.
    fixed = small_probe_warning(0.005, 100, (512, 4, 4), "layer4")
    assert fixed is not None and "--size" not in fixed and "--n 625" in fixed
    at_224 = small_probe_warning(0.005, 100, (512, 7, 7), "layer4", image_side=224)
    assert at_224 is not None and "--size" not in at_224
    assert small_probe_warning(0.005, 1000, (256, 7, 7), "conv5", image_side=112) is None
