"""explain, chosen on one half and scored on the other, against its random twin (issue 24).

A random network must not get significant held-out gains; planted OR and AND NOT units must, with their
formula found and a held-out IoU near 1. The held-out IoU and the twin's masks are checked against
independent computations: boolean arrays, and the dissection engine run on the random twin.
"""

from __future__ import annotations

import json
from pathlib import Path

import markupsafe
import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import assert_usage_error, run_cli
from planted_explain import (
    AND_NOT_UNIT,
    OR_OVERLAPPING_UNIT,
    OR_UNIT,
    SINGLE_UNIT,
    UNIT_MEAN,
    UNIT_STD,
    UNITS,
    ComposedProbe,
    write_model,
)

import unitscope
from unitscope.dissection.reopen import Trust
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.explain import explain
from unitscope.explain import run as explain_run
from unitscope.explain.bank import ConceptBank, UnitMask
from unitscope.explain.formulas import Leaf
from unitscope.explain.heldout import (
    check_holdout,
    explain_unit,
    formula_iou,
    heldout_counts,
    heldout_images,
    split_masks,
)
from unitscope.explain.masks import LayerMasks, compute_masks
from unitscope.explain.null import (
    empirical_p,
    gain_interval,
    gain_summary,
    judge_gains,
    needed_to_pass,
    twin_masks,
    verdict,
)
from unitscope.explain.reference import BooleanProbe, all_formulas, exhaustive
from unitscope.explain.search import BeamSearch
from unitscope.explain.source import read_run
from unitscope.stats.significance import benjamini_hochberg

ALL_MOVES = [("and", False), ("or", False), ("and", True), ("or", True)]


# ---------------------------------------------------------------------------------------------- the split
def test_holdout_half_is_the_odd_images_and_other_fractions_spread_evenly() -> None:
    np.testing.assert_array_equal(np.nonzero(heldout_images(np.arange(10), 0.5))[0], [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(np.nonzero(heldout_images(np.arange(9), 1 / 3))[0], [2, 5, 8])
    assert int(heldout_images(np.arange(100), 0.3).sum()) == 30  # exact for decimal fractions (3/10)
    np.testing.assert_array_equal(np.nonzero(heldout_images(np.arange(10), 0.3))[0], [3, 6, 9])
    # an image's side depends on its probe index only, not on which other images a run skipped
    np.testing.assert_array_equal(heldout_images(np.array([1, 4, 5]), 0.5), [True, False, True])
    for bad in (0, 1, 1.5, -0.2):
        with pytest.raises(UsageError, match="not a fraction in"):
            check_holdout(bad)


def tiny_probe(seed: int, concepts: int = 5, images: int = 8, pixels: int = 70) -> BooleanProbe:
    """Random blobs of concepts in two categories; the second category is not annotated in image 0."""
    rng = np.random.default_rng(seed)
    leaves = tuple(Leaf(10 + k, f"c{k}", k % 2) for k in range(concepts))
    masks = rng.random((concepts, images, pixels)) < rng.uniform(0.05, 0.5, size=(concepts, 1, 1))
    annotated = np.ones((images, 2), dtype=bool)
    annotated[0, 1] = False
    masks[1::2, 0] = False
    return BooleanProbe(leaves, masks, annotated)


def layer_masks(probe: BooleanProbe, units: np.ndarray) -> LayerMasks:
    """LayerMasks of bool [U, N, P] unit masks over a boolean probe (probe index = bank row)."""
    bank = ConceptBank.from_masks(probe.leaves, probe.masks, probe.annotated, ("a", "b"))
    per_image = bank.words_per_image * 64
    bits = [u_image * per_image + u_pixel for u_image, u_pixel in (np.nonzero(u) for u in units)]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in bits])]).astype(np.int64)
    return LayerMasks(bank, np.concatenate(bits).astype(np.int64), offsets, np.arange(bank.num_images))


def restricted(probe: BooleanProbe, rows: np.ndarray) -> BooleanProbe:
    return BooleanProbe(probe.leaves, probe.masks[:, rows], probe.annotated[rows])


@pytest.mark.parametrize("seed", range(3))
def test_held_out_iou_equals_the_boolean_reference(seed: int) -> None:
    """Every unit's masks cut into the fit and held-out images keep exactly their bits there, and the
    IoU of any formula on a split equals the boolean computation on those images alone."""
    probe = tiny_probe(seed)
    units = np.random.default_rng(50 + seed).random((3, *probe.masks.shape[1:])) < 0.2
    split = split_masks(layer_masks(probe, units), 0.5)
    fit_rows, held_rows = np.arange(0, 8, 2), np.arange(1, 8, 2)
    for rows, part in ((fit_rows, split.fit), (held_rows, split.heldout)):
        np.testing.assert_array_equal(part.images, rows)
        reference = restricted(probe, rows)
        for u in range(3):
            mask = UnitMask.from_bits(part.unit_bits(u), part.bank)
            assert mask.total == int(units[u][rows].sum())
            for formula in list(all_formulas(probe.leaves, 2, ALL_MOVES))[::7]:
                assert formula_iou(part.bank, mask, formula) == pytest.approx(
                    reference.iou(formula, units[u][rows]), abs=1e-15), str(formula)


@pytest.mark.parametrize("seed", range(3))
def test_formula_and_single_are_chosen_on_fit_and_scored_on_held_out(seed: int) -> None:
    probe = tiny_probe(seed, concepts=5)
    units = np.random.default_rng(80 + seed).random((1, *probe.masks.shape[1:])) < 0.15
    split = split_masks(layer_masks(probe, units), 0.5)
    row = explain_unit(BeamSearch(split.fit.bank, 2, beam=5), split, 0)  # beam = concepts: exhaustive at length 2
    fit, held = restricted(probe, np.arange(0, 8, 2)), restricted(probe, np.arange(1, 8, 2))
    fit_unit, held_unit = units[0][0::2], units[0][1::2]
    iou, formula = exhaustive(fit, fit_unit, 2, ALL_MOVES)
    single = max(probe.leaves, key=lambda leaf: (fit.iou(leaf, fit_unit), -probe.leaves.index(leaf)))
    assert (row["formula"], row["fit_iou"]) == (str(formula), iou)
    assert (row["single_label"], row["fit_single_iou"]) == (str(single), fit.iou(single, fit_unit))
    assert row["heldout_iou"] == pytest.approx(held.iou(formula, held_unit), abs=1e-15)
    assert row["heldout_single_iou"] == pytest.approx(held.iou(single, held_unit), abs=1e-15)
    assert row["heldout_gain"] == pytest.approx(row["heldout_iou"] - row["heldout_single_iou"], abs=1e-15)


# ----------------------------------------------------------------------------------------------- the null
def test_empirical_p_values_q_values_and_verdicts_by_hand() -> None:
    null = np.array([0.0, 0.1, 0.2, 0.3])
    gains = np.array([0.35, 0.2, -1.0, 0.3])
    # (1 + #null >= g) / (1 + 4): above all; ties count against the unit
    np.testing.assert_allclose(empirical_p(gains, null), [1 / 5, 3 / 5, 5 / 5, 2 / 5])
    p, q, significant = judge_gains(np.array([0.5, 0.4, 0.01]), np.zeros(99), threshold=0.02)
    np.testing.assert_allclose(p, [0.01, 0.01, 0.01])
    np.testing.assert_allclose(q, benjamini_hochberg(p))
    assert list(significant) == [True, True, False]  # the third beats the null but gains only 0.01
    p, q, significant = judge_gains(np.array([0.5]), None, threshold=0.02)
    assert np.isnan(p).all() and np.isnan(q).all() and not significant.any()


def test_the_verdict_says_when_the_twins_are_too_few_to_tell() -> None:
    """With U twin units no p-value is below 1/(U+1): BH over m units needs about m / (0.05 (U+1)) of them
    beating every twin unit; the verdict says so, and how many do."""
    assert needed_to_pass(128, 128) == 20 and needed_to_pass(128, 512) == 5 and needed_to_pass(2, 40) == 1
    null = {"units": 128, "twins": 1, "mean_gain": 0.0, "median_gain": 0.0, "p95_gain": 0.02, "max_gain": 0.1}
    gains = np.r_[np.full(10, 0.2), np.full(5, 0.05), np.zeros(113)]
    text = verdict(gains, 0, null, 0.02)
    assert text.startswith("No unit has a significant held-out gain: the trained network does not beat its random "
                           "twin here.")
    assert "at least 20 of the 128 units must each beat every twin unit" in text
    assert "10 do, and 15 beat the random twin's 95th percentile" in text
    assert "2 of 128 units have a significant" in verdict(gains, 2, null, 0.02)
    assert "at least" not in verdict(gains[:5], 0, null, 0.02)  # 5 units: one alone could pass


@pytest.fixture(scope="module")
def random_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SceneWorld scene net's architecture with random weights (as a checkpoint, so every reopening is the
    same network), dissected at conv5 on 30 images."""
    from unitscope.dissection.baseline import random_baseline
    from unitscope.models.loading import load_model

    folder = tmp_path_factory.mktemp("random")
    weights = folder / "random_scene_net.pt"
    torch.save(random_baseline(load_model("sceneworld-scene"), seed=7).module.state_dict(), weights)
    out = folder / "run"
    unitscope.dissect("sceneworld-scene", ["conv5"], "sceneworld", out, weights=str(weights), n=30, progress=False,
                      settings=DissectSettings(bootstrap=0, workers=0))
    return out


def test_the_twin_masks_are_what_dissect_measures_of_the_random_twin(random_run: Path, tmp_path: Path) -> None:
    """The twin's thresholds equal the dissection engine's on the same re-initialised network, to the bit,
    and the single-concept IoUs of its masks equal the engine's IoU matrix."""
    from unitscope.dissection.baseline import random_baseline
    from unitscope.dissection.engine import DissectionEngine
    from unitscope.dissection.reopen import reopen_model, reopen_probe
    from unitscope.receptive.theory import alignment_geometry

    layer = read_run(random_run, "conv5")
    masks = compute_masks(layer, batch_size=7, progress=False)
    twin, thresholds = twin_masks(layer, masks, seed=3, batch_size=11, progress=False)
    model = random_baseline(reopen_model(layer.result), 3)
    geometry = alignment_geometry(model.module, layer.input_size)
    outcome = DissectionEngine(model, {"conv5": layer.path}, reopen_probe(layer.result),
                               DissectSettings(bootstrap=0, workers=0), tmp_path, geometry.get, False).run()
    stats = outcome.layers[0]
    np.testing.assert_array_equal(thresholds, stats.thresholds.numpy())
    assert not np.array_equal(thresholds, layer.thresholds)  # another network than the run's
    assert stats.iou is not None
    search = BeamSearch(masks.bank, 1, 1)
    for unit in range(layer.units):
        singles, _ = search.singles(UnitMask.from_bits(twin.unit_bits(unit), twin.bank))
        np.testing.assert_allclose(singles, stats.iou[unit, masks.bank.numbers].numpy(), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------- the layer's gain against the twins, interval
# Per held-out image (columns): [formula ∩, formula ∪, single ∩, single ∪] of each unit, three images.
TRAINED_COUNTS = np.array([[[2, 0, 1], [4, 2, 2], [1, 0, 0], [4, 1, 2]],     # gain 3/8 - 1/7
                           [[0, 3, 1], [1, 4, 3], [0, 3, 0], [1, 4, 2]]], dtype=np.float64)  # 4/8 - 3/7
TWIN_COUNTS = np.array([[[1, 0, 0], [3, 2, 2], [1, 0, 0], [3, 1, 2]],        # 1/7 - 1/6
                        [[0, 0, 1], [0, 0, 2], [0, 0, 0], [0, 0, 1]],        # 1/2 - 0 (empty unions: IoU 0)
                        [[0, 1, 1], [2, 3, 2], [0, 1, 1], [2, 2, 2]]], dtype=np.float64)  # 2/7 - 2/6


def _brute_force_interval(trained: np.ndarray, twins: np.ndarray, resamples: int, seed: int) -> tuple[float, ...]:
    """The same resamples (numpy's draws of paired_bootstrap), each one re-summed image by image in loops."""
    def layer_mean(counts: np.ndarray, images: list[int]) -> float:
        gains = []
        for unit in counts:
            sums = [sum(float(unit[c, i]) for i in images) for c in range(4)]
            ious = [sums[0] / sums[1] if sums[1] > 0 else 0.0, sums[2] / sums[3] if sums[3] > 0 else 0.0]
            gains.append(ious[0] - ious[1])
        return sum(gains) / len(gains)

    n = trained.shape[2]
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = [layer_mean(trained, list(d)) - layer_mean(twins, list(d)) for d in draws]
    low, high = np.percentile(values, [2.5, 97.5])
    return layer_mean(trained, list(range(n))) - layer_mean(twins, list(range(n))), float(low), float(high)


def test_gain_interval_equals_a_brute_force_bootstrap_of_hand_counts() -> None:
    expected_trained = ((3 / 8 - 1 / 7) + (4 / 8 - 3 / 7)) / 2
    expected_twins = ((1 / 7 - 1 / 6) + (1 / 2 - 0) + (2 / 7 - 2 / 6)) / 3
    diff = gain_interval(TRAINED_COUNTS, TWIN_COUNTS, resamples=500, seed=3)
    assert diff.n == 3 and diff.resamples == 500
    assert diff.difference == pytest.approx(expected_trained - expected_twins)
    difference, low, high = _brute_force_interval(TRAINED_COUNTS, TWIN_COUNTS, 500, 3)
    assert (diff.difference, diff.low, diff.high) == pytest.approx((difference, low, high))
    assert low < high  # three images do resample to different layers' means
    again = gain_interval(TRAINED_COUNTS, TWIN_COUNTS, resamples=500, seed=3)
    assert (again.low, again.high) == (diff.low, diff.high)  # seeded


def test_gain_verdict_flips_when_the_trained_gains_are_shifted() -> None:
    same = gain_interval(TWIN_COUNTS, TWIN_COUNTS)
    assert same.difference == 0 and same.low == 0 == same.high and not same.beats_baseline
    summary = gain_summary(same, twins=4)
    assert "the trained layer does not beat its 4 random twins" in str(summary["verdict"])
    assert "includes 0" in str(summary["verdict"]) and summary["resamples"] == 2000
    shifted = TWIN_COUNTS.copy()
    shifted[:, 0] = shifted[:, 1]  # every formula now covers its unit exactly: IoU 1 wherever the union is not empty
    better = gain_interval(shifted, TWIN_COUNTS)
    assert better.low > 0 and better.beats_baseline
    text = str(gain_summary(better, twins=1)["verdict"])
    assert "the trained layer beats its random twin (difference +" in text and "over 3 images" in text
    worse = gain_interval(TWIN_COUNTS, shifted)
    assert worse.high < 0 and "lies below 0" in str(gain_summary(worse, twins=1)["verdict"])


def test_held_out_counts_sum_to_the_held_out_ious_of_the_rows(random_run: Path) -> None:
    source = read_run(random_run, "conv5")
    split = split_masks(compute_masks(source, progress=False), 0.5)
    search = BeamSearch(split.fit.bank, 2, 3)
    rows = pd.DataFrame([explain_unit(search, split, unit) for unit in range(6)])
    counts = heldout_counts(split.heldout, rows)
    assert counts.shape == (6, 4, split.heldout.bank.num_images)
    sums = counts.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.where(sums[:, 1::2] > 0, sums[:, 0::2] / sums[:, 1::2], 0.0)
    np.testing.assert_allclose(ious[:, 0], rows["heldout_iou"])
    np.testing.assert_allclose(ious[:, 1], rows["heldout_single_iou"])
    assert (counts[:, 0] <= counts[:, 1]).all() and (counts[:, 2] <= counts[:, 3]).all()


def test_a_random_network_has_no_significant_held_out_gain(random_run: Path, tmp_path: Path) -> None:
    """Scored where they were chosen, most of a random network's units "gain" from a formula (the issue's
    429 of 512); held out and against the twin, at most 5 % are significant (here none)."""
    result = explain(random_run, "conv5", tmp_path / "o", length=2, beam=3, progress=False, page=False)
    s, formulas = result.summary, result.formulas
    assert s["units"] == 128 and s["images_fit"] == 15 and s["images_heldout"] == 15
    assert s["units_gaining_fit"] > 0.25 * 128  # what explain reported before the split
    assert s["units_significant"] <= 0.05 * 128
    assert s["units_significant"] == int(formulas["significant"].sum()) == 0
    assert "does not beat its random twin here" in str(s["verdict"])
    assert result.null is not None and len(result.null) == 4 * 128  # four twins by default
    null = s["null"]
    assert isinstance(null, dict) and null["kind"] == "random" and null["seeds"] == [0, 1, 2, 3]
    expected_p = empirical_p(formulas["heldout_gain"].to_numpy(), result.null["heldout_gain"].to_numpy())
    np.testing.assert_allclose(formulas["p_value"], expected_p)
    # the layer against its twins: the difference of the tables' mean gains, with an interval that includes 0
    interval = s["gain_vs_random"]
    assert isinstance(interval, dict) and interval["n"] == 15 and interval["resamples"] == 2000
    assert interval["difference"] == pytest.approx(formulas["heldout_gain"].mean() - result.null["heldout_gain"].mean())
    assert interval["low"] <= 0 <= interval["high"]
    assert "the trained layer does not beat its 4 random twins" in str(interval["verdict"])


# ------------------------------------------------------------------------------------------ planted units
@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unitscope.data.broden_export import write_broden

    folder = tmp_path_factory.mktemp("planted")
    spec = write_model(folder)
    world = write_broden(folder / "world", ComposedProbe(40), progress=False)
    out = folder / "run"
    dissect(spec, ["units"], str(world), out, mean=UNIT_MEAN, std=UNIT_STD, progress=False,
            settings=DissectSettings(quantile=0.3, upsample="bilinear", bootstrap=0, workers=0))
    return out


def test_planted_or_and_and_not_units_are_found_held_out_and_significant(planted_run: Path, tmp_path: Path) -> None:
    result = explain(planted_run, "units", tmp_path / "o", units="0-3", progress=False,
                     trust=Trust(model_code=True))
    rows = result.formulas.set_index("unit")
    assert rows.loc[OR_UNIT, "formula"] == "delta OR gamma"
    assert rows.loc[AND_NOT_UNIT, "formula"] == "alpha AND NOT beta"
    assert rows.loc[OR_OVERLAPPING_UNIT, "formula"] == "alpha OR beta"
    for unit in (OR_UNIT, AND_NOT_UNIT, OR_OVERLAPPING_UNIT):
        assert rows.loc[unit, "heldout_iou"] >= 0.9 and rows.loc[unit, "fit_iou"] >= 0.9
        assert rows.loc[unit, "heldout_gain"] > 0.25  # its best single concept covers at most 3/4 of it
        assert rows.loc[unit, "p_value"] == pytest.approx(1 / (4 * UNITS + 1))  # beats every unit of 4 twins
        assert bool(rows.loc[unit, "significant"])
    assert rows.loc[SINGLE_UNIT, "formula"] == "gamma" and rows.loc[SINGLE_UNIT, "heldout_gain"] == 0
    assert not bool(rows.loc[SINGLE_UNIT, "significant"])  # one concept gains nothing from composition
    assert result.summary["units_significant"] == 3
    assert "3 of 4 units have a significant held-out gain" in str(result.summary["verdict"])
    assert result.null is not None and result.null["heldout_gain"].max() < 0.25
    interval = result.summary["gain_vs_random"]
    assert isinstance(interval, dict) and interval["low"] > 0  # 3 of 4 planted units gain > 0.25, no twin unit does
    assert "the trained layer beats its 4 random twins" in str(interval["verdict"])


# ----------------------------------------------------------------------------- outputs, page, CLI, resume
def test_page_and_summary_carry_held_out_numbers_the_null_and_the_verdict(random_run: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    result = run_cli(capsys, "explain", "--run", str(random_run), "--layer", "conv5", "--units", "0-9",
                     "--length", "2", "--beam", "3", "--null-seed", "5", "--out", str(out))
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] in result.out and "null.csv" in result.out
    assert summary["null"]["seeds"] == [5, 6, 7, 8] and summary["identity"]["null_seed"] == 5
    formulas = pd.read_csv(out / "formulas.csv")
    assert tuple(formulas.columns) == explain_run.COLUMNS
    np.testing.assert_allclose(formulas["fit_gain"], formulas["fit_iou"] - formulas["fit_single_iou"], atol=2e-6)
    assert (formulas["fit_iou"] >= formulas["fit_single_iou"] - 1e-9).all()
    assert tuple(pd.read_csv(out / "null.csv").columns) == explain_run.NULL_COLUMNS
    # One random unit of these ten (tub OR pedestal) beats all but 2 of the 512 twin units: q = 0.039 over ten
    # units, the false discovery a 5 % FDR allows; over all 128 units none is significant (test above).
    assert list(formulas.loc[formulas["significant"], "unit"]) == [8]
    page = (out / "explain.html").read_text()
    assert str(markupsafe.escape(summary["verdict"])) in page
    interval = summary["gain_vs_random"]["verdict"]
    assert interval.startswith("Mean held-out gain") and interval in result.out
    assert str(markupsafe.escape(interval)) in page
    assert summary["verdict"].startswith("1 of 10 units have a significant held-out gain")
    assert "held-out" in page and "random twin" in page and "95th percentile" in page
    # the run's small-probe warning (30 images of a 14x14 layer) is on the page, and the held-out half's
    warnings = summary["warnings"]
    assert len(warnings) == 2 and all("layer conv5: each unit is active on only" in w for w in warnings)
    assert all(str(markupsafe.escape(w)) in page for w in warnings)


def test_null_none_writes_no_null_and_calls_nothing_significant(random_run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    result = run_cli(capsys, "explain", "--run", str(random_run), "--layer", "conv5", "--units", "0-3",
                     "--length", "1", "--null", "none", "--holdout", "0.25", "--out", str(out))
    assert result.code == 0, result.err
    assert not (out / "null.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["null"] == {"kind": "none"} and summary["images_heldout"] == 7  # 30 images, every 4th
    assert "No null" in summary["verdict"] and summary["gain_vs_random"] is None
    assert "Mean held-out gain" not in result.out
    formulas = pd.read_csv(out / "formulas.csv")
    assert formulas["p_value"].isna().all() and not formulas["significant"].any()


@pytest.mark.parametrize(("args", "fragment"), [(["--holdout", "1"], "--holdout 1.0 is not a fraction in (0, 1)"),
                                                (["--holdout", "0"], "is not a fraction"),
                                                (["--holdout", "0.01"], "leaves 30 fit and 0 held-out images")])
def test_holdout_usage_errors(random_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                              fragment: str) -> None:
    assert_usage_error(run_cli(capsys, "explain", "--run", str(random_run), "--layer", "conv5", *args,
                               "--out", str(tmp_path / "o")), fragment)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_resume_after_an_interrupted_null_recomputes_neither_masks_nor_twin(random_run: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"units": "0-3", "length": 2, "beam": 2, "unit_batch": 32, "null_twins": 1, "progress": False,
              "page": False}
    full = explain(random_run, "conv5", tmp_path / "full", **kwargs)
    searched: list[int] = []
    original = explain_run._search_batch

    def flaky(search: BeamSearch, split: object, units: list[int]) -> pd.DataFrame:
        if len(searched) == 3:  # the trained units' batch, then two of the twin's four
            raise KeyboardInterrupt
        searched.append(units[0])
        return original(search, split, units)  # type: ignore[arg-type]

    monkeypatch.setattr(explain_run, "_search_batch", flaky)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        explain(random_run, "conv5", out, **kwargs)
    assert (tmp_path / "resumed.partial" / "null_masks-0.npz").is_file()
    searched.clear()
    monkeypatch.setattr(explain_run, "compute_masks", lambda *a, **k: pytest.fail("masks recomputed"))
    monkeypatch.setattr(explain_run, "twin_masks", lambda *a, **k: pytest.fail("twin recomputed"))
    resumed = explain(random_run, "conv5", out, **kwargs)
    assert searched == [64, 96]  # only the twin's batches not yet done
    pd.testing.assert_frame_equal(resumed.formulas, full.formulas)
    assert resumed.null is not None and full.null is not None
    pd.testing.assert_frame_equal(resumed.null, full.null)
    again = explain(random_run, "conv5", out, **kwargs)  # finished: read back
    pd.testing.assert_frame_equal(again.formulas, full.formulas)
    assert again.summary["verdict"] == full.summary["verdict"]


def test_several_twins_pool_into_one_null(random_run: Path, tmp_path: Path) -> None:
    """--null-twins 2: seeds s and s+1, each searched as the one twin is (the first twin's rows are the same),
    p-values over all 256 twin units."""
    kwargs = {"units": "0-7", "length": 1, "progress": False, "page": False}
    one = explain(random_run, "conv5", tmp_path / "one", null_seed=4, null_twins=1, **kwargs)
    two = explain(random_run, "conv5", tmp_path / "two", null_seed=4, null_twins=2, **kwargs)
    assert one.null is not None and two.null is not None
    assert list(two.null["seed"].unique()) == [4, 5] and len(two.null) == 256
    first = two.null[two.null["seed"] == 4].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, one.null)
    assert two.summary["null"]["seeds"] == [4, 5] and two.summary["null"]["units"] == 256  # type: ignore[index]
    expected = empirical_p(two.formulas["heldout_gain"].to_numpy(), two.null["heldout_gain"].to_numpy())
    np.testing.assert_allclose(two.formulas["p_value"], expected)
    assert (two.formulas["p_value"] >= 1 / 257).all()
    with pytest.raises(UsageError, match="--null-twins 0 is outside 1-64"):
        explain(random_run, "conv5", tmp_path / "none", null_twins=0, **kwargs)
