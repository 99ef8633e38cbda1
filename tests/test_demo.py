"""The main job end to end, small: every step runs, the page tells the story, a rerun recomputes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unitscope.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_small_demo_writes_the_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = DemoConfig.quick(tmp_path / "demo")  # the images of `unitscope demo --quick`
    summary = run_demo(config)
    out = capsys.readouterr().out
    assert "detector units (unique concepts) per layer" in out and "transfer" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("[")][:10] == [
        f"[{k}/10" for k in range(1, 11)]
    page = (config.out / "index.html").read_text()
    assert "Object detectors emerge in a scene network" in page
    assert "bound method" not in page and "nan" not in re.sub(r"<[^>]+>", "", page).lower().split()
    for name in ("scene-net/report.html", "object-net/report.html", "compare/report.html", "rf/rf.png"):
        assert (config.out / name).is_file()
    assert "Empirical receptive fields" in page and "Class activation maps" in page
    assert 'src="cam/cam_' in page and 'src="rf/rf.png"' in page
    assert {row["model"] for row in summary["accuracy"]} == {"sceneworld-scene", "sceneworld-object"}
    assert len(summary["transfer"]) == 4
    stamp = (config.out / "scene-net" / "summary.json").stat().st_mtime_ns
    run_demo(config)
    assert (config.out / "scene-net" / "summary.json").stat().st_mtime_ns == stamp
