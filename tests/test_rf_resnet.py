"""``unitscope rf --empirical`` on a torchvision ResNet-18 uses the incremental engine and matches ``--full``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torchvision
from cli_helpers import run_cli
from PIL import Image
from pytest import CaptureFixture


def test_empirical_fields_of_resnet18_equal_full_recomputation(tmp_path: Path, capsys: CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    runs = {}
    for name, extra in (("incremental", []), ("full", ["--full"])):
        out = tmp_path / name
        result = run_cli(capsys, "rf", "--model", "resnet18", "--weights", str(weights), "--input-size", "48",
                         "--layer", "layer3", "--layer", "layer4", "--empirical", "--data", str(folder),
                         "--topk", "2", "--patch", "11", "--stride", "9", "--units", "0-2", "--out", str(out),
                         "--json", *extra)
        assert result.code == 0, result.err
        runs[name] = (json.loads(result.out), out)
    (fast, fast_dir), (full, full_dir) = runs["incremental"], runs["full"]
    for layer in ("layer3", "layer4"):
        assert fast[layer]["engine"].startswith("incremental") and "residual sums" in fast[layer]["engine"]
        assert full[layer]["engine"] == "full recomputation (asked for)"
        a, b = (np.load(d / layer / "maps.npz")["maps"] for d in (fast_dir, full_dir))
        assert a.shape == b.shape and np.abs(b).max() > 0
        # Discrepancies are float32 differences of activations several times larger than they are.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())
        record = (json.loads((d / "rf.json").read_text())["layers"][layer]["units"] for d in (fast_dir, full_dir))
        assert next(record) == next(record)
