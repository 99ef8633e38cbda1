"""Every layer is read along its unit axis (probed, never guessed from names), at the call every path agrees on.

The unit counts of every listed layer of the six families are checked against counts derived here
independently (each module's own channel attributes, else the last module with one that finished before
it); planted detectors inside a ConvNeXt block and a Swin stage are dissected end to end; a ResNet block's
shared ``relu`` is captured, explained and ablated at its last call, checked against a hand computation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from arch_models import tiny_convnext, tiny_densenet121, tiny_resnet50, tiny_swin, tiny_vgg16, tiny_vit
from click.testing import CliRunner
from torch import nn
from torchvision.models.resnet import BasicBlock

from unitscope.ablation.hooks import UnitEdit
from unitscope.analysis.cam.methods import GradCAM
from unitscope.analysis.cam.site import find_cam_site
from unitscope.capture import LayerCapture, LayerRecorder
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.errors import UsageError
from unitscope.layout import layer_layout, probe_layers
from unitscope.perturb.occlusion import plan_occlusion
from unitscope.receptive.listing import list_layers

MODELS = Path(__file__).with_name("arch_models.py")
FAMILIES = [(tiny_resnet50, 32), (tiny_resnet50, 64), (tiny_vgg16, 32), (tiny_densenet121, 32),
            (tiny_densenet121, 64), (tiny_convnext, 32), (tiny_convnext, 64), (tiny_vit, 64), (tiny_swin, 32),
            (tiny_swin, 64)]


def own_count(module: nn.Module) -> int | None:
    """The channel count a module's class fixes, read from its attributes by type."""
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[0]
    if isinstance(module, nn.BatchNorm2d):
        return module.num_features
    return None


def expected_units(model: nn.Module, size: int) -> dict[str, int]:
    """Each module's units: its own count, a dense block's by its formula, else that of the last module
    with a count to finish before the module's last call (its producer: ReLU after BN, a block's last layer)."""
    finished: list[str] = []
    modules = dict(model.named_modules())
    handles = [m.register_forward_hook(lambda _m, _i, _o, path=path: finished.append(path))
               for path, m in modules.items() if path]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    expected = {}
    for path in dict.fromkeys(finished):
        last = len(finished) - 1 - finished[::-1].index(path)
        count = own_count(modules[path])
        if count is None and "denseblock" in path.split(".")[-1]:  # torch.cat of the input and every layer
            block = modules[path]
            count = block.denselayer1.norm1.num_features + len(block) * block.denselayer1.conv2.out_channels
        if count is None:
            count = next(own_count(modules[p]) for p in finished[last - 1::-1] if own_count(modules[p]) is not None)
        expected[path] = count
    return expected


@pytest.mark.parametrize(("factory", "size"), FAMILIES, ids=[f"{f.__name__}-{s}" for f, s in FAMILIES])
def test_every_listed_layer_has_its_channel_count_as_units(factory: type[nn.Module], size: int) -> None:
    model = factory()
    rows = list_layers(model, (size, size))
    expected = expected_units(model, size)
    got = {row.path: row.units for row in rows}
    assert got == {path: expected[path] for path in got}
    assert len(got) >= 25  # every family lists its layers, containers and parameter-free modules included
    for row in rows:
        if row.layout in ("channels_first", "channels_last", "tokens"):
            assert len(row.shape) == 3 and row.shape[0] == row.units  # read as (units, h, w)


def test_channels_first_and_last_are_told_apart_when_every_dim_is_equal() -> None:
    """At 64 px ConvNeXt's and Swin's first maps are 16 × 16 × 16: only the operations can tell."""
    convnext = probe_layers(tiny_convnext(), (64, 64))
    assert convnext["features.0.1"].shape == (16, 16, 16) and convnext["features.0.1"].layout == "channels_first"
    assert [convnext[f"features.1.0.block.{i}"].layout for i in range(7)] == \
        ["channels_first"] + ["channels_last"] * 5 + ["channels_first"]
    swin = probe_layers(tiny_swin(), (64, 64))
    assert [swin[p].layout for p in ("features.0.0", "features.0.1", "features.0", "permute")] == \
        ["channels_first", "channels_last", "channels_last", "channels_first"]
    model = tiny_convnext().eval()
    x = torch.randn(2, 3, 64, 64)
    raw: dict[str, torch.Tensor] = {}
    handle = model.features[1][0].block[2].register_forward_hook(lambda _m, _i, o: raw.update(out=o))
    with LayerCapture(model, ["features.1.0.block.2"]) as capture:
        captured = capture.run(x)["features.1.0.block.2"]
    handle.remove()
    assert torch.equal(captured, raw["out"].permute(0, 3, 1, 2))  # units = channels, not image rows


class Scramble(nn.Module):
    """Reshapes a map through a flat vector: nothing says which axis of the result holds channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.flatten(1).reshape(b, h, w // 2, 2 * c)


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle after a pooling: the units are split over two axes, then merged back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.avg_pool2d(x, 2)
        b, c, h, w = x.shape
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


class Inline(nn.Module):
    """Layouts that only functional code decides: movedim, transpose, a channel shuffle, parameter-free modules."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(6)
        self.relu = nn.ReLU()
        self.shuffle = Shuffle()
        self.scramble = Scramble()
        self.after = nn.Conv2d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.act(self.conv(x).movedim(1, -1)))
        y = self.scramble(self.shuffle(self.relu(x.transpose(1, 3))))
        return self.after(y.permute(0, 3, 1, 2)).mean((2, 3))


def test_functional_permutes_are_followed_and_undecided_layers_refused() -> None:
    model = Inline()
    layers = probe_layers(model, (32, 32))
    assert {p: (layers[p].layout, layers[p].units) for p in ("conv", "act", "norm", "relu", "shuffle", "after")} == {
        "conv": ("channels_first", 6), "act": ("channels_last", 6), "norm": ("channels_last", 6),
        "relu": ("channels_first", 6), "shuffle": ("channels_first", 6), "after": ("channels_first", 4)}
    assert layers["scramble"].layout == "unknown" and layers["scramble"].shape == (16, 8, 12)
    x = torch.randn(1, 3, 32, 32)
    for refuse in (lambda: LayerCapture(model, ["scramble"]).run(x), lambda: layer_layout(model, "scramble", x),
                   lambda: UnitEdit(model, "scramble", torch.ones(1, 12, dtype=torch.bool), torch.zeros(12), x),
                   lambda: find_cam_site(model, x, "scramble", "gradcam")):
        with pytest.raises(UsageError, match="cannot tell which axis of layer scramble's output") as error:
            refuse()
        assert "\n" not in str(error.value) and "neighbouring layer" in str(error.value)
    rows = {row.path: row for row in list_layers(model, (32, 32))}
    assert rows["scramble"].units is None and rows["after"].units == 4


def test_layers_command_prints_the_units_unitscope_uses() -> None:
    from unitscope.cli.main import cli, register_commands

    register_commands(cli)
    found = {}
    for factory, layer in (("tiny_convnext", "features.1.0.block.3"), ("tiny_swin", "features.0.0")):
        done = CliRunner().invoke(cli, ["layers", "--model", f"{MODELS}:{factory}", "--input-size", "32",
                                        "--maps-only"])
        assert done.exit_code == 0, done.output
        assert done.output.splitlines()[0].split()[-2:] == ["units", "field"]
        found[layer] = next(line.split() for line in done.output.splitlines() if line.startswith(layer + " "))
    assert found["features.1.0.block.3"][2:4] == ["64×8×8", "64"]  # a Linear on a channels-last map
    assert found["features.0.0"][2:4] == ["16×8×8", "16"]  # Swin's patch embedding is a channels-first conv


def test_cam_ablation_and_occlusion_read_a_channels_last_layer_along_its_channels() -> None:
    model = tiny_convnext().eval()
    layer, x = "features.1.0.block.3", torch.randn(2, 3, 32, 32)
    model.features[1][0].layer_scale.data.fill_(1.0)  # ConvNeXt starts its blocks at 1e-6: let the block count
    result = GradCAM(model, layer)(x, targets=[1, 2])
    recorded: dict[str, torch.Tensor] = {}
    handle = model.features[1][0].block[3].register_forward_hook(lambda _m, _i, o: recorded.update(out=o))
    logits = model(x)
    handle.remove()
    acts = recorded["out"]  # [B, h, w, 64]: the hand computation reads the last axis
    grads = torch.autograd.grad(logits.gather(1, torch.tensor([[1], [2]])).sum(), acts)[0]
    expected = torch.relu((grads.mean(dim=(1, 2))[:, None, None, :] * acts).sum(dim=3))
    assert torch.allclose(result.raw, expected.detach(), atol=1e-5)
    masks = torch.zeros(1, 64, dtype=torch.bool)
    masks[0, 37] = True
    with torch.no_grad(), UnitEdit(model, layer, masks, torch.zeros(64), x):
        ablated = model(x)
    edit = model.features[1][0].block[3].register_forward_hook(lambda _m, _i, o: o.index_fill(3, torch.tensor([37]), 0))
    with torch.no_grad():
        by_hand = model(x)
    edit.remove()
    assert torch.allclose(ablated, by_hand, atol=1e-6) and not torch.allclose(ablated, model(x).detach(), atol=1e-4)
    plan = plan_occlusion(model, layer, (32, 32))
    assert plan.channels == 64 and plan.map_size == (8, 8)
    assert torch.allclose(plan.full_model(x), acts.detach().permute(0, 3, 1, 2), atol=1e-5)


# A planted world at the maps' resolution: 32 px images, labels on the 8 × 8 grid of 4 px patches.
WORLD = ConceptTable((Concept(1, "square", "object"), Concept(2, "bar", "object"), Concept(3, "red", "color"),
                      Concept(4, "green", "color")), ("object", "color"))
PLANTED_UNIT = 37


class AlignedProbe:
    """One red 8 px square and one green 4 px bar per image, on the 4 px patch grid; sample i from (seed, i)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.name = n, seed, f"aligned-{n}-{seed}"
        self.concepts = WORLD
        self.image_size = (32, 32)
        self.label_size = (8, 8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        image = np.zeros((32, 32, 3), np.uint8)
        obj, col = np.zeros((1, 8, 8), np.int32), np.zeros((1, 8, 8), np.int32)
        y, x = (int(v) for v in rng.integers(0, 7, size=2))
        image[4 * y:4 * y + 8, 4 * x:4 * x + 8, 0] = 255
        obj[0, y:y + 2, x:x + 2], col[0, y:y + 2, x:x + 2] = 1, 3
        row = int(rng.choice([r for r in range(8) if r not in (y, y + 1)]))
        image[4 * row:4 * row + 4, :, 1] = 255
        obj[0, row], col[0, row] = 2, 4
        return ProbeSample(i, image, {"object": obj, "color": col}, {})


def _red_stem(conv: nn.Conv2d) -> None:
    """Channels 0 and 1 of a 4 × 4 patch embedding = mean red and green, the others 0 (a norm makes it √15)."""
    conv.weight.zero_()
    conv.bias.zero_()
    conv.weight[0, 0] = 1 / 16
    conv.weight[1, 1] = 1 / 16


def _plant(linear: nn.Linear) -> None:
    """Unit PLANTED_UNIT reads channel 0 (red), every other unit channel 1 (green)."""
    linear.weight.zero_()
    linear.bias.zero_()
    linear.weight[:, 1] = 1.0
    linear.weight[PLANTED_UNIT] = torch.eye(linear.in_features)[0]


def planted_convnext() -> nn.Module:
    model = tiny_convnext()
    block = model.features[1][0].block  # dwconv, Permute, LayerNorm, Linear(16 → 64), GELU, Linear, Permute
    with torch.no_grad():
        _red_stem(model.features[0][0])
        block[0].weight.zero_()
        block[0].weight[:, 0, 3, 3] = 1.0  # the depthwise 7 × 7 passes each channel through
        block[0].bias.zero_()
        _plant(block[3])
    return model


def planted_swin() -> nn.Module:
    model = tiny_swin()
    stage = model.features[1][0]  # x + attn(norm1(x)), then x + mlp(norm2(x))
    with torch.no_grad():
        _red_stem(model.features[0][0])
        stage.attn.proj.weight.zero_()
        stage.attn.proj.bias.zero_()
        _plant(stage.mlp[0])
    return model


@pytest.mark.parametrize(("build", "layer"), [(planted_convnext, "features.1.0.block.3"),
                                              (planted_swin, "features.1.0.mlp.0")])
def test_planted_channels_last_detector_is_dissected_as_planted(build: type[nn.Module], layer: str) -> None:
    import unitscope
    from unitscope.dissection.settings import DissectSettings
    from unitscope.models.preprocessing import Preprocessing

    found = unitscope.dissect(build(), [layer], AlignedProbe(16), None, progress=False,
                              preprocessing=Preprocessing(None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
                              settings=DissectSettings(quantile=0.2, batch_size=8, workers=0))
    units = found.units[layer].set_index("unit")
    assert len(units) == 64  # the Linear's out_features, not the 8 rows of the map
    assert units.loc[PLANTED_UNIT, "label"] == "square" and units.loc[PLANTED_UNIT, "iou"] >= 0.95
    assert units.loc[PLANTED_UNIT, "color_label"] == "red" and units.loc[PLANTED_UNIT, "color_iou"] >= 0.95
    others = units.drop(PLANTED_UNIT)  # read along the wrong axis, the red unit would be another
    assert (others["label"] == "bar").all() and (others["color_label"] == "green").all()


def _block_net() -> nn.Sequential:
    """stem → a ResNet BasicBlock (its ``relu`` runs after bn1 and after the residual sum) → GAP → 3 classes."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BasicBlock(8, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3))
    for bn in (net[1].bn1, net[1].bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def _by_hand(net: nn.Sequential, x: torch.Tensor, zero_first: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's relu calls, computed without hooks (optionally unit ``zero_first`` zeroed at the first)."""
    block = net[1]
    stem = net[0](x)
    first = torch.relu(block.bn1(block.conv1(stem)))
    if zero_first is not None:
        first = first.index_fill(1, torch.tensor([zero_first]), 0)
    return first, torch.relu(block.bn2(block.conv2(first)) + stem)


def test_a_module_called_twice_is_captured_explained_and_ablated_at_its_last_call() -> None:
    net, x = _block_net(), torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        first, last = _by_hand(net, x)
    assert not torch.allclose(first, last)
    for layers, stop in ((["1.relu"], True), (["1.relu", "1.bn1"], True), (["1.relu"], False)):
        with LayerCapture(net, layers, stop_after_last=stop) as capture:  # what dissect runs
            assert torch.allclose(capture.run(x)["1.relu"], last, atol=1e-6)
    with torch.no_grad(), LayerRecorder(net, "1.relu", example=x) as recorder:  # what cam and ablate record
        net(x)
    assert recorder.activation is not None and torch.allclose(recorder.activation, last, atol=1e-6)
    # cam: Grad-CAM of the block output, by hand
    acts = _by_hand(net, x)[1]
    score = net[4](net[3](net[2](acts))).gather(1, torch.tensor([[0], [2]])).sum()
    weights = torch.autograd.grad(score, acts)[0].mean(dim=(2, 3))
    expected = torch.relu((weights[:, :, None, None] * acts).sum(dim=1)).detach()
    assert torch.allclose(GradCAM(net, "1.relu")(x, targets=[0, 2]).raw, expected, atol=1e-5)
    # ablate: unit 3 zeroed in the block's output, not after bn1
    masks = torch.zeros(1, 8, dtype=torch.bool)
    masks[0, 3] = True
    with torch.no_grad(), UnitEdit(net, "1.relu", masks, torch.zeros(8), x):
        ablated = net(x)
    with torch.no_grad():
        at_last = net[4](net[3](net[2](last.index_fill(1, torch.tensor([3]), 0))))
        at_first = net[4](net[3](net[2](_by_hand(net, x, zero_first=3)[1])))
    assert torch.allclose(ablated, at_last, atol=1e-6) and not torch.allclose(ablated, at_first, atol=1e-4)
