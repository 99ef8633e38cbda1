"""ablate: a planted classifier where unit k alone carries class k's evidence; random units; CLI and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import assert_usage_error, run_cli
from PIL import Image

from unitscope.ablation.measure import measure_conditions
from unitscope.ablation.output import weak_rows
from unitscope.ablation.sweep import ablate, random_sets
from unitscope.data.classification import open_classification
from unitscope.data.probe import Concept, ConceptTable
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.models.loading import load_model

CLASSES = ("red", "green", "blue")
UNITS = 8

# features: units 0-2 read the raw R, G, B intensity (undoing ImageNet normalisation), units 3-7 their mean
# (distractors the classifier ignores); logit_c = 4 * mean of unit c over the image.
MODEL_SOURCE = f"""
import torch
from torch import nn

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PlantedColours(nn.Module):
    class_names = {list(CLASSES)!r}

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, {UNITS}, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear({UNITS}, 3, bias=False)
        with torch.no_grad():
            w = torch.zeros({UNITS}, 3)
            b = torch.zeros({UNITS})
            for c in range(3):
                w[c, c] = STD[c]
                b[c] = MEAN[c]
                w[3:, c] = STD[c] / 3
            b[3:] = sum(MEAN) / 3
            self.features.weight.copy_(w.view({UNITS}, 3, 1, 1))
            self.features.bias.copy_(b)
            fc = torch.zeros(3, {UNITS})
            fc[0, 0] = fc[1, 1] = fc[2, 2] = 4.0
            self.fc.weight.copy_(fc)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.relu(self.features(x)))))


def build():
    return PlantedColours()
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The model spec and a class folder: 6 images per class, noise plus a bright 4x4 patch of its colour."""
    root = tmp_path_factory.mktemp("ablation")
    (root / "planted_colours.py").write_text(MODEL_SOURCE)
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 40, size=(8, 8, 3)).astype(np.uint8)
            y, x = rng.integers(0, 5, size=2)
            image[y:y + 4, x:x + 4, c] = rng.integers(200, 256, size=(4, 4))
            Image.fromarray(image).save(root / "data" / name / f"{i}.png")
    return f"{root / 'planted_colours.py'}:build", root / "data"


def _rows(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    return table[table["kind"] == kind].set_index("scene")


def test_removing_the_planted_unit_drops_its_class_only(planted: tuple[str, Path]) -> None:
    spec, data = planted
    model = load_model(spec)
    result = ablate(model, "features", str(data), units="0", seeds=12, seed=3)
    assert result.clean_accuracy == {"(all)": 1.0, "red": 1.0, "green": 1.0, "blue": 1.0}
    remove = _rows(result.table, "remove")
    assert remove.loc["red", "accuracy"] <= 1 / 3  # at or below chance (here 0: red is never predicted)
    assert remove.loc["red", "drop"] == 1.0
    assert remove.loc["green", "drop"] == 0.0 and remove.loc["blue", "drop"] == 0.0
    # Random single units: a set drops class c (fully) exactly when it holds unit c; distractors drop nothing.
    drawn = random_sets(UNITS, 1, 12, 3)
    for c, name in enumerate(CLASSES):
        share = sum(c in units for units in drawn) / len(drawn)
        assert remove.loc[name, "random_drop_mean"] == pytest.approx(share)
    assert remove.loc["red", "random_drop_mean"] < 0.5 and remove.loc["red", "excess_drop"] > 0.5
    # Keep only unit 0: red still recognised, the other classes collapse onto red.
    keep = _rows(result.table, "keep")
    assert keep.loc["red", "accuracy"] == 1.0 and keep.loc["green", "accuracy"] == 0.0


def test_excess_over_random_units_has_an_interval_over_images_and_a_verdict(planted: tuple[str, Path]) -> None:
    """Removing unit 0 drops every red image (1 each); a random single unit drops a red image exactly when it
    is unit 0, so every red image's excess is 1 − share and the interval is that point: the verdict flips
    between red (beats random units) and green or blue (the excess is 0 − share ≤ 0: it does not)."""
    spec, data = planted
    result = ablate(load_model(spec), "features", str(data), units="0", seeds=12, seed=3)
    remove = _rows(result.table, "remove")
    share = [sum(c in units for units in random_sets(UNITS, 1, 12, 3)) / 12 for c in range(3)]
    assert remove.loc["red", "excess_low"] == pytest.approx(1 - share[0])
    assert remove.loc["red", "excess_high"] == pytest.approx(1 - share[0]) and remove.loc["red", "beats_random"]
    for c, name in ((1, "green"), (2, "blue")):
        assert remove.loc[name, "excess_low"] == pytest.approx(-share[c]) and not remove.loc[name, "beats_random"]
    # (all): 6 of 18 images drop; the bootstrap over all 18 images gives a real interval around the excess.
    row = remove.loc["(all)"]
    assert row["excess_low"] < row["excess_drop"] < row["excess_high"]
    assert row["beats_random"] == (row["excess_low"] > 0)
    weak = weak_rows(result.top_drops(10))
    assert any(line.startswith("units 0 → green") for line in weak) and not any("→ red" in line for line in weak)


def test_concept_sweep_uses_the_runs_detectors(planted: tuple[str, Path]) -> None:
    spec, data = planted
    units = pd.DataFrame({"unit": range(UNITS), "label": ["reddish", "greenish", "bluish", *["-"] * 5],
                          "category": ["object"] * UNITS, "detector": [True, True, False, *[False] * 5]})
    layer = LayerResult("features", "features", (UNITS, 8, 8), units, pd.DataFrame(), pd.DataFrame())
    concepts = ConceptTable((Concept(1, "reddish", "object"), Concept(2, "greenish", "object")), ("object",))
    result = ablate(load_model(spec), "features", str(data), run=DissectionResult({"features": layer}, concepts, None))  # type: ignore[arg-type]
    top = result.top_drops(2)
    assert {(r.concept, r.scene) for r in top.itertuples()} == {("reddish", "red"), ("greenish", "green")}
    assert (top["drop"] == 1.0).all()


@pytest.mark.parametrize("batch_size", [1, 5])
def test_outcomes_do_not_depend_on_batching_or_expansion(planted: tuple[str, Path], batch_size: int) -> None:
    spec, data = planted
    model = load_model(spec)
    dataset = open_classification(str(data), model.class_names)
    masks = torch.zeros(4, UNITS, dtype=torch.bool)
    masks[1, 0] = masks[2, 1:] = masks[3, [0, 5]] = True
    values = torch.full((UNITS,), 0.25)
    base = measure_conditions(model, "features", masks, values, dataset, batch_size=18)
    other = measure_conditions(model, "features", masks, values, dataset, batch_size=batch_size, max_items=1)
    np.testing.assert_array_equal(base.correct, other.correct)
    np.testing.assert_allclose(base.score, other.score, rtol=1e-6)
    assert base.correct[0].all()  # condition 0 edits nothing


def test_the_page_and_the_cli_say_which_drops_do_not_beat_random_units(planted: tuple[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec, data = planted
    out = tmp_path / "abl"
    result = run_cli(capsys, "ablate", "--model", spec, "--layer", "features", "--units", "0", "--data",
                     str(data), "--seeds", "12", "--seed", "3", "--out", str(out))
    assert result.code == 0, result.err
    table = pd.read_csv(out / "ablation.csv")
    weak = table[(table["kind"] == "remove") & ~table["beats_random"]]
    assert set(weak["scene"]) - {"(all)"} == {"green", "blue"}  # the red row beats random units, the others not
    page = (out / "report.html").read_text()
    assert "does <b>not</b> beat removing as many random" in page and "units 0 → green" in page
    assert "these drops do not beat random units" in result.out and "units 0 → green" in result.out
    lines = {line.split()[2]: line for line in result.out.splitlines() if line.startswith("units 0 ")}
    assert lines["red"].endswith("yes") and lines["green"].endswith("no")


def test_cli_writes_table_heatmaps_and_page(planted: tuple[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec, data = planted
    out = tmp_path / "abl"
    result = run_cli(capsys, "ablate", "--model", spec, "--layer", "features", "--units", "1,2", "--data",
                     str(data), "--seeds", "3", "--mode", "mean", "--out", str(out))
    assert result.code == 0, result.err
    table = pd.read_csv(out / "ablation.csv")
    assert set(table["kind"]) == {"remove", "keep"} and len(table) == 2 * 4
    assert (out / "heatmap_remove.png").is_file() and "largest accuracy drops" in (out / "report.html").read_text()
    # the random-units column, with both intervals, in every table written and printed
    assert {"random_drop_mean", "random_drop_low", "random_drop_high", "excess_drop", "excess_low", "excess_high",
            "beats_random"} <= set(table.columns)
    page = (out / "report.html").read_text()
    assert page.count("random units: mean drop") == 1 and "random units kept: mean drop" in page
    assert "95 % interval (images)" in page and "beats random units?" in page
    assert "random [95% sets]" in result.out and "excess [95% CI images]" in result.out
    first = table[table["kind"] == "remove"].sort_values(["drop", "excess_drop"], ascending=False).iloc[0]
    assert f"[{first['random_drop_low']:.3f}, {first['random_drop_high']:.3f}]" in result.out
    assert not (tmp_path / "abl.partial").exists()
    bad = run_cli(capsys, "ablate", "--model", spec, "--layer", "features", "--units", "1,99", "--data",
                  str(data), "--out", str(tmp_path / "bad"))
    assert_usage_error(bad, "--units must list distinct units")
    no_run = run_cli(capsys, "ablate", "--model", spec, "--layer", "features", "--data", str(data),
                     "--out", str(tmp_path / "bad"))
    assert_usage_error(no_run, "needs a dissection run")
