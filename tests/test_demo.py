"""The main job end to end, small: every step runs, the page tells the story, a rerun recomputes nothing; and
what the demo refuses before any work (a device this machine lacks, an --out that is not its own)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_usage_error, run_cli

from unitscope import demo
from unitscope.cli.main import main
from unitscope.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_small_demo_writes_the_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = DemoConfig.quick(tmp_path / "demo")  # the images of `unitscope demo --quick`
    summary = run_demo(config)
    out = capsys.readouterr().out
    assert "detector units (unique concepts) per layer" in out and "transfer" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("[")][:12] == [
        f"[{k}/12" for k in range(1, 13)]
    page = (config.out / "index.html").read_text()
    assert "Object detectors emerge in a scene network" in page
    assert "bound method" not in page and "nan" not in re.sub(r"<[^>]+>", "", page).lower().split()
    for name in ("scene-net/report.html", "object-net/report.html", "compare/report.html", "rf/rf.png"):
        assert (config.out / name).is_file()
    assert "Empirical receptive fields" in page and "Class activation maps" in page
    assert 'src="cam/cam_' in page and 'src="rf/rf.png"' in page
    cam = summary["cam"]  # scored on the placed objects, beside the random twin, with the verdict in words
    assert cam["localisation"]["n_images"] + cam["localisation"]["excluded"] + cam["localisation"]["skipped"] == 8
    assert cam["localisation"]["object_share"] < 0.9 and set(cam["baseline"]["differences"]) == {"lift", "pointing"}
    assert cam["baseline"]["verdict"] in page and "its random twin" in page and "random weights" in page
    control = summary["control"]  # each net and the random twin beside the colour control, on the page in words
    for label in ("scene-net", "object-net"):
        for name in ("run", "random"):
            layer = control[label][name]["layers"]["conv5"]
            assert 0 <= layer["survive_control"] <= layer["detectors"] and len(layer["survive_ci"]) == 2
    assert "colour control" in page and "object detectors survive" in page
    explained = summary["explain"]  # explain held out against random twins, its verdict on the page
    assert explained["units"] == 128 and explained["verdict"] and explained["verdict"] in html.unescape(page)
    study = summary["study"]  # `study emergence` across architectures, from its shipped result (not recomputed)
    assert study and 'data-role="study"' in page and (config.out / "study" / "claim.png").is_file()
    assert study["sentences"] and all(s in html.unescape(page) for s in study["sentences"])
    seen = summary["see"]  # the last section: two scenes through see, each with its page, strip and boxes' units
    assert len(seen) == 2 and all(s["schema"] == "unitscope.see/sight" and s["passes"] == 1 for s in seen)
    assert page.count('data-role="see"') == 2 and 'href="see/index.html"' in page
    for s in seen:
        assert (config.out / "see" / f"{s['name']}_strip.png").is_file() and f'href="see/{s["name"]}.html"' in page
        assert s["scene"][0]["name"] in page and f"see {s['name']}: {s['scene'][0]['name']}" in out
    assert list((config.out / "scene-net" / "vectors").glob("*.npz"))  # fitted once, kept in the run
    assert {row["model"] for row in summary["accuracy"]} == {"sceneworld-scene", "sceneworld-object"}
    assert len(summary["transfer"]) == 4
    stamp = (config.out / "scene-net" / "summary.json").stat().st_mtime_ns
    run_demo(config)
    assert (config.out / "scene-net" / "summary.json").stat().st_mtime_ns == stamp


class _Started(Exception):
    """Raised by the demo's first step in these tests: the checks before it let the demo start."""


@pytest.fixture
def first_step(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The demo's first step replaced by one that records its output folder and stops the demo."""
    started: list[Path] = []

    def step(config: DemoConfig) -> None:
        started.append(config.out)
        raise _Started

    monkeypatch.setattr(demo, "accuracy_table", step)
    return started


@pytest.mark.parametrize("device", ["tpu", "cuda", "cuda:7"])
def test_a_device_this_machine_lacks_is_refused_before_any_work(device: str, tmp_path: Path, first_step: list[Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_usage_error(run_cli(capsys, "demo", "--quick", "--out", str(tmp_path / "d"), "--device", device),
                       f"--device {device}" if device != "tpu" else "unknown device 'tpu'")
    assert not first_step and not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []


def test_an_out_of_other_files_is_refused_unless_overwrite(tmp_path: Path, first_step: list[Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "accuracy.csv").write_text("not,a,demo\n")  # a demo would read this back as its own table
    assert_usage_error(run_cli(capsys, "demo", "--quick", "--out", str(out)), "not a demo's output")
    assert not first_step and sorted(p.name for p in out.iterdir()) == ["accuracy.csv", "notes.txt"]
    with pytest.raises(_Started):
        main(["demo", "--quick", "--out", str(out), "--overwrite"])
    assert first_step == [out] and [p.name for p in out.iterdir()] == [demo.MARKER]


def test_an_earlier_demo_resumes_only_with_its_own_settings(tmp_path: Path, first_step: list[Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    with pytest.raises(_Started):
        run_demo(DemoConfig.quick(out))
    (out / "transfer.csv").write_text("kept\n")  # a step an earlier demo finished
    with pytest.raises(_Started):
        run_demo(DemoConfig.quick(out))  # same settings: resumes, keeps what was done
    assert (out / "transfer.csv").read_text() == "kept\n"
    assert_usage_error(run_cli(capsys, "demo", "--out", str(out), "--n", "60", "--n-eval", "30"),
                       "holds a demo made with other settings")
    assert (out / "transfer.csv").read_text() == "kept\n" and len(first_step) == 2
