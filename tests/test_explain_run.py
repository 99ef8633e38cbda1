"""``unitscope explain`` on a tiny dissection run: exact masks, outputs, resuming, usage errors."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_usage_error, lock_held_elsewhere, run_cli

import unitscope
from unitscope.explain import explain
from unitscope.explain import run as explain_run
from unitscope.explain.bank import UnitMask
from unitscope.explain.masks import LayerMasks, compute_masks
from unitscope.explain.page import formula_snippet, load_formulas
from unitscope.explain.search import BeamSearch
from unitscope.explain.source import RunLayer, read_run
from unitscope.staging import staging_path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("explain") / "run"
    quiet = {"report": False} if "report" in inspect.signature(unitscope.dissect).parameters else {}
    unitscope.dissect("sceneworld-scene", ["conv5"], "sceneworld", out, n=10, progress=False, **quiet)
    return out


def _assert_single_iou_is_the_runs(layer: RunLayer, masks: LayerMasks) -> None:
    """Every unit's single-concept IoUs from the rebuilt masks equal the run's iou.npy."""
    search = BeamSearch(masks.bank, 1, 1)
    assert layer.iou is not None
    for unit in range(layer.units):
        singles, _ = search.singles(UnitMask.from_bits(masks.unit_bits(unit), masks.bank))
        np.testing.assert_allclose(singles, layer.iou[unit, masks.bank.numbers], rtol=1e-6, atol=1e-7)


def test_masks_reproduce_the_dissection_iou(tiny_run: Path) -> None:
    """Single-concept IoUs from the rebuilt masks equal the run's iou.npy: same masks, same rule."""
    layer = read_run(tiny_run, "conv5")
    masks = compute_masks(layer, batch_size=3, progress=False)
    _assert_single_iou_is_the_runs(layer, masks)
    again = compute_masks(layer, batch_size=7, progress=False)  # batch size changes nothing
    np.testing.assert_array_equal(again.bits, masks.bits)
    np.testing.assert_array_equal(again.bank.words, masks.bank.words)


def test_cli_writes_formulas_summary_and_page(tiny_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "explained"
    result = run_cli(capsys, "explain", "--run", str(tiny_run), "--layer", "conv5", "--units", "0-5,9",
                     "--length", "2", "--beam", "3", "--out", str(out))
    assert result.code == 0, result.err
    assert "gain more than 0.02" in result.out and "held-out images (5 of 10)" in result.out
    summary = json.loads((out / "summary.json").read_text())
    formulas = load_formulas(out)
    assert summary["units"] == 7
    assert summary["units_gaining_heldout"] == int((formulas["heldout_gain"] > 0.02).sum())
    assert summary["units_gaining_fit"] == int((formulas["fit_gain"] > 0.02).sum())
    assert summary["units_significant"] == int(formulas["significant"].sum())
    assert list(formulas["unit"]) == [0, 1, 2, 3, 4, 5, 9]
    assert tuple(formulas.columns) == explain_run.COLUMNS
    np.testing.assert_allclose(formulas["fit_gain"], formulas["fit_iou"] - formulas["fit_single_iou"], atol=2e-6)
    np.testing.assert_allclose(formulas["heldout_gain"], formulas["heldout_iou"] - formulas["heldout_single_iou"],
                               atol=2e-6)
    assert (formulas["fit_iou"] >= formulas["fit_single_iou"] - 1e-9).all()  # chosen there: never worse
    assert len(pd.read_csv(out / "null.csv")) == 4 * 128  # every unit of the four random twins' conv5
    page = (out / "explain.html").read_text()
    assert "Compositional explanations" in page and formulas["formula"].iloc[0].split()[0] in page
    assert summary["units_significant"] == 0  # 10 images: almost no held-out overlap at all
    assert "the trained network does not beat its random twin here" in page
    assert page.count("data:image/jpeg;base64,") >= 1  # pictures of the units that fire
    assert not (tmp_path / "explained.partial").exists()
    snippet = formula_snippet(formulas.iloc[0].to_dict())
    assert "held-out · single:" in snippet and "against the random twin" in snippet and "<script" not in snippet
    older = {"unit": 3, "formula": "a AND b", "iou": 0.5, "single_label": "a", "single_iou": 0.4, "gain": 0.1}
    assert "single: a 0.400 · gain +0.100" in " ".join(formula_snippet(older).split())  # an older formulas.csv


def test_resumes_after_an_interrupted_search(tiny_run: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The trained units' search resumes (null="none" here; test_explain_null resumes the twin's)."""
    full = explain(tiny_run, "conv5", tmp_path / "full", units="0-5", length=2, unit_batch=2, null="none",
                   progress=False, page=False).formulas
    searched: list[list[int]] = []
    original = explain_run._search_batch

    def flaky(search: BeamSearch, split: explain_run.Split, units: list[int]) -> pd.DataFrame:
        if len(searched) == 2:
            raise KeyboardInterrupt
        searched.append(list(units))
        return original(search, split, units)

    monkeypatch.setattr(explain_run, "_search_batch", flaky)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        explain(tiny_run, "conv5", out, units="0-5", length=2, unit_batch=2, null="none", progress=False,
                page=False)
    assert not out.exists() and (tmp_path / "resumed.partial" / "masks.npz").is_file()
    searched.clear()
    monkeypatch.setattr(explain_run, "compute_masks", lambda *a, **k: pytest.fail("masks recomputed"))
    resumed = explain(tiny_run, "conv5", out, units="0-5", length=2, unit_batch=2, null="none", progress=False,
                      page=False).formulas
    assert searched == [[4, 5]]  # only the batch that was not finished
    pd.testing.assert_frame_equal(resumed, full)
    again = explain(tiny_run, "conv5", out, units="0-5", length=2, unit_batch=2, null="none", progress=False)
    pd.testing.assert_frame_equal(again.formulas, full)  # finished: read back, not recomputed


@pytest.mark.parametrize(("args", "fragment"), [
    (["--ops", "and,xor"], "unknown ops"),
    (["--units", "0,999"], "outside the layer's units"),
    (["--units", "a-b"], "--units takes numbers"),
    (["--layer", "conv9"], "has no layer 'conv9'"),
    (["--beam", "0"], "must be positive"),
])
def test_usage_errors(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                      fragment: str) -> None:
    base = {"--run": str(tiny_run), "--layer": "conv5", "--out": str(tmp_path / "o")}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    flat = [item for pair in base.items() for item in pair]
    assert_usage_error(run_cli(capsys, "explain", *flat), fragment)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


@pytest.mark.parametrize(("option", "value"), [("--beam", "65"), ("--beam", "100000"), ("--length", "11"),
                                               ("--length", "1000")])
def test_search_size_is_bounded_before_anything_is_read(option: str, value: str, tiny_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Per unit the search scores about beam × (length - 1) × concepts × 4 formulas: --beam 100000 would never
    end. Out of range is one line before the run is read or the model loaded."""
    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run was read before the search size was checked")

    monkeypatch.setattr(explain_run, "read_run", unread)
    monkeypatch.setattr(explain_run, "compute_masks", unread)
    most = {"--beam": 64, "--length": 10}[option]
    assert_usage_error(run_cli(capsys, "explain", "--run", str(tiny_run), "--layer", "conv5", option, value,
                               "--out", str(tmp_path / "o")), f"{option} {value} is outside 1-{most}")
    assert not (tmp_path / "o").exists()


def test_a_second_writer_of_the_same_out_is_refused(tiny_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    with lock_held_elsewhere(out) as pid:
        assert_usage_error(run_cli(capsys, "explain", "--run", str(tiny_run), "--layer", "conv5", "--units", "0",
                                   "--length", "1", "--out", str(out)), f"is being written by process {pid}")
    assert not out.exists() and not staging_path(out).exists()


def test_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_usage_error(run_cli(capsys, "explain", "--run", str(tmp_path), "--layer", "conv5", "--out",
                               str(tmp_path / "o")), "not a finished dissection run")


def test_summary_counts_each_operator_once() -> None:
    formulas = pd.DataFrame({"unit": [0, 1, 2], "formula": ["a AND b", "a AND NOT b OR c", "a OR NOT b"],
                             "fit_iou": [0.5, 0.4, 0.3], "single_label": ["a"] * 3, "fit_single_iou": [0.4, 0.39, 0.3],
                             "fit_gain": [0.1, 0.01, 0.0], "heldout_iou": [0.3, 0.2, 0.3],
                             "heldout_single_iou": [0.1, 0.2, 0.3], "heldout_gain": [0.2, 0.0, 0.0],
                             "significant": [True, False, False], "length": [2, 3, 2], "candidates": [9, 9, 9]})
    summary = explain_run.summarise(formulas, "conv5", {})
    assert summary["formulas_using"] == {"AND": 1, "OR": 1, "AND NOT": 1, "OR NOT": 1}
    assert summary["units_gaining_fit"] == 1 and summary["units_gaining_heldout"] == 1
    assert summary["units_significant"] == 1 and summary["candidates_scored"] == 27
    assert summary["mean_heldout_iou"] == pytest.approx(0.8 / 3)


def test_beam_on_real_masks_equals_the_boolean_beam(tiny_run: Path) -> None:
    """SceneWorld's own concepts (names shared across categories: door, water) on the rebuilt masks."""
    from unitscope.explain.bitmasks import unpack
    from unitscope.explain.reference import BooleanProbe, boolean_beam

    masks = compute_masks(read_run(tiny_run, "conv5"), progress=False)
    bank = masks.bank
    probe = BooleanProbe(tuple(bank.leaf(k) for k in range(len(bank))), unpack(bank.words, bank.pixels),
                         bank.annotated)
    search = BeamSearch(bank, 3, 3)
    busiest = np.argsort(-np.diff(masks.offsets), kind="stable")[:3]
    for unit in busiest:
        bits = masks.unit_bits(int(unit))
        flat = np.zeros(bank.num_images * bank.words_per_image * 64, dtype=bool)
        flat[bits] = True
        found = search.explain(UnitMask.from_bits(bits, bank))
        iou, formula, scored = boolean_beam(probe, flat.reshape(bank.num_images, -1)[:, : bank.pixels], 3, 3,
                                            search.moves)
        assert (str(found.formula), found.iou, found.candidates) == (str(formula), iou, scored)


def test_run_given_as_a_result_object(tiny_run: Path) -> None:
    from types import SimpleNamespace

    from unitscope.errors import UsageError

    assert explain_run._run_dir(SimpleNamespace(result=SimpleNamespace(run_dir=tiny_run))) == tiny_run
    assert explain_run._run_dir(SimpleNamespace(run_dir=tiny_run)) == tiny_run
    with pytest.raises(UsageError, match="written to disk"):
        explain_run._run_dir(SimpleNamespace(result=SimpleNamespace(run_dir=None)))


def test_masks_of_an_amp_run_reproduce_its_iou(tmp_path: Path) -> None:
    """A run dissected under --amp bf16: explain recomputes its masks under the same autocast, so the
    single-concept IoUs equal the run's iou.npy (float32 maps against bf16-measured thresholds do not)."""
    from unitscope.dissection.settings import DissectSettings

    out = tmp_path / "amp"
    unitscope.dissect("sceneworld-scene", ["conv5"], "sceneworld", out, n=10, progress=False,
                      settings=DissectSettings(amp="bf16"))
    layer = read_run(out, "conv5")
    assert layer.amp == "bf16"
    _assert_single_iou_is_the_runs(layer, compute_masks(layer, batch_size=5, progress=False))
