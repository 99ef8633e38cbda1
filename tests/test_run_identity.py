"""A run is known by its content: the model's weights digest and class, the probe set's digest and length,
the preprocessing used (issue 23). Reuse, resume and reopening compare these, never names alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import unitscope
from unitscope.data import open_probe
from unitscope.data.identity import probe_identity
from unitscope.dissection.record import DataSpec, ModelSpec, RunSpec, spec_differences
from unitscope.errors import UsageError


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())


def _dissect(model: nn.Module, probe: object, out: Path, **kwargs: object) -> unitscope.api.Dissection:
    return unitscope.dissect(model, ["0"], probe, out, progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def probe() -> object:
    return open_probe("sceneworld", n=8, size=48)


def test_another_module_into_the_same_out_is_refused_by_its_weights(tmp_path: Path, probe: object) -> None:
    out = tmp_path / "run"
    first = _dissect(_net(0), probe, out)
    digest = first.result.record.spec.model.digest
    assert digest and first.result.record.spec.model.module_class == "torch.nn.modules.container.Sequential"
    with pytest.raises(UsageError, match=r"model weights differ \(digest " + digest[:8]):
        _dissect(_net(1), probe, out)
    again = _dissect(_net(0), probe, out)  # the same content is reused
    assert again.result.record.spec == first.result.record.spec
    other = _dissect(_net(1), probe, out, overwrite=True)
    assert other.result.record.spec.model.digest != digest
    np.testing.assert_array_equal(other.result.layers["0"].units["unit"], np.arange(6))


def test_an_interrupted_run_of_model_a_is_not_resumed_with_model_b(tmp_path: Path, probe: object,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from unitscope.dissection import engine

    real = engine.ConceptOverlap.update_counts

    def interrupt(self: object, *args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.ConceptOverlap, "update_counts", interrupt)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _dissect(_net(0), probe, out)
    assert (tmp_path / "run.partial").is_dir()
    monkeypatch.setattr(engine.ConceptOverlap, "update_counts", real)
    with pytest.raises(UsageError, match=r"interrupted run of a different command \(model weights differ"):
        _dissect(_net(1), probe, out)
    assert (tmp_path / "run.partial").is_dir()  # nothing lost: model A's work is still there to resume
    resumed = _dissect(_net(0), probe, out)
    assert resumed.result.record.n_images == 8


def test_a_probe_object_is_recorded_as_what_it_holds_and_explain_masks_that_many(tmp_path: Path) -> None:
    small = open_probe("sceneworld", n=8, size=112)  # the API's defaults say 500 images
    run = unitscope.dissect("sceneworld-scene", ["conv5"], small, tmp_path / "run", progress=False)
    data = run.result.record.spec.data
    assert (data.n, data.images, run.result.record.n_images) == (8, 8, 8)
    assert data.digest == probe_identity(small).digest
    found = unitscope.explain(tmp_path / "run", "conv5", tmp_path / "explained", length=1, beam=1, units="0-3",
                              progress=False)
    import json

    assert json.loads((tmp_path / "explained" / "summary.json").read_text())["images"] == 8
    assert len(found.formulas) == 4


def test_another_probe_of_the_same_name_is_refused(tmp_path: Path, probe: object) -> None:
    out = tmp_path / "run"
    _dissect(_net(0), probe, out)
    with pytest.raises(UsageError, match="probe set differs: 8 images vs 9"):
        _dissect(_net(0), open_probe("sceneworld", n=9, size=48), out)
    with pytest.raises(UsageError, match="probe set content differs|probe seed differs"):
        _dissect(_net(0), open_probe("sceneworld", n=8, seed=3, size=48), out)


def test_preprocessing_used_is_part_of_the_identity(tmp_path: Path, probe: object) -> None:
    from unitscope.models.preprocessing import Preprocessing

    out = tmp_path / "run"
    first = _dissect(_net(0), probe, out)
    assert first.result.record.spec.preprocessing["mean"] == pytest.approx([0.485, 0.456, 0.406])
    with pytest.raises(UsageError, match="preprocessing mean differs"):
        _dissect(_net(0), probe, out, preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5)))


def test_differences_name_what_differs() -> None:
    a = RunSpec(ModelSpec("m", digest="aaaaaaaaaaaa"), DataSpec("d", images=8, digest="x"), ("l",), {"quantile": 0.005})
    assert spec_differences(a, a) == []
    b = RunSpec(ModelSpec("m", digest="bbbbbbbbbbbb"), DataSpec("d", images=500, digest="y"), ("l",),
                {"quantile": 0.01})
    found = spec_differences(a, b)
    assert "model weights differ (digest aaaaaaaa… vs bbbbbbbb…)" in found
    assert "probe set differs: 8 images vs 500" in found
    assert "setting quantile differs (0.005 vs 0.01)" in found


def test_a_checkpoint_changed_on_disk_since_the_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    from cli_helpers import assert_usage_error, run_cli

    from unitscope.models.loading import load_model

    weights = tmp_path / "w.pt"
    net = load_model("sceneworld-scene").module
    torch.save(net.state_dict(), weights)
    run = tmp_path / "run"
    done = run_cli(capsys, "dissect", "--model", "sceneworld-scene", "--weights", str(weights), "--layer", "conv5",
                   "--n", "6", "--out", str(run), "--no-report")
    assert done.code == 0, done.err
    state = net.state_dict()
    state["conv1.0.weight"] = state["conv1.0.weight"] * 2  # a fine-tuned checkpoint saved over the old one
    torch.save(state, weights)
    for top in (run / "conv5").glob("top_maps.npy"):
        top.unlink()  # the report then needs the model's forward pass
    import json

    summary = json.loads((run / "summary.json").read_text())
    for layer in summary["layers"]:
        layer["top_maps"] = None
    (run / "summary.json").write_text(json.dumps(summary))
    assert_usage_error(run_cli(capsys, "report", str(run)), "model weights differ")
