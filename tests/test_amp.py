"""--amp (bf16 autocast, here on CPU) changes a dissection only within the measured bounds; the GPU path
fails cleanly on a machine without CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from unitscope.capture import LayerCapture
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.loading import load_model
from unitscope.models.precision import autocast, check_amp

# bench/amp.py on 500 SceneWorld images (README) finds at most ~1 % relative threshold change and a few
# per cent of units relabelled; the bounds leave room for the smaller probe set used here.
MAX_RELATIVE_THRESHOLD_CHANGE = 0.05
MAX_RELABELLED_SHARE = 0.25


def _cli(args: list[str]) -> tuple[int, str]:
    from unitscope.cli.main import cli, register_commands

    register_commands(cli)
    done = CliRunner().invoke(cli, args)
    return done.exit_code, done.output


def test_captured_maps_are_float32_under_autocast() -> None:
    model = load_model("sceneworld-scene")
    x = torch.rand(2, 3, 112, 112)
    with LayerCapture(model.module, ["conv5"]) as cap, autocast("bf16", model.device):
        out = cap.run(x)["conv5"]
    assert out.dtype == torch.float32
    with LayerCapture(model.module, ["conv5"]) as cap:
        full = cap.run(x)["conv5"]
    assert not torch.equal(out, full)  # autocast really ran in bf16
    assert torch.allclose(out, full, rtol=0.05, atol=0.05 * float(full.abs().max()))


def test_bf16_moves_thresholds_and_labels_only_within_the_documented_bounds() -> None:
    model = load_model("sceneworld-scene")
    runs = {amp: dissect(model, ["conv5"], "sceneworld", None, n=48, size=64, progress=False,
                         settings=DissectSettings(bootstrap=0, batch_size=16, amp=amp)) for amp in ("off", "bf16")}
    full, low = runs["off"].layers["conv5"].units, runs["bf16"].layers["conv5"].units
    t0, t1 = full["threshold"].to_numpy(), low["threshold"].to_numpy()
    relative = np.abs(t1 - t0) / np.abs(t0)
    assert relative.max() > 0  # not a no-op
    assert relative.max() < MAX_RELATIVE_THRESHOLD_CHANGE
    assert (full["label"] != low["label"]).mean() <= MAX_RELABELLED_SHARE
    assert runs["bf16"].record.setting("amp", "off") == "bf16"
    assert "amp" not in runs["off"].record.settings  # full precision keeps the identity of earlier runs


def test_amp_modes_are_checked() -> None:
    with pytest.raises(UsageError, match="--amp must be one of"):
        check_amp("int8")
    with pytest.raises(UsageError, match="--amp must be one of"):
        DissectSettings(amp="fp8").validate()


def test_dissect_amp_flag_is_recorded(tmp_path: Path) -> None:
    code, output = _cli(["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--n", "8", "--size", "48",
                         "--bootstrap", "0", "--batch-size", "8", "--no-report", "--amp", "--out",
                         str(tmp_path / "run")])
    assert code == 0, output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "bf16" in json.dumps(summary)  # bare --amp means bf16, recorded with the run's settings


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [
    ["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--n", "4"],
    ["cam", "--model", "sceneworld-scene", "--data", "sceneworld", "--n", "2"],
])
def test_device_cuda_without_cuda_is_one_line_and_status_2(command: list[str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from unitscope.cli.main import main

    with pytest.raises(SystemExit) as stop:
        main([*command, "--device", "cuda", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["unitscope: error: --device cuda asked for CUDA but no GPU is visible; use --device cpu"]
    assert not (tmp_path / "out").exists()
