"""Training constraints (issue 27): concept whitening's module, the losses' gradients, reproducibility, parsing.

Fast: tiny tensors, float64 gradchecks, 24-image training runs for determinism.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from unitscope.constraint_spec import ACTIVATION_LAYERS, parse_constraint, parse_constraints
from unitscope.constraints.filters import filter_loss, part_templates
from unitscope.constraints.sparsity import hoyer_square
from unitscope.errors import UsageError
from unitscope.models.sceneworld_net import PAPER_LAYERS
from unitscope.models.whitening import ConceptWhitening

PROBE = ("import sys; from unitscope.cli.main import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    assert 'torch' not in sys.modules, 'torch was imported'\n"
         "    assert 'numpy' not in sys.modules, 'numpy was imported'\n    raise\n")


def correlated_batch(channels: int = 6, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[8, C, 5, 5] with strongly correlated, unequally scaled channels."""
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(channels, channels, generator=generator, dtype=dtype) + 2 * torch.eye(channels, dtype=dtype)
    raw = torch.randn(8, channels, 5, 5, generator=generator, dtype=dtype)
    return torch.einsum("dc,bchw->bdhw", mixing, raw) * 3 + 1.5


def covariance(x: torch.Tensor) -> torch.Tensor:
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    centred = flat - flat.mean(1, keepdim=True)
    return centred @ centred.T / flat.shape[1]


def test_whitened_batch_has_identity_covariance_and_rotation_stays_orthogonal() -> None:
    x = correlated_batch()
    module = ConceptWhitening(6).double().train()
    assert (covariance(x) - torch.eye(6, dtype=torch.float64)).abs().max() > 0.5  # the input is far from white
    out = module(x)
    assert (covariance(out) - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-4
    assert out.mean((0, 2, 3)).abs().max() < 1e-6
    generator = torch.Generator().manual_seed(1)
    for _ in range(25):
        module.rotate(torch.randn(6, 6, generator=generator, dtype=torch.float64), 0.3)
    rotation = module.cw_rotation
    assert (rotation - torch.eye(6, dtype=torch.float64)).abs().max() > 0.1  # it did rotate
    assert (rotation @ rotation.T - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-10
    rotated = module(x)
    assert (covariance(rotated) - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-4
    assert torch.allclose(rotated, torch.einsum("dc,bdhw->bchw", rotation, module.whiten(x)), atol=1e-8)


def test_eval_mode_whitens_with_running_estimates() -> None:
    x = correlated_batch()
    module = ConceptWhitening(6, momentum=1.0).double().train()
    module(x)
    module.eval()
    assert (covariance(module(x)) - torch.eye(6, dtype=torch.float64)).abs().max() < 1e-4


def tiny_maps(weight: torch.Tensor) -> torch.Tensor:
    """A tiny net in float64: a 3×3 convolution and a ReLU on a fixed [4, 2, 6, 6] input."""
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return F.relu(F.conv2d(x, weight, padding=1)) * 20  # activations large enough that the templates matter


def test_filter_loss_gradient_matches_finite_differences() -> None:
    weight = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                         requires_grad=True)
    assert float(filter_loss(tiny_maps(weight.detach()))) < 0  # minus a mutual information
    assert torch.autograd.gradcheck(lambda w: filter_loss(tiny_maps(w)), (weight,), eps=1e-6, atol=1e-6)


def test_sparsity_loss_gradient_matches_finite_differences() -> None:
    weight = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64,
                         requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: hoyer_square(tiny_maps(w)), (weight,), eps=1e-6, atol=1e-6)


def test_whitening_gradient_matches_finite_differences() -> None:
    x = correlated_batch(3).requires_grad_(True)
    module = ConceptWhitening(3).double().train()
    assert torch.autograd.gradcheck(lambda t: module(t).pow(3).mean(), (x,), eps=1e-6, atol=1e-6)


def test_losses_on_hand_computable_maps() -> None:
    one_hot = torch.zeros(1, 1, 2, 2)
    one_hot[0, 0, 0, 0] = 1.0
    assert float(hoyer_square(one_hot)) == pytest.approx(1 / 4)  # one active entry of four
    assert float(hoyer_square(torch.ones(2, 1, 2, 2))) == pytest.approx(1.0)
    templates, log_prior = part_templates(2)
    tau = 0.5 / 4
    assert templates[0].tolist() == pytest.approx([tau, -tau, -tau, -tau])  # 1 − 4·1/2 = −1 clamps to −1
    assert templates[-1].tolist() == pytest.approx([-tau] * 4)
    assert float(log_prior.exp().sum()) == pytest.approx(1.0)
    peaked = torch.zeros(4, 1, 2, 2)
    for b in range(4):
        peaked[b, 0, b // 2, b % 2] = 50.0  # each image peaks at its own cell: high information
    assert float(filter_loss(peaked)) < float(filter_loss(torch.full((4, 1, 2, 2), 12.5)))


def test_parse_constraint() -> None:
    assert parse_constraint("sparsity").text() == "sparsity:3@conv5"
    assert parse_constraint("filters:2.5@conv4").text() == "filters:2.5@conv4"
    assert parse_constraint("whitening@conv3").layer == "conv3"
    assert parse_constraint("none").text() == "none"
    assert set(ACTIVATION_LAYERS) <= set(PAPER_LAYERS)
    for text, message in (("sparse", "unknown --constraint 'sparse'"), ("filters:-1", "finite number ≥ 0"),
                          ("filters:abc", "is not a number"), ("sparsity@conv9", "unknown layer 'conv9'"),
                          ("whitening@fc6", "unknown layer 'fc6'"), ("none:1", "takes no weight")):
        with pytest.raises(UsageError, match=message):
            parse_constraint(text)
    with pytest.raises(UsageError, match="stands alone"):
        parse_constraints(["none", "sparsity"])


TRAIN = ("train", "--task", "scene", "--out", "x.pt", "--constraint")


@pytest.mark.parametrize(("args", "message"), [
    ((*TRAIN, "bogus"), "unitscope: error: unknown --constraint 'bogus'; use one of none, whitening, filters"),
    ((*TRAIN, "sparsity:-2"),
     "unitscope: error: --constraint 'sparsity:-2': the weight must be a finite number ≥ 0, got -2"),
    ((*TRAIN, "filters@conv7"), "unitscope: error: --constraint 'filters@conv7': unknown layer 'conv7' for filters;"),
    (("study", "constraints", "--out", "s", "--seeds", "0"), "unitscope: error: --seeds must be at least 1, got 0"),
    (("study", "constraints", "--out", "s", "--render-only"), "unitscope: error: s holds no constraints.json"),
])
def test_constraint_errors_are_one_line_before_torch(tmp_path: object, args: tuple[str, ...], message: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=str(tmp_path))
    assert "torch was imported" not in done.stderr and "numpy was imported" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(message)


@functools.cache
def control_digest() -> str:
    return tiny_training("none")[0]


def tiny_training(constraint: str) -> tuple[str, object]:
    from unitscope.models.digest import state_digest
    from unitscope.training import train_sceneworld_net
    from unitscope.training_config import TrainConfig

    config = TrainConfig(task="scene", n_train=24, n_val=4, epochs=1, batch_size=8, seed=5, threads=1,
                         constraints=(parse_constraint(constraint).text(),))
    checkpoint = train_sceneworld_net(config, progress=False)
    return state_digest(checkpoint.build()), checkpoint


@pytest.mark.parametrize("constraint", ["whitening", "filters", "sparsity"])
def test_training_is_deterministic_per_seed_and_records_the_constraint(
        constraint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import unitscope.constraints.whitening as whitening

    monkeypatch.setattr(whitening, "CONCEPT_IMAGES", 24)
    monkeypatch.setattr(whitening, "EVERY", 1)  # align after every step, so the rotation changes here
    first, checkpoint = tiny_training(constraint)
    second, _ = tiny_training(constraint)
    assert first == second
    assert control_digest() != first  # the constraint changed the weights
    info = checkpoint.info  # type: ignore[attr-defined]
    assert info["train_config"]["constraints"] == (parse_constraint(constraint).text(),)
    assert info["constraints"][0]["constraint"] == parse_constraint(constraint).text()
    if constraint == "whitening":
        from pathlib import Path

        from unitscope.models.loading import load_model

        path = Path(str(tmp_path)) / "cw.pt"
        checkpoint.save(path)  # type: ignore[attr-defined]
        net = load_model(str(path)).module
        assert isinstance(net.get_submodule("conv5.1"), ConceptWhitening)
        assert {name for name, _ in net.named_children()} == set(PAPER_LAYERS)
        rotation = net.get_submodule("conv5.1").cw_rotation
        assert (rotation - torch.eye(128)).abs().max() > 1e-4  # aligned, and kept at full precision
        assert (rotation @ rotation.T - torch.eye(128)).abs().max() < 1e-5
        assert info["constraints"][0]["concepts"]
        from unitscope.api import dissect
        from unitscope.dissection.settings import DissectSettings

        found = dissect(str(path), ["conv5"], n=6, settings=DissectSettings(bootstrap=0, workers=0), progress=False)
        assert len(found.units["conv5"]) == 128  # dissected through the normal loader, under its usual name


def test_constraints_need_the_alexnet_shape() -> None:
    from unitscope.training import train_sceneworld_net
    from unitscope.training_config import TrainConfig

    config = TrainConfig(task="scene", arch="resnet", n_train=4, n_val=2, epochs=1, batch_size=4, threads=1,
                         constraints=("sparsity:3@conv5",))
    with pytest.raises(UsageError, match="train it with --arch alexnet"):
        train_sceneworld_net(config, progress=False)
