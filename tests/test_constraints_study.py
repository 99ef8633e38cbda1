"""``unitscope study constraints``: resumable from finished files, its data, its goal check and its page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_one_look import assert_on_base

from unitscope.errors import UsageError
from unitscope.study.constraint_metrics import t_interval
from unitscope.study.constraints import LAYERS, StudyRecipe, run_study
from unitscope.study.constraints_page import collect_finished, goal, render_page, summarise, write_results


def fake_run(arm: str, seed: int, top1: float, object_survive: int) -> dict[str, object]:
    layer = {"units": 128, "detectors": 50 + seed, "detectors_ci": [45.0, 55.0], "unique_objects": 9,
             "object_detectors": 20, "survive": 10, "survive_ci": [6.0, 14.0], "object_survive": object_survive,
             "mean_iou": 0.08, "random_detectors": 5}
    return {"arm": arm, "seed": seed, "fresh_top1": top1, "val_top1": top1, "layers": {name: dict(layer)
                                                                                        for name in LAYERS}}


RUNS = [fake_run("none", 0, 0.80, 2), fake_run("none", 1, 0.82, 4),
        fake_run("sparsity", 0, 0.805, 4), fake_run("sparsity", 1, 0.81, 5),  # +50 %, 0.25 points lost: met
        fake_run("filters", 0, 0.70, 9), fake_run("filters", 1, 0.72, 9)]  # more survivors, 10 points lost


def test_t_interval_by_hand() -> None:
    mean, _lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.302653 * 1.0 / 3**0.5, rel=1e-5)  # t(0.975, 2) · s / √n
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)


def test_goal_compares_each_constraint_with_the_control() -> None:
    verdicts = {v["arm"]: v for v in goal(summarise(RUNS))}
    assert verdicts["sparsity"]["gain"] == pytest.approx(0.5)
    assert verdicts["sparsity"]["top1_lost"] == pytest.approx(0.0025)
    assert verdicts["sparsity"]["met"]
    assert verdicts["filters"]["gain"] == pytest.approx(2.0) and not verdicts["filters"]["met"]


def test_results_and_page(tmp_path: Path) -> None:
    recipe = StudyRecipe(seeds=(0, 1), arms=("none", "sparsity", "filters"))
    write_results(tmp_path, recipe, RUNS)
    with open(tmp_path / "constraints.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(RUNS) * len(LAYERS)
    html = render_page(tmp_path).read_text()
    assert_on_base(html)
    assert html.count('data-role="verdict"') == 2 and "meets the goal" in html and "does not meet" in html
    assert html.count("<circle") == 8 and html.count("<rect") == 4  # 2 charts × (4 constrained + 2 control seeds)
    assert "3.0 [" in html  # the control's conv5 object survivors: mean 3 with its t-interval


def test_a_finished_study_resumes_without_training(tmp_path: Path) -> None:
    recipe = StudyRecipe(seeds=(0,), arms=("none", "sparsity"))
    recipe.check(tmp_path)
    (tmp_path / "metrics").mkdir()
    for run in RUNS[::2][:2]:
        (tmp_path / "metrics" / f"{run['arm']}-s0.json").write_text(json.dumps(run))
    found = run_study(recipe, tmp_path, progress=False)  # trains nothing: each (arm, seed) is finished
    assert [run["arm"] for run in found] == ["none", "sparsity"]
    assert not any((tmp_path / "models").iterdir())
    assert collect_finished(tmp_path) == 2  # what --render-only gathers from a (partial) study folder
    assert [run["arm"] for run in json.loads((tmp_path / "constraints.json").read_text())["runs"]] == ["none",
                                                                                                    "sparsity"]
    with pytest.raises(UsageError, match="another recipe"):
        StudyRecipe(seeds=(0,), arms=("none", "sparsity"), epochs=1).check(tmp_path)
