"""``unitscope study emergence`` (issue 26, item 3) on tiny nets and a planted world: layers picked by relative
depth, the scene − object difference paired over the same resampled probe images, resumable runs, the table,
the page and its re-rendering from the data alone."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from planted_colour import PlantedColourProbe, write_colour_model

from tests.test_one_look import assert_on_base
from unitscope.dissection.result import DissectionResult, ResampledCounts
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.models.architectures import ArchConfig, build_network
from unitscope.models.loading import LoadedModel, load_model
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.study.emergence import (
    EmergenceRecipe,
    StudyNet,
    check_archs,
    model_name,
    run_study,
    shipped_architectures,
    study_emergence,
)
from unitscope.study.emergence_layers import pick_layers
from unitscope.study.emergence_metrics import scene_minus_object, verdict
from unitscope.study.emergence_page import CLAIM_TABLE, DATA, TABLE, render_page, write_results


# ---------------------------------------------------------------- layers at matching relative depth
def _picked(net: torch.nn.Module, side: int = 64) -> list[tuple[str, int, int]]:
    return [(p.path, p.passed, p.end) for p in pick_layers(net.eval(), (side, side))]


def test_alexnet_shape_layers_by_relative_depth_with_ties_to_the_deeper() -> None:
    net = SceneWorldNet(SceneWorldNetConfig(num_classes=3, widths=(4, 4, 4, 4, 4), fc_width=8, input_size=64))
    # 5 convolutions: pool1 (1/5: conv1 and pool1 tie, the later wins), 50 % lies between pool2 (2/5) and
    # conv3 (3/5): the deeper; conv4 4/5 is nearest 75 %; conv5 ends the extractor (pool5 and fc6 lie after it).
    assert _picked(net) == [("pool1", 1, 5), ("conv3", 3, 5), ("conv4", 4, 5), ("conv5", 5, 5)]


def test_resnet_layers_are_its_stages_not_a_sublayer_of_the_same_depth() -> None:
    net = build_network(ArchConfig("resnet", 3, 64, {"widths": [4, 4, 8, 8], "blocks": [1, 1, 1, 1]}))
    # 1 + 2 + 3 + 3 + 3 = 12 convolutions (downsample convs from layer2 on): stages end at 3, 6, 9 and 12.
    assert _picked(net) == [("layer1", 3, 12), ("layer2", 6, 12), ("layer3", 9, 12), ("layer4", 12, 12)]


def test_vgg_layers_are_inside_features_never_the_whole_extractor() -> None:
    cfg = [4, "M", 4, "M", 4, 4, "M", 4, 4, "M"]
    net = build_network(ArchConfig("vgg", 3, 64, {"cfg": cfg, "fc_width": 8, "dropout": 0.0}))
    # features: conv0 bn1 relu2 M3 | conv4 bn5 relu6 M7 | 8 9 10 | 11 12 13 M14 | 15 16 17 | 18 19 20 M21.
    # 6 convolutions: 25 % → 2/6 (1/6 is farther), and the max-pool features.7 is the last module at that
    # depth; 50 % → 3/6 (relu 10); 75 % lies between 4/6 and 5/6: the deeper (relu 17); 100 % → the last
    # max-pool, features.21 (avgpool, after features, is not in the extractor; features itself is all of it).
    picked = _picked(net)
    assert [p[1] for p in picked] == [2, 3, 5, 6]
    assert [p[0] for p in picked] == ["features.7", "features.10", "features.17", "features.21"]
    assert all(p[2] == 6 for p in picked)


TINY_VIT = {"patch_size": 8, "num_layers": 6, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 16}


def test_vit_layers_are_its_encoder_blocks_read_as_token_grids() -> None:
    net = build_network(ArchConfig("vit", 3, 48, TINY_VIT))
    # Weight layers: conv_proj 1, then 3 per block (attention out_proj, the MLP's two Linears): blocks end at
    # 4, 7, 10, 13, 16, 19. 25 % of 19 = 4.75 → 4; 50 % = 9.5 → 10 (the deeper of a tie); 75 % = 14.25 → 13;
    # 100 %: encoder_layer_5, encoder.layers and encoder all end at 19: the outermost, encoder (its final ln).
    assert _picked(net, 48) == [("encoder.layers.encoder_layer_0", 4, 19), ("encoder.layers.encoder_layer_2", 10, 19),
                                ("encoder.layers.encoder_layer_3", 13, 19), ("encoder", 19, 19)]


# ---------------------------------------------------------------- the paired difference, by hand
def _metrics(detectors: int, survive: int, counts: str, survivors: str, draws: str = "d1") -> dict[str, object]:
    return {"categories": {"object": {"detectors": detectors, "survive": survive}},
            "resampled": {"draws": draws, "counts": {"object": counts}},
            "survive_resampled": {"draws": draws, "counts": {"object": survivors}}}


def test_scene_minus_object_is_the_percentile_interval_of_per_resample_differences() -> None:
    scene = _metrics(5, 3, "3 5 4 6", "1 2 3 3")
    objects = _metrics(2, 1, "1 1 2 2", "1 1 1 1")
    found = scene_minus_object(scene, objects)
    # per resample: 2 4 2 4 → 2.5th and 97.5th percentiles (numpy's linear method) 2 and 4; the difference
    # itself is the full-data counts': 5 − 2.
    assert found["detectors"] == [3.0, 2.0, 4.0]
    low, high = np.percentile([0, 1, 2, 2], [2.5, 97.5])
    assert found["survive"] == [2.0, low, high] and low == pytest.approx(0.075)
    assert verdict(found["detectors"]) == "holds" and verdict(found["survive"]) == "holds"
    assert verdict([-1.0, -3.0, -0.5]) == "reversed" and verdict([1.0, -1.0, 2.0]) == "unresolved"


def test_runs_of_other_resamples_give_no_interval() -> None:
    found = scene_minus_object(_metrics(5, 3, "3 5", "1 2"), _metrics(2, 1, "1 1", "1 1", draws="other"))
    assert found["detectors"][0] == 3.0 and all(math.isnan(v) for v in found["detectors"][1:])
    assert verdict(found["detectors"]) == "not measured"


# ---------------------------------------------------------------- a planted study, end to end
OBJECT_NET = """
import torch
from torch import nn

def build():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1, bias=False))
    weight = torch.zeros(2, 3, 3, 3)
    weight[0, :, 1, 1] = torch.tensor([1.0, -1.0, -1.0])  # the colour unit only; unit 1 is silent
    with torch.no_grad():
        net[0].weight.copy_(weight)
    return net
"""
SETTINGS = DissectSettings(quantile=0.02, upsample="bilinear", batch_size=16, workers=0)


def _planted(spec: str, name: str) -> LoadedModel:
    loaded = load_model(spec)
    return replace(loaded, name=name, preprocess=loaded.preprocess.with_overrides(None, (0.0, 0.0, 0.0),
                                                                                   (1.0, 1.0, 1.0)))


def _planted_study(tmp_path: Path) -> tuple[dict[str, object], Path]:
    scene_spec = write_colour_model(tmp_path)
    (tmp_path / "object_net.py").write_text(OBJECT_NET)
    nets = [StudyNet("planted", "scene", _planted(scene_spec, "planted-scene")),
            StudyNet("planted", "object", _planted(f"{tmp_path / 'object_net.py'}:build", "planted-object"))]
    recipe = EmergenceRecipe(archs=("planted",), n=48, bootstrap=40, targets=(1.0,), data="planted")
    out = tmp_path / "study"
    return run_study(recipe, out, nets, PlantedColourProbe(48), progress=False, settings=SETTINGS), out


def test_a_planted_scene_net_has_one_more_object_detector_and_it_survives_the_control(tmp_path: Path) -> None:
    """The scene net holds a colour unit and a shape unit, both stove detectors on a world of red stoves; the
    object net only the colour unit. Scene − object: +1 detector in every resample, and +1 surviving the
    colour control (the shape unit), so both intervals are [1, 1] and the claim holds and survives."""
    data, out = _planted_study(tmp_path)
    (claim,) = data["claims"]  # type: ignore[misc]
    assert (claim["scene_layer"], claim["object_layer"], claim["depth"]) == ("0", "0", 1.0)
    assert (claim["scene"], claim["object"]) == (2, 1)
    assert claim["difference"] == [1.0, 1.0, 1.0] and claim["verdict"] == "holds"
    assert (claim["scene_survive"], claim["object_survive"]) == (1, 0)
    assert claim["survive_difference"] == [1.0, 1.0, 1.0] and claim["survive_verdict"] == "holds"
    assert "the claim holds" in data["sentences"]["planted"]  # type: ignore[index]
    assert "it survives the colour control" in data["sentences"]["planted"]  # type: ignore[index]
    # As documented: the per-resample counts the runs recorded, differenced resample by resample.
    scene = DissectionResult.load(out / "runs" / "planted-scene")
    objects = DissectionResult.load(out / "runs" / "planted-object")
    a, b = scene.layers["0"].resampled, objects.layers["0"].resampled
    assert a is not None and b is not None and a.draws == b.draws and len(a.counts["object"]) == 40
    assert np.percentile(a.counts["object"] - b.counts["object"], [2.5, 97.5]).tolist() == [1.0, 1.0]
    # The random twin is beside every number: the object net reused the scene net's (same architecture).
    assert scene.record.baseline is not None and objects.record.baseline is not None
    assert scene.record.baseline["fingerprint"] == objects.record.baseline["fingerprint"]
    network = data["networks"][0]  # type: ignore[index]
    cell = network["metrics"]["0"]["categories"]["object"]
    assert cell["vs_twin"] == scene.record.baseline["layers"]["0"]["difference"]["object"]
    assert cell["twin_detectors"] is not None and len(cell["twin_detectors_ci"]) == 2


def test_the_study_resumes_writes_its_table_and_page_and_re_renders_from_its_data(tmp_path: Path) -> None:
    data, out = _planted_study(tmp_path)
    summary = out / "runs" / "planted-scene" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    again, _ = _planted_study(tmp_path)  # the finished runs are reused, not dissected again
    assert summary.stat().st_mtime_ns == stamp
    assert again["claims"] == data["claims"]
    write_results(out, data)
    table = pd.read_csv(out / TABLE)
    assert set(table["task"]) == {"scene", "object"} and set(table["layer"].astype(str)) == {"0"}
    row = table[(table["task"] == "scene") & (table["category"] == "object")].iloc[0]
    assert (row["detectors"], row["survive"]) == (2, 1) and not math.isnan(row["twin_detectors"])
    claim = pd.read_csv(out / CLAIM_TABLE).iloc[0]
    assert (claim["difference"], claim["difference_lo"], claim["difference_hi"]) == (1, 1, 1)
    html = render_page(out).read_text()
    assert_on_base(html)
    assert 'data-role="verdict"' in html and "the claim holds" in html and "What is resampled" in html
    for chart in ("claim.png", "netdissect.png", "depth.png"):
        assert (out / chart).stat().st_size > 1000
    committed = json.loads((out / DATA).read_text())
    (out / "index.html").unlink()
    (out / "claim.png").unlink()
    found = study_emergence(out, render_only=True, progress=False)  # from emergence.json alone
    assert found.page.read_text() == html and (out / "claim.png").is_file()
    assert json.loads((out / DATA).read_text()) == committed
    assert found.claims.iloc[0]["verdict"] == "holds"


# ---------------------------------------------------------------- tiny nets of two architectures on SceneWorld
def _tiny(arch: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if arch == "alexnet":
        return SceneWorldNet(SceneWorldNetConfig(num_classes=3, widths=(4, 4, 6, 6, 8), fc_width=8, input_size=48))
    return build_network(ArchConfig("resnet", 3, 48, {"widths": [4, 4, 6, 8], "blocks": [1, 1, 1, 1]}))


def test_tiny_nets_of_two_architectures_pair_by_depth_and_their_differences_are_as_documented(
        tmp_path: Path) -> None:
    from unitscope.data.sceneworld import SceneWorldProbe
    from unitscope.models.preprocessing import Preprocessing

    nets = [StudyNet(arch, task, LoadedModel(_tiny(arch, seed).eval(), f"tiny-{arch}-{task}",
                                             Preprocessing(input_size=(48, 48))))
            for arch in ("alexnet", "resnet") for task, seed in (("scene", 1), ("object", 2))]
    recipe = EmergenceRecipe(archs=("alexnet", "resnet"), n=8, bootstrap=30)
    settings = DissectSettings(quantile=0.02, upsample="bilinear", batch_size=8, workers=0)
    data = run_study(recipe, tmp_path, nets, SceneWorldProbe(8, size=48), progress=False, settings=settings)
    layers = {(n["arch"], n["task"]): [(p["target"], p["layer"], p["depth"]) for p in n["layers"]]
              for n in data["networks"]}
    assert layers[("alexnet", "scene")] == layers[("alexnet", "object")] == [
        (0.25, "pool1", 0.2), (0.5, "conv3", 0.6), (0.75, "conv4", 0.8), (1.0, "conv5", 1.0)]
    assert layers[("resnet", "scene")] == [(0.25, "layer1", 0.25), (0.5, "layer2", 0.5), (0.75, "layer3", 0.75),
                                           (1.0, "layer4", 1.0)]
    claims = data["claims"]
    assert [(c["arch"], c["scene_layer"]) for c in claims] == [
        ("alexnet", "pool1"), ("alexnet", "conv3"), ("alexnet", "conv4"), ("alexnet", "conv5"),
        ("resnet", "layer1"), ("resnet", "layer2"), ("resnet", "layer3"), ("resnet", "layer4")]
    runs = {(arch, task): DissectionResult.load(tmp_path / "runs" / f"{arch}-{task}")
            for arch in ("alexnet", "resnet") for task in ("scene", "object")}
    for claim in claims:  # as documented: full-data difference; percentiles of the per-resample differences
        scene = runs[(claim["arch"], "scene")].layers[claim["scene_layer"]]
        objects = runs[(claim["arch"], "object")].layers[claim["object_layer"]]
        count = {name: int(layer.table.set_index("category").loc["object", "detectors"])
                 for name, layer in (("scene", scene), ("object", objects))}
        assert (claim["scene"], claim["object"]) == (count["scene"], count["object"])
        assert scene.resampled is not None and objects.resampled is not None
        per_resample = scene.resampled.counts["object"] - objects.resampled.counts["object"]
        assert len(per_resample) == 30
        assert claim["difference"] == [count["scene"] - count["object"], *np.percentile(per_resample, [2.5, 97.5])]
        assert claim["verdict"] == verdict(claim["difference"])


def test_a_tiny_vit_pair_is_dissected_on_its_token_grids_beside_its_twin(tmp_path: Path) -> None:
    from unitscope.data.sceneworld import SceneWorldProbe
    from unitscope.models.preprocessing import Preprocessing

    def vit(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_network(ArchConfig("vit", 3, 48, TINY_VIT)).eval()

    nets = [StudyNet("vit", task, LoadedModel(vit(seed), f"tiny-vit-{task}", Preprocessing(input_size=(48, 48))))
            for task, seed in (("scene", 1), ("object", 2))]
    recipe = EmergenceRecipe(archs=("vit",), n=8, bootstrap=10, targets=(0.25, 1.0))
    settings = DissectSettings(quantile=0.02, upsample="bilinear", batch_size=8, workers=0)
    data = run_study(recipe, tmp_path, nets, SceneWorldProbe(8, size=48), progress=False, settings=settings)
    for network in data["networks"]:
        assert [p["layer"] for p in network["layers"]] == ["encoder.layers.encoder_layer_0", "encoder"]
        assert network["units_by_layer"] == {"encoder.layers.encoder_layer_0": 8, "encoder": 8}  # hidden_dim
    scene = DissectionResult.load(tmp_path / "runs" / "vit-scene")
    assert scene.layers["encoder"].shape[0] == 8  # units: the token dimension, not the 1 + 36 tokens
    assert [(c["arch"], c["scene_layer"], c["object_layer"]) for c in data["claims"]] == [
        ("vit", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_0"), ("vit", "encoder", "encoder")]
    assert all(c["twin"] is not None for c in data["claims"])


# ---------------------------------------------------------------- the shipped pairs and the CLI
def test_the_shipped_pairs_come_from_the_catalog() -> None:
    from unitscope.models.builtin import BUILTIN_MODELS

    archs = shipped_architectures()
    assert archs[0] == "alexnet"
    for arch in archs:
        for task in ("scene", "object"):
            assert model_name(arch, task) in BUILTIN_MODELS
    assert model_name("alexnet", "scene") == "sceneworld-scene"
    assert check_archs(()) == archs and check_archs(tuple(reversed(archs))) == archs
    with pytest.raises(UsageError, match="no shipped scene/object pair"):
        check_archs(("bogus",))


def test_resampled_counts_round_trip_through_the_record() -> None:
    counts = ResampledCounts("abc", {"object": np.array([3, 0, 12]), "total": np.array([5, 1, 20])})
    back = ResampledCounts.from_record(json.loads(json.dumps(counts.to_record())))
    assert back is not None and back.draws == "abc"
    assert {k: v.tolist() for k, v in back.counts.items()} == {"object": [3, 0, 12], "total": [5, 1, 20]}
    assert ResampledCounts.from_record({}) is None and ResampledCounts.from_record({"draws": "a", "counts": {
        "object": "1 x"}}) is None


def test_the_study_is_in_the_package_namespace() -> None:
    import unitscope

    assert unitscope.study_emergence is study_emergence and "study_emergence" in unitscope.__all__


def test_the_package_ships_the_committed_results_headline() -> None:
    """The demo shows what docs/data/emergence holds: the package's copy is that result's headline."""
    from unitscope.study.emergence_page import _plain, headline, read_data, shipped_result

    committed = read_data(Path(__file__).resolve().parents[1] / "docs" / "data" / "emergence")
    shipped = shipped_result()
    assert shipped is not None and shipped["claims"]
    assert json.dumps(_plain(shipped)) == json.dumps(_plain(headline(committed)))
    archs = {claim["arch"] for claim in shipped["claims"]}
    assert archs == set(shipped["sentences"]) and "alexnet" in archs
    assert archs == set(shipped_architectures())  # every shipped pair is in the committed result


@pytest.mark.parametrize(("args", "message"), [
    (("--arch", "bogus"), "unitscope: error: --arch bogus has no shipped scene/object pair; use one of alexnet"),
    (("--n", "1"), "unitscope: error: --n must be at least 2, got 1"),
    (("--render-only",), "unitscope: error: s holds no emergence.json; run the study first"),
])
def test_cli_errors_are_one_line_before_torch(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    import subprocess
    import sys

    from tests.test_constraints import PROBE

    done = subprocess.run([sys.executable, "-c", PROBE, "study", "emergence", "--out", "s", *args],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert "torch was imported" not in done.stderr and "numpy was imported" not in done.stderr, done.stderr
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message)
