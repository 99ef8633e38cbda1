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

# Measured (2026-12, CPU bf16, shipped scene net, 200 SceneWorld images, conv4/conv5/pool5, 352 units):
# thresholds move by at most 0.86 % relative, any IoU by at most 0.011, no unit crosses IoU 0.04, and 4 units
# change label (detectors conv4 rim->bathtub, car->hull, pool5 ceramic->toilet; the non-detector pool5
# wallpaper->rippled), each a near-tie: the two labels' IoUs differ by at most 0.0012 in float32 and 0.0017
# in bf16 (median lead of a unit's best label: 0.007-0.015). Two of those relabellings and one q-value at
# the cut (0.045 -> 0.050) change a significance flag. Pass 2 reads the very bf16 maps whose quantiles gave
# the thresholds (the activation cache), so a flip is the forward pass's rounding crossing a tie, not
# thresholds and IoU measured in different precisions.
MAX_RELATIVE_THRESHOLD_CHANGE = 0.02
MAX_IOU_CHANGE = 0.02
NEAR_TIE = 0.003  # bf16 keeps 8 significant bits: an IoU lead this small can reverse
MAX_RELABELLED_SHARE = 0.02
NEAR_CUT = 1.5  # a q-value within this factor of the FDR cut (measured: pool5 unit 46, q 0.045 -> 0.050)


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


def test_bf16_changes_labels_only_on_near_ties() -> None:
    model = load_model("sceneworld-scene")
    layers = ["conv4", "conv5", "pool5"]
    runs = {amp: dissect(model, layers, "sceneworld", None, n=200, progress=False,
                         settings=DissectSettings(bootstrap=0, batch_size=50, amp=amp)) for amp in ("off", "bf16")}
    relabelled = total = 0
    for layer in layers:
        full, low = runs["off"].layers[layer], runs["bf16"].layers[layer]
        t0, t1 = full.units["threshold"].to_numpy(), low.units["threshold"].to_numpy()
        relative = np.abs(t1 - t0) / np.abs(t0)
        assert 0 < relative.max() < MAX_RELATIVE_THRESHOLD_CHANGE, layer  # autocast ran, and moved little
        assert full.iou is not None and low.iou is not None
        assert np.abs(full.iou - low.iou).max() < MAX_IOU_CHANGE, layer
        assert (full.units["iou_detector"] == low.units["iou_detector"]).all(), layer
        # A detector is also significant (q <= 0.05): that flag may change only on a relabelled unit or
        # where q sits at the cut in both precisions.
        flag = (full.units["detector"] != low.units["detector"]) & (full.units["label"] == low.units["label"])
        for q in (full.units["q_value"], low.units["q_value"]):
            assert q[flag].between(0.05 / NEAR_CUT, 0.05 * NEAR_CUT).all(), (layer, q[flag])
        concepts = runs["off"].concepts
        for unit in np.flatnonzero((full.units["label"] != low.units["label"]).to_numpy()):
            was, now = (concepts.number_of(str(t.units["label"][unit]), str(t.units["category"][unit]))
                        for t in (full, low))
            for iou in (full.iou, low.iou):  # in both precisions the two labels are all but tied
                assert abs(float(iou[unit, was]) - float(iou[unit, now])) < NEAR_TIE, (layer, unit)
            relabelled += 1
        total += len(full.units)
    assert relabelled <= MAX_RELABELLED_SHARE * total
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
