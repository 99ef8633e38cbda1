"""The window engine of minimal images: window logits equal whole passes, and the greedy loop's removals
equal the per-candidate loop's, on tiny nets, a residual net and the shipped scene net."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.minimal import choice, minimal_image
from unitscope.minimal.choice import LOGIT_TOLERANCE, clear_prediction, contenders
from unitscope.minimal.fills import make_fill
from unitscope.minimal.greedy import TargetScorer, windowed_steps
from unitscope.minimal.segments import from_labels
from unitscope.minimal.split import Split, split_model, whole_pass
from unitscope.minimal.windows import WindowScorer, fused_steps
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig

SIZE = 24


def _randomise_batch_norms(model: nn.Module, seed: int) -> nn.Module:
    """Running statistics and affine parameters far from the identity, so folding them shows."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=generator))
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.2)
    return model.eval()


class TinyChain(nn.Module):
    """conv-bn-relu, max pool, conv-relu, then a global average pool the window engine cannot run."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class TinyResidual(nn.Module):
    """A strided stem and one basic residual block (a residual sum), then a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 5, stride=2, padding=2)
        self.conv1 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 12 * 12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(torch.relu(x + y), 1))


def tiny(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model: nn.Module = TinyChain() if name == "chain" else TinyResidual()
    return _randomise_batch_norms(model, seed)


def picture(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random 24x24 picture and a 4x4 grid of regions (16 of them, 6x6 pixels each)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 4, 3))
    image = np.kron(coarse, np.ones((6, 6, 1))) + rng.normal(0, 20, (SIZE, SIZE, 3))
    labels = np.kron(np.arange(16).reshape(4, 4), np.ones((6, 6), dtype=int))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def own_class(model: nn.Module, image: np.ndarray) -> int:
    with torch.no_grad():
        return int(model(Preprocessing().batch([image])).argmax())


@pytest.mark.parametrize("name", ["chain", "residual"])
def test_split_cuts_after_the_last_spatial_layer_and_is_the_models_pass(name: str) -> None:
    model = tiny(name)
    split, reason = split_model(model, (SIZE, SIZE))
    assert split is not None, reason
    assert split.steps[-1].name == ("features.5" if name == "chain" else "relu_2")
    x = Preprocessing().batch([picture()[0]])
    acts, logits = whole_pass(split, x)
    with torch.no_grad():
        assert torch.equal(logits, model(x))  # the same modules on the same tensor: bit for bit
    assert len(acts) == len(split.steps) + 1


def test_functional_models_and_unsupported_fills_use_whole_passes() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)

    assert split_model(Functional(), (SIZE, SIZE))[0] is None
    model = tiny("chain")
    image, labels = picture()
    split, _ = split_model(model, (SIZE, SIZE))
    segmentation = from_labels(labels)
    scorer = TargetScorer(model, Preprocessing(), 0)
    assert windowed_steps(make_fill("mean", image, segmentation), scorer, image, split) is not None
    assert windowed_steps(make_fill("gradient", image, segmentation), scorer, image, split) is None
    resized = TargetScorer(model, Preprocessing(input_size=(32, 32)), 0)  # a pixel then depends on neighbours
    assert windowed_steps(make_fill("mean", image, segmentation), resized, image, split) is None


def test_fused_steps_fold_each_batch_norm_into_its_convolution() -> None:
    model = tiny("chain")
    split, _ = split_model(model, (SIZE, SIZE))
    assert split is not None
    fused = fused_steps(split.steps)
    assert isinstance(fused[1].module, nn.Identity) and isinstance(fused[0].module, nn.Conv2d)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = split.steps[1].module(split.steps[0].module(x))
        np.testing.assert_allclose(fused[0].module(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def _candidates(image: np.ndarray, labels: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rendered copies of the current image (``kept`` regions) removing each kept region, and their regions."""
    fill = make_fill("mean", image, from_labels(labels))
    regions = np.flatnonzero(kept)
    flags = np.repeat(kept[None], len(regions), axis=0)
    flags[np.arange(len(regions)), regions] = False
    return fill.render(flags), regions


def _scene_net() -> nn.Module:
    torch.manual_seed(1)
    return _randomise_batch_norms(SceneWorldNet(SceneWorldNetConfig(num_classes=6, input_size=48)), 1)


def window_setup(name: str) -> tuple[nn.Module, np.ndarray, np.ndarray, Split, torch.Tensor]:
    """Net ``name`` (a tiny one, or the scene net at 48 px), a picture of 16 regions at its size, the net's
    split and the mean fill's preprocessed background."""
    model = _scene_net() if name == "scene" else tiny(name)
    size = 48 if name == "scene" else SIZE
    image, labels = picture(3)
    if name == "scene":
        image, labels = np.kron(image, np.ones((2, 2, 1), dtype=np.uint8)), np.kron(labels, np.ones((2, 2), int))
    split, _ = split_model(model, (size, size))
    assert split is not None
    background = Preprocessing().batch([make_fill("mean", image, from_labels(labels)).background])[0]  # type: ignore[attr-defined]
    return model, image, labels, split, background


@pytest.mark.parametrize("name", ["chain", "residual", "scene"])
def test_window_logits_match_whole_passes(name: str) -> None:
    model, image, labels, split, background = window_setup(name)
    preprocess = Preprocessing()
    scorer = WindowScorer(split, labels, background)
    kept = np.ones(16, dtype=bool)
    kept[[5, 6]] = False  # the current image already lacks two regions
    current = preprocess.batch(make_fill("mean", image, from_labels(labels)).render(kept[None]))
    with torch.no_grad():
        scorer.set_current(whole_pass(split, current)[0])
        rendered, regions = _candidates(image, labels, kept)
        whole = torch.cat([model(preprocess.batch([im])) for im in rendered])
        for subset in (regions, regions[regions != 9]):  # the second reuses the groups' layouts less a member
            window = scorer.logits(torch.from_numpy(subset))
            rows = np.searchsorted(regions, subset)
            scale = max(1.0, float(whole.abs().max()))
            difference = float((window - whole[rows]).abs().max()) / scale
            assert difference < LOGIT_TOLERANCE / 10  # measured ~1e-7: rounding, well inside the tolerance
            assert torch.equal(window.argmax(1), whole[rows].argmax(1))


@pytest.mark.parametrize("name", ["chain", "residual"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_removes_what_the_per_candidate_loop_removes(name: str, seed: int) -> None:
    model = tiny(name, seed)
    image, labels = picture(seed)
    target = own_class(model, image)
    fast = minimal_image(model, image, target, Preprocessing(), segments=labels)
    loop = minimal_image(model, image, target, Preprocessing(), segments=labels, batch_size=1, incremental=False)
    assert [s.region for s in fast.steps] == [s.region for s in loop.steps]
    assert [s.correct for s in fast.steps] == [s.correct for s in loop.steps]
    assert [s.predicted for s in fast.steps] == [s.predicted for s in loop.steps]
    np.testing.assert_allclose([s.score for s in fast.steps], [s.score for s in loop.steps], rtol=0, atol=1e-6)
    assert fast.stopped == loop.stopped and fast.kept.tolist() == loop.kept.tolist()
    assert fast.initial_score == loop.initial_score


def test_fast_path_runs_few_whole_passes() -> None:
    model = tiny("chain")
    image, labels = picture()
    segmentation = from_labels(labels)
    scorer = TargetScorer(model, Preprocessing(), own_class(model, image))
    split, _ = split_model(model, (SIZE, SIZE))
    fill = make_fill("mean", image, segmentation)
    windows = windowed_steps(fill, scorer, image, split)
    assert windows is not None
    from unitscope.minimal.greedy import greedy_removal

    result = greedy_removal(fill, scorer, segmentation, windows)
    candidates = sum(16 - t for t in range(len(result.steps)))
    assert len(result.steps) >= 3
    assert windows.whole_passes <= len(result.steps) < candidates  # near ties and resyncs only


@pytest.mark.parametrize("name", ["chain", "residual"])
def test_batch_size_does_not_change_fast_results(name: str) -> None:
    model = tiny(name, 1)
    image, labels = picture(1)
    target = own_class(model, image)
    runs = [minimal_image(model, image, target, Preprocessing(), segments=labels, batch_size=b) for b in (1, 3, 64)]
    steps = [[(s.region, s.score, s.predicted) for s in r.steps] for r in runs]
    assert steps[0] == steps[1] == steps[2]  # bit for bit: the engine's groups do not follow the batch size


def test_contenders_keep_every_row_rounding_could_make_best() -> None:
    tolerance = 1e-4
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    assert contenders(logits, 0, tolerance).tolist() == [0, 1]  # a tie: both, the lower region wins later
    near = torch.tensor([[2.0, 0.0], [2.0 + 1e-5, 0.0], [2.5, 0.0]])
    assert contenders(near, 0, tolerance).tolist() == [2]  # 2.5 is beyond any rounding
    close = torch.tensor([[2.0, 0.0], [2.0 + 1e-5, 0.0]])
    assert contenders(close, 0, tolerance).tolist() == [0, 1]  # 1e-5 apart: within 2 * 1e-4 * 2
    assert not clear_prediction(torch.tensor([[1.0, 1.0 + 1e-6]]), 0, tolerance)
    assert clear_prediction(torch.tensor([[1.0, 3.0]]), 0, tolerance)


def test_strayed_window_scores_fall_back_to_whole_passes(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    model = tiny("chain")
    image, labels = picture()
    target = own_class(model, image)
    original = WindowScorer.logits

    def skewed(self: WindowScorer, regions: torch.Tensor) -> torch.Tensor:
        out = original(self, regions)
        out[:, target] += 1e-2 * torch.arange(len(out))  # wrong beyond the tolerance; the last looks best
        return out

    monkeypatch.setattr(WindowScorer, "logits", skewed)
    monkeypatch.setattr(choice, "RESYNC_EVERY", 1)  # a whole pass every step checks the window scores at once
    with caplog.at_level(logging.WARNING):
        fast = minimal_image(model, image, target, Preprocessing(), segments=labels)
    loop = minimal_image(model, image, target, Preprocessing(), segments=labels, batch_size=1, incremental=False)
    assert "strayed beyond their tolerance" in caplog.text
    assert [s.region for s in fast.steps] == [s.region for s in loop.steps]


def test_shipped_scene_net_removes_what_the_per_candidate_loop_removes() -> None:
    try:
        from unitscope.data.sceneworld import SceneWorldProbe
        from unitscope.models.loading import load_model

        loaded = load_model("sceneworld-scene")
    except (ImportError, UsageError) as err:
        pytest.skip(f"shipped scene network unavailable: {err}")
    probe = SceneWorldProbe(n=3, seed=12345, size=112, kind="scenes")
    remap = {name: k for k, name in enumerate(loaded.class_names or [])}
    for i in range(3):  # the first image the network gets right (of three: most are)
        item = probe.render(i)
        target = remap[probe.class_names[item.class_index]]
        if own_class(loaded.module, item.image) == target:
            break
    else:
        pytest.fail("the shipped scene network misclassifies all three SceneWorld images")
    fast = minimal_image(loaded.module, item.image, target, loaded.preprocess, segments=12)  # type: ignore[arg-type]
    loop = minimal_image(loaded.module, item.image, target, loaded.preprocess, segments=12,  # type: ignore[arg-type]
                         batch_size=1, incremental=False)
    assert len(fast.steps) >= 3
    assert [s.region for s in fast.steps] == [s.region for s in loop.steps]
    np.testing.assert_allclose([s.score for s in fast.steps], [s.score for s in loop.steps], rtol=0, atol=1e-6)
