"""compare: two hand-written tiny runs over a hand-made probe give the expected counts, MI and ρ."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unitscope.analysis.compare.discriminative import presence_mutual_information
from unitscope.analysis.compare.label_stats import probe_label_stats
from unitscope.analysis.compare.nulls import NOT_MEASURED_CONTROL, NOT_MEASURED_RANDOM, NOT_TESTED_CONTROL
from unitscope.analysis.compare.runs import compare_many, compare_runs
from unitscope.cli.main import main
from unitscope.data.broden_export import write_broden
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.dissection.labels import detector_table
from unitscope.dissection.record import DataSpec, LayerRecord, ModelSpec, RunRecord, RunSpec
from unitscope.dissection.result import DissectionResult, LayerResult
from unitscope.errors import UsageError

CONCEPTS = ConceptTable(
    (Concept(1, "sky", "object"), Concept(2, "bed", "object"), Concept(3, "boat", "object"),
     Concept(4, "lamp", "object"), Concept(10, "bedroom", "scene"), Concept(11, "harbor", "scene")),
    ("object", "scene"),
)
# 2x2 label maps. Areas: sky 7, bed 5, boat 3, lamp 1 (of 16); images: sky 4, bed 2, boat 2, lamp 1.
MAPS = ([[1, 2], [2, 4]], [[1, 2], [2, 2]], [[1, 1], [3, 3]], [[1, 1], [1, 3]])
SCENES = (10, 10, 11, 11)
LAMP_MI = 1 - 0.75 * (-(1 / 3) * math.log2(1 / 3) - (2 / 3) * math.log2(2 / 3))  # H(S) - H(S | lamp)


class TinyProbe:
    """Four images: two bedrooms (bed, one lamp) and two harbors (boat), sky everywhere."""

    name = "tiny"
    concepts = CONCEPTS
    image_size = (4, 4)
    label_size = (2, 2)

    def __len__(self) -> int:
        return len(MAPS)

    def __getitem__(self, i: int) -> ProbeSample:
        if not 0 <= i < len(MAPS):
            raise IndexError(i)
        image = np.full((4, 4, 3), 40 * i, np.uint8)
        return ProbeSample(i, image, {"object": np.array([MAPS[i]], np.int32)}, {"scene": (SCENES[i],)})


def _run(directory: Path, labels: list[str], layer: str = "conv5", data: str = "tiny", model: str = "net",
         iou_threshold: float = 0.04, topk: int = 20, baseline: dict | None = None,
         intervals: dict | None = None, survives: list[bool] | None = None) -> Path:
    """A finished run whose units detect ``labels`` ('' = no detector; 'bedroom' = a scene detector).

    ``baseline``: the record's random baseline; ``intervals``: the layer's bootstrap intervals; ``survives``:
    a ``survives_control`` column of units.csv (the colour control)."""
    cats = {c.name: c.category for c in CONCEPTS.concepts}
    units = pd.DataFrame({
        "unit": range(len(labels)),
        "label": [lab or "sky" for lab in labels],
        "category": [cats[lab] if lab else "object" for lab in labels],
        "iou": [0.2 if lab else 0.01 for lab in labels],
        "detector": [bool(lab) for lab in labels],
        "threshold": 1.0,
    })
    if survives is not None:
        units["survives_control"] = survives
    top = pd.DataFrame(columns=["unit", "rank", "image", "score", "peak_y", "peak_x"])
    table = detector_table(units, CONCEPTS.categories)
    layer_result = LayerResult(layer, layer, (len(labels), 3, 3), units, table, top)
    spec = RunSpec(ModelSpec(model), DataSpec(data, 4, 0, 4), (layer,),
                   {"quantile": 0.005, "iou_threshold": iou_threshold, "topk": topk})
    record = RunRecord(spec, model, "tiny", 4, (4, 4), (4, 4), (4, 4), categories=CONCEPTS.categories,
                       layers=(LayerRecord(layer, layer, len(labels), (3, 3), layer, tuple(table.to_dict("records")),
                                           intervals=intervals or {}),), baseline=baseline)
    DissectionResult({layer: layer_result}, CONCEPTS, record).write(directory)
    return directory


RUN_A = ["bed", "bed", "bed", "sky", "boat", "boat", "", "bedroom"]
RUN_B = ["sky", "sky", "bed", "", "", "", "", ""]


def test_mutual_information_by_hand() -> None:
    presence = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]], bool)
    bits = presence_mutual_information(presence, np.array(SCENES))
    np.testing.assert_allclose(bits, [0.0, 1.0, 1.0, LAMP_MI], atol=1e-12)


def test_label_statistics_by_hand() -> None:
    stats = probe_label_stats(TinyProbe()).set_index("name")
    assert stats["pixel_area"].to_dict() == {"sky": 7, "bed": 5, "boat": 3, "lamp": 1}
    assert stats.loc["lamp", "pixel_share"] == pytest.approx(1 / 16)
    assert stats["image_count"].to_dict() == {"sky": 4, "bed": 2, "boat": 2, "lamp": 1}
    assert stats.loc["boat", "image_frequency"] == 0.5
    assert stats.loc["lamp", "scene_mi_bits"] == pytest.approx(LAMP_MI)


def test_counts_and_spearman_by_hand(tmp_path: Path) -> None:
    a = DissectionResult.load(_run(tmp_path / "a", RUN_A, model="scene-net"))
    b = DissectionResult.load(_run(tmp_path / "b", RUN_B, model="object-net"))
    comparison = compare_runs(a, b, probe_label_stats(TinyProbe()))
    assert comparison.names == ("scene-net", "object-net")
    cats = comparison.categories.set_index("category")
    assert cats.loc["object", ["detectors_a", "unique_a", "detectors_b", "unique_b"]].tolist() == [6, 3, 3, 2]
    assert cats.loc["scene", "detectors_a"] == 1 and cats.loc["total", "detectors_a"] == 7
    objects = comparison.objects.set_index("name")
    assert objects["units_a"].to_dict() == {"sky": 1, "bed": 3, "boat": 2, "lamp": 0}
    assert objects["units_b"].to_dict() == {"sky": 2, "bed": 1, "boat": 0, "lamp": 0}
    assert set(comparison.correlations["classes"]) == {"all"}
    rho = comparison.correlations.set_index(["side", "measure"])["rho"]
    # A: unit ranks (2,4,3,1) vs area ranks (4,3,2,1): 1 - 6·6/(4·15) = 0.4.
    assert rho[("a", "pixel_share")] == pytest.approx(0.4)
    # A vs MI (0, 1, 1, 0.31): ranks (1, 3.5, 3.5, 2) → 3.5 / sqrt(5·4.5).
    assert rho[("a", "scene_mi_bits")] == pytest.approx(3.5 / math.sqrt(22.5))
    # B: unit ranks (4, 3, 1.5, 1.5) vs area ranks (4, 3, 2, 1) → 4.5 / sqrt(4.5·5).
    assert rho[("b", "pixel_share")] == pytest.approx(4.5 / math.sqrt(22.5))
    assert rho[("b", "image_frequency")] == pytest.approx(3.75 / 4.5)


def test_foreground_correlations_leave_out_background_regions(tmp_path: Path) -> None:
    a = DissectionResult.load(_run(tmp_path / "a", RUN_A))
    b = DissectionResult.load(_run(tmp_path / "b", RUN_B))
    comparison = compare_runs(a, b, probe_label_stats(TinyProbe()), foreground=["bed", "boat", "lamp"])
    table = comparison.correlations.set_index(["classes", "side", "measure"])
    assert table.loc[("all", "a", "pixel_share"), "rho"] == pytest.approx(0.4)
    # Without sky: A (3, 2, 0) vs areas (5, 3, 1) is monotone; B ranks (3, 1.5, 1.5) → 1.5 / sqrt(1.5·2).
    assert table.loc[("foreground", "a", "pixel_share"), "rho"] == pytest.approx(1.0)
    assert table.loc[("foreground", "b", "pixel_share"), "rho"] == pytest.approx(1.5 / math.sqrt(3))
    assert table.loc[("foreground", "a", "pixel_share"), "n"] == 3


def _cli_compare(tmp_path: Path, a: Path, b: Path, *extra: str) -> Path:
    out = tmp_path / "cmp"
    main(["compare", str(a), str(b), "--out", str(out), *extra])
    return out


def test_cli_writes_tables_figures_and_report(tmp_path: Path) -> None:
    broden = str(write_broden(tmp_path / "probe", TinyProbe(), progress=False))
    a = _run(tmp_path / "a", RUN_A, data=broden, model="scene-net")
    b = _run(tmp_path / "b", RUN_B, data=broden, model="object-net")
    out = _cli_compare(tmp_path, a, b)
    table = pd.read_csv(out / "compare.csv").set_index("category")
    assert table.loc["object", "detectors_a"] == 6 and table.loc["object", "unique_b"] == 2
    report = json.loads((out / "compare.json").read_text())
    rhos = {(r["side"], r["measure"]): r["rho"] for r in report["correlations"]}
    assert rhos[("a", "pixel_share")] == pytest.approx(0.4)
    for name in ("categories.png", "objects_conv5.png", "emergence_conv5.png", "report.html"):
        assert (out / name).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "scene-net" in html and "src=\"categories.png\"" not in html


def test_stored_label_stats_serve_when_the_probe_is_gone(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", RUN_A, data=str(tmp_path / "gone"))
    b = _run(tmp_path / "b", RUN_B, data=str(tmp_path / "gone"))
    pd.DataFrame({"number": [1, 2, 3, 4, 10], "label_area": [7, 5, 3, 1, 8]}).to_csv(
        a / "conv5" / "label_stats.csv", index=False)
    out = _cli_compare(tmp_path, a, b)
    report = json.loads((out / "compare.json").read_text())
    rhos = {(r["side"], r["measure"]): r["rho"] for r in report["correlations"]}
    assert rhos[("a", "pixel_share")] == pytest.approx(0.4) and rhos[("a", "scene_mi_bits")] is None
    assert any("label_stats.csv" in note for note in report["notes"])


@pytest.mark.parametrize(("stats", "fragment"), [
    ({"number": [1, 2], "label_area": ["many", 5]}, "column label_area on line 2 holds 'many'"),
    ({"number": [1, 1], "label_area": [7, 5]}, "a label listed twice"),
    ({"number": [1, 2]}, "no column label_area"),
])
def test_damaged_stored_label_stats_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, stats: dict,
                                                 fragment: str) -> None:
    a = _run(tmp_path / "a", RUN_A, data=str(tmp_path / "gone"))
    b = _run(tmp_path / "b", RUN_B, data=str(tmp_path / "gone"))
    pd.DataFrame(stats).to_csv(a / "conv5" / "label_stats.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        _cli_compare(tmp_path, a, b)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and "label_stats.csv is corrupt" in err and fragment in err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("case", ["layers", "probe", "settings", "probe-gone", "not-a-run"])
def test_incompatible_runs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    a = _run(tmp_path / "a", RUN_A, data=str(tmp_path / "gone"))
    b = _run(tmp_path / "b", RUN_B, layer="pool5" if case == "layers" else "conv5",
             data="other" if case == "probe" else str(tmp_path / "gone"),
             iou_threshold=0.1 if case == "settings" else 0.04, topk=5)  # top-k size does not matter
    with pytest.raises(SystemExit) as exit_info:
        _cli_compare(tmp_path, a, tmp_path if case == "not-a-run" else b)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unitscope: error:") and "\n" not in err
    assert ("--force" in err) == (case in ("probe", "settings")) and not (tmp_path / "cmp").exists()
    # Different layer names are no longer refused: they pair by relative depth, which a hand-made run of an
    # unknown model cannot tell, so the one line asks for --pair.
    assert ("--pair" in err) == (case == "layers")


def test_force_is_about_probe_sets_and_never_pairs_layers_by_position(tmp_path: Path) -> None:
    a = DissectionResult.load(_run(tmp_path / "a", RUN_A))
    b = DissectionResult.load(_run(tmp_path / "b", RUN_B, layer="layer4", data="other"))
    with pytest.raises(UsageError, match="--pair"):
        compare_runs(a, b, probe_label_stats(TinyProbe()), force=True)
    comparison = compare_many((a, b), probe_label_stats(TinyProbe()), force=True, pairs=["conv5:layer4"])
    assert [p.label for p in comparison.pairs] == ["conv5 ↔ layer4"]
    assert comparison.pairing == "Layers paired as given by --pair: conv5 ↔ layer4."
    assert any("different probe sets" in note for note in comparison.notes)


def _baseline(objects: int, total: int, ci: list[float], layer: str = "conv5",
              difference: dict[str, list[float]] | None = None) -> dict:
    """A random baseline as ``dissect --baseline random`` records it: per-category counts and the total's interval
    (and, since the paired intervals, the run's detectors minus the twin's with their 95 % interval)."""
    table = [{"category": "object", "detectors": objects, "unique": min(objects, 2), "iou_detectors": objects},
             {"category": "scene", "detectors": total - objects, "unique": 1, "iou_detectors": total - objects},
             {"category": "total", "detectors": total, "unique": 3, "iou_detectors": total}]
    entry: dict = {"table": table, "intervals": {"detectors_ci": ci}}
    if difference is not None:
        entry["difference"] = difference
    return {"kind": "random", "seed": 0, "fingerprint": "x", "layers": {layer: entry}}


def test_runs_without_a_random_baseline_say_so_in_every_table(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    broden = str(write_broden(tmp_path / "probe", TinyProbe(), progress=False))
    a = _run(tmp_path / "a", RUN_A, data=broden, model="scene-net")
    b = _run(tmp_path / "b", RUN_B, data=broden, model="object-net")
    out = _cli_compare(tmp_path, a, b)
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "compare.csv").set_index("category")
    for side in ("a", "b"):
        assert table.loc["object", f"random_detectors_{side}"] == NOT_MEASURED_RANDOM
        assert table.loc["total", f"vs_random_{side}"] == NOT_MEASURED_RANDOM
        assert table.loc["object", f"survive_control_{side}"] == NOT_MEASURED_CONTROL
    assert f"their random twins: object detectors {NOT_MEASURED_RANDOM} vs {NOT_MEASURED_RANDOM}" in printed
    assert f"scene-net: object detectors {NOT_MEASURED_RANDOM}" in printed
    report = json.loads((out / "compare.json").read_text())
    assert f"conv5, object detectors: scene-net {NOT_MEASURED_RANDOM}" in report["verdicts"]
    html = (out / "report.html").read_text()
    assert "its random twin</th>" in html and html.count(NOT_MEASURED_RANDOM) >= 2
    assert "Layers paired by name: conv5." in printed and "Layers paired by name: conv5." in html
    # shares of each layer's 8 units beside the raw counts: 6 object detectors of A, 3 of B
    assert table.loc["object", "share_a"] == 0.75 and table.loc["object", "share_b"] == 0.375
    assert "<td>75.0%</td>" in html and "<td>37.5%</td>" in html


@pytest.mark.parametrize(("objects", "total", "ci", "object_words", "total_words"), [
    (2, 3, [1, 4], "more than its random twin: 6 against 2", "beats its random twin: 7 [6–8] against 3 [1–4]"),
    (6, 9, [7, 12], "does not beat its random twin: 6 against 6", "does not beat its random twin: 7 against 9"),
    (4, 5, [3, 7], "more than its random twin: 6 against 4",
     "does not clearly beat its random twin: 7 [6–8] against 5 [3–7], 95% intervals overlap"),
])
def test_verdict_against_the_random_twin_flips_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       objects: int, total: int, ci: list[float],
                                                       object_words: str, total_words: str) -> None:
    """Run A: 6 object and 7 detectors in all, total interval [6, 8]; its random twin's counts vary."""
    broden = str(write_broden(tmp_path / "probe", TinyProbe(), progress=False))
    a = _run(tmp_path / "a", RUN_A, data=broden, model="scene-net", baseline=_baseline(objects, total, ci),
             intervals={"detectors_ci": [6.0, 8.0]})
    b = _run(tmp_path / "b", RUN_B, data=broden, model="object-net")
    out = _cli_compare(tmp_path, a, b)
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "compare.csv").set_index("category")
    assert table.loc["object", "random_detectors_a"] == objects
    assert table.loc["object", "random_unique_a"] == min(objects, 2)
    assert table.loc["total", "random_detectors_ci_a"] == f"{ci[0]}–{ci[1]}"
    assert table.loc["object", "vs_random_a"].startswith(object_words)
    assert table.loc["total", "vs_random_a"].startswith(total_words)
    assert f"scene-net: object detectors {object_words}" in printed and f"all detectors {total_words}" in printed
    html = (out / "report.html").read_text()
    assert f"conv5, all detectors: scene-net {total_words}" in html
    assert (f'<li class="note">conv5, all detectors: scene-net {total_words}' in html) == ("does not" in total_words)


def test_detectors_surviving_the_colour_control_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RUN_A's detectors: bed 0-2, sky 3, boat 4-5 (objects), bedroom 7 (scene); unit 6 is no detector.
    Its random twin's survivors come from its record (1 object detector of 2 survives)."""
    survives = [True, False, True, False, True, True, True, False]
    baseline = _baseline(2, 3, [1, 4])
    baseline["control"] = {"kind": "recolored", "layers": {"conv5": {
        "detectors": 2, "survive_control": 1, "categories": {"object": {"detectors": 2, "survive_control": 1}}}}}
    broden = str(write_broden(tmp_path / "probe", TinyProbe(), progress=False))
    a = _run(tmp_path / "a", RUN_A, data=broden, survives=survives, baseline=baseline, model="scene-net")
    b = _run(tmp_path / "b", RUN_B, data=broden, baseline=_baseline(2, 3, [1, 4]), model="object-net")
    out = _cli_compare(tmp_path, a, b)
    cats = pd.read_csv(out / "compare.csv").set_index("category")
    assert cats.loc["object", "survive_control_a"] == "4"  # units 0, 2, 4, 5 (unit 6 survives but detects nothing)
    assert cats.loc["scene", "survive_control_a"] == NOT_TESTED_CONTROL  # the control tests objects and parts
    assert cats.loc["total", "survive_control_a"] == "4"
    assert cats.loc["object", "survive_control_b"] == NOT_MEASURED_CONTROL
    assert cats.loc["object", "random_survive_control_a"] == "1" == cats.loc["total", "random_survive_control_a"]
    assert cats.loc["scene", "random_survive_control_a"] == NOT_TESTED_CONTROL
    assert cats.loc["object", "random_survive_control_b"] == NOT_MEASURED_CONTROL  # its twin ran no control
    printed = capsys.readouterr().out
    assert f"object detectors surviving the colour control: 4 vs {NOT_MEASURED_CONTROL}; their random twins': 1 vs" \
        in printed
    assert re.search(r"<td>4\s*<span class=\"small\">\(twin 1\)</span>", (out / "report.html").read_text())


PAIRED = "over the same image resamples"


@pytest.mark.parametrize(("total", "difference", "object_words", "total_words"), [
    # intervals of the counts overlap ([6, 8] against [5, 9]), yet the paired difference lies above 0
    (5, {"object": [2.0, -1.0, 4.0], "total": [2.0, 1.0, 3.0]},
     f"does not clearly beat its random twin: 6 against 4, difference +2 [95% CI -1–+4] {PAIRED}",
     f"beats its random twin: 7 against 5, difference +2 [95% CI +1–+3] {PAIRED}"),
    (9, {"object": [0.0, -2.0, 2.0], "total": [-2.0, -4.0, 0.0]},
     f"does not beat its random twin: 6 against 6, difference +0 [95% CI -2–+2] {PAIRED}",
     f"does not beat its random twin: 7 against 9, difference -2 [95% CI -4–+0] {PAIRED}"),
    (6, {"object": [3.0, 1.0, 5.0], "total": [1.0, 0.0, 2.0]},
     f"beats its random twin: 6 against 3, difference +3 [95% CI +1–+5] {PAIRED}",
     f"does not clearly beat its random twin: 7 against 6, difference +1 [95% CI +0–+2] {PAIRED}"),
])
def test_verdict_uses_the_paired_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str], total: int,
                                            difference: dict[str, list[float]], object_words: str,
                                            total_words: str) -> None:
    """Run A (6 object, 7 detectors in all, interval [6, 8]) with a recorded paired difference from its twin; run
    B's record predates the paired difference, so its verdict compares intervals and says so."""
    broden = str(write_broden(tmp_path / "probe", TinyProbe(), progress=False))
    objects = 6 - int(difference["object"][0])
    a = _run(tmp_path / "a", RUN_A, data=broden, model="scene-net",
             baseline=_baseline(objects, total, [5, 9], difference=difference), intervals={"detectors_ci": [6.0, 8.0]})
    b = _run(tmp_path / "b", RUN_B, data=broden, model="object-net", baseline=_baseline(2, 3, [1, 4]),
             intervals={"detectors_ci": [6.0, 8.0]})
    out = _cli_compare(tmp_path, a, b)
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "compare.csv").set_index("category")
    assert table.loc["object", "vs_random_a"] == object_words
    assert table.loc["total", "vs_random_a"] == total_words
    d, low, high = difference["total"]
    assert table.loc["total", "random_difference_a"] == f"{d:+.0f} [{low:+.0f}–{high:+.0f}]"
    assert pd.isna(table.loc["total", "random_difference_b"])  # recorded without it
    assert table.loc["total", "vs_random_b"].endswith("(recorded without a paired difference: intervals compared)")
    assert f"scene-net: object detectors {object_words}; all detectors {total_words}" in printed
    report = json.loads((out / "compare.json").read_text())
    assert f"conv5, all detectors: scene-net {total_words}" in report["verdicts"]
    html = (out / "report.html").read_text()
    assert f"difference {d:+.0f} [{low:+.0f}–{high:+.0f}]" in html
    assert (f'<li class="note">conv5, all detectors: scene-net {total_words}' in html) == ("does not" in total_words)
