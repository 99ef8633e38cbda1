"""The random-weights baseline is shared between networks that share the dissected part of the architecture
(the demo's scene and object nets differ only in fc8), and only then."""

from __future__ import annotations

import pytest

from unitscope.data.sceneworld import SceneWorldProbe
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings


def test_a_matching_baseline_is_reused_and_equals_a_fresh_one(capsys: pytest.CaptureFixture[str]) -> None:
    probe = SceneWorldProbe(n=12, seed=0)
    settings = DissectSettings(baseline="random", bootstrap=5, workers=0)
    scene = dissect("sceneworld-scene", ["conv3"], probe, settings=settings, progress=False)
    fresh = dissect("sceneworld-object", ["conv3"], probe, settings=settings, progress=False)
    reused = dissect("sceneworld-object", ["conv3"], probe, settings=settings, progress=True, reuse_baseline=scene)
    assert scene.record.baseline is not None and fresh.record.baseline is not None
    assert fresh.record.baseline["fingerprint"] == scene.record.baseline["fingerprint"]
    assert reused.record.baseline == fresh.record.baseline  # the same numbers, without dissecting again
    assert "reused" in capsys.readouterr().out
    # the paired difference depends on the run: each run's own detectors minus the (shared) twin's
    for run in (scene, reused):
        entry = run.record.baseline["layers"]["conv3"]  # type: ignore[index]
        mine = {row["category"]: row["detectors"] for row in run.layers["conv3"].table.to_dict(orient="records")}
        theirs = {row["category"]: row["detectors"] for row in entry["table"]}
        assert {k: v[0] for k, v in entry["difference"].items()} == {k: mine[k] - theirs[k] for k in mine}
        assert all(low <= high for _, low, high in entry["difference"].values())
    assert scene.layers["conv3"].table["detectors"].tolist() != reused.layers["conv3"].table["detectors"].tolist()
    assert scene.record.baseline["layers"]["conv3"]["difference"] \
        != reused.record.baseline["layers"]["conv3"]["difference"]
    other_seed = DissectSettings(baseline="random", baseline_seed=1, bootstrap=5, workers=0)
    own = dissect("sceneworld-object", ["conv3"], probe, settings=other_seed, progress=False, reuse_baseline=scene)
    assert own.record.baseline is not None
    assert own.record.baseline["fingerprint"] != scene.record.baseline["fingerprint"]
    assert own.record.baseline["seed"] == 1
