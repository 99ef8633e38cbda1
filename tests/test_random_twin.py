"""The random twin (``random_baseline``) of every family is random in every parameter (issue 26).

``reset_parameters`` alone left ConvNeXt's layer scales, ViT's class token, position embedding and
attention input projection, and Swin's relative-position tables at their trained values; the twins of
AlexNet- and ResNet-shaped nets, which recorded runs depend on, must stay what they were bit for bit.
"""

from __future__ import annotations

import copy

import pytest
import torch

from unitscope.dissection.baseline import random_baseline
from unitscope.models.architectures import ArchConfig, build_network
from unitscope.models.loading import LoadedModel, load_model
from unitscope.models.preprocessing import Preprocessing

TINY: dict[str, ArchConfig] = {
    "convnext": ArchConfig("convnext", 3, 28, {"widths": [8, 16], "depths": [1, 1]}),
    "vit": ArchConfig("vit", 3, 28, {"patch_size": 14, "num_layers": 1, "num_heads": 2, "hidden_dim": 8,
                                     "mlp_dim": 16}),
    "swin": ArchConfig("swin", 3, 28, {"patch_size": 4, "embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2],
                                       "window_size": 7}),
}


def _trained(config: ArchConfig) -> LoadedModel:
    """A tiny net whose every parameter has moved away from its initial value, as training moves it."""
    torch.manual_seed(0)
    net = build_network(config)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.5 + torch.rand_like(param))
    return LoadedModel(net.eval(), f"tiny-{config.arch}", Preprocessing(input_size=(28, 28)))


@pytest.mark.parametrize("arch", sorted(TINY))
def test_the_twin_keeps_no_trained_value(arch: str) -> None:
    model = _trained(TINY[arch])
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    twin = random_baseline(model, seed=0)
    trained = dict(model.module.named_parameters())
    for name, param in twin.module.named_parameters():
        shared = int((param.detach() == trained[name].detach()).sum())
        assert shared == 0, f"{arch} twin keeps {shared} trained value(s) of {name}"
    again = random_baseline(model, seed=0).module.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in twin.module.state_dict().items())  # seeded
    other = random_baseline(model, seed=1).module.state_dict()
    assert any(not torch.equal(v, other[k]) for k, v in twin.module.state_dict().items())
    assert all(torch.equal(v, before[k]) for k, v in model.module.state_dict().items())  # the run's net untouched
    assert twin.module(torch.zeros(1, 3, 28, 28)).shape == (1, 3)


def test_parameter_like_tensors_are_drawn_as_torchvision_draws_them() -> None:
    convnext = random_baseline(_trained(TINY["convnext"]), seed=0).module
    scales = [p for n, p in convnext.named_parameters() if n.endswith("layer_scale")]
    assert scales and all(torch.all(p == 1e-6) for p in scales)
    vit = random_baseline(_trained(TINY["vit"]), seed=0).module
    assert torch.all(vit.class_token == 0)
    assert 0.01 < float(vit.encoder.pos_embedding.detach().std()) < 0.03  # N(0, 0.02²)
    swin = random_baseline(_trained(TINY["swin"]), seed=0).module
    tables = [p for n, p in swin.named_parameters() if n.endswith("relative_position_bias_table")]
    assert tables and all(0.005 < float(p.detach().std()) < 0.04 for p in tables)  # N(0, 0.02²)


def _reset_only(model: LoadedModel, seed: int) -> dict[str, torch.Tensor]:
    """The twin as it was before issue 26: reset_parameters and running statistics, in module order."""
    module = copy.deepcopy(model.module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in module.modules():
            for method in ("reset_parameters", "reset_running_stats"):
                if callable(getattr(sub, method, None)):
                    getattr(sub, method)()
    return module.state_dict()


@pytest.mark.parametrize("name", ["sceneworld-scene", "sceneworld-object-resnet"])
def test_alexnet_and_resnet_twins_are_unchanged(name: str) -> None:
    model = load_model(name)
    twin = random_baseline(model, seed=3).module.state_dict()
    expected = _reset_only(model, 3)
    assert twin.keys() == expected.keys()
    assert all(torch.equal(twin[k], expected[k]) for k in twin)
