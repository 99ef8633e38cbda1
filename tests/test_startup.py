"""Start-up of a dissection (#29): torchvision without torch._dynamo, a network built without random weights.

``import_torchvision`` leaves ``torch._dynamo`` (1.5 s of sympy and triton) unimported and a later import of it
real; ``built_holding`` builds without drawing initial weights and takes the checkpoint's tensors, falling back
to the usual build and load (its casts and errors) where the checkpoint does not fit exactly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.loading import built_holding, load_model

CHILD = """
import sys
import torch
torch.manual_seed(0)
from unitscope.models.loading import load_model
loaded = load_model("squeezenet1_1", sys.argv[1])
assert "torch._dynamo" not in sys.modules, "torchvision pulled in torch._dynamo"
state = torch.load(sys.argv[1], weights_only=True)
assert all(torch.equal(v, loaded.module.state_dict()[k]) for k, v in state.items())
roi_align = sys.modules["torchvision.ops.roi_align"]
assert roi_align.is_compile_supported("cpu") is True  # resolved through the real torch._dynamo
import torch._dynamo
assert hasattr(torch._dynamo, "optimize")
print("ok")
"""


def test_a_torchvision_network_loads_without_torch_dynamo(tmp_path: Path) -> None:
    import torchvision

    checkpoint = tmp_path / "squeeze.pth"
    torch.manual_seed(1)
    torch.save(torchvision.models.get_model("squeezenet1_1", weights=None).state_dict(), checkpoint)
    done = subprocess.run([sys.executable, "-c", CHILD, str(checkpoint)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_built_holding_takes_the_checkpoints_tensors_or_falls_back_to_the_usual_load() -> None:
    torch.manual_seed(0)
    state = _net().state_dict()
    net = built_holding(_net, state, "ckpt")
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert net[0].weight.requires_grad and isinstance(net[0].weight, nn.Parameter)
    assert torch.nn.init.kaiming_uniform_(torch.zeros(2, 2)).abs().sum() > 0  # the initialisers work again
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    cast = built_holding(_net, half, "ckpt")  # another dtype: loaded the usual way, into float32
    assert cast[0].weight.dtype == torch.float32
    assert torch.equal(cast[0].weight, half["0.weight"].float())
    with pytest.raises(UsageError, match="missing keys"):
        built_holding(_net, {k: v for k, v in state.items() if k != "0.bias"}, "ckpt")


def test_load_model_gives_the_same_forward_as_a_plain_build(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(2)
    plain = torchvision.models.get_model("squeezenet1_1", weights=None).eval()
    torch.save(plain.state_dict(), tmp_path / "w.pth")
    loaded = load_model("squeezenet1_1", str(tmp_path / "w.pth"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), plain(x))
