"""A run's phase clocks: what each phase of a dissection cost, in its summary.json and its report header."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from planted import PlantedProbe, write_model

from unitscope.dissection.phases import PhaseTimes, phase_lines, process_cpu_seconds
from unitscope.dissection.record import read_record
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings


def _spin(seconds: float) -> None:
    """Busy for ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_phase_counts_its_cpu_and_wall_and_adds_when_measured_again() -> None:
    phases = PhaseTimes()
    with phases.measure("busy"):
        _spin(0.2)
    with phases.measure("idle"):
        time.sleep(0.2)
    with phases.measure("busy"):
        _spin(0.1)
    record = phases.record()
    assert list(record) == ["busy", "idle"]
    assert record["busy"]["cpu"] >= 0.29 and record["busy"]["wall"] >= 0.29
    assert record["idle"]["wall"] >= 0.19 and record["idle"]["cpu"] < 0.1  # sleeping costs no CPU


def test_a_phase_that_raises_is_still_timed() -> None:
    phases = PhaseTimes()
    with pytest.raises(ValueError), phases.measure("failing"):
        _spin(0.05)
        raise ValueError("stop")
    assert phases.record()["failing"]["cpu"] >= 0.04


def test_process_cpu_counts_other_threads() -> None:
    import threading

    before = process_cpu_seconds()
    worker = threading.Thread(target=_spin, args=(0.2,))
    worker.start()
    worker.join()
    assert process_cpu_seconds() - before >= 0.18


def test_phase_lines_shows_real_phases_and_drops_edited_entries() -> None:
    phases = {"pass 1": {"wall": 12.34, "cpu": 20.0}, "tiny": {"wall": 0.01, "cpu": 0.0},
              "negative": {"wall": -1, "cpu": 1}, "text": {"wall": "1", "cpu": 1}, "nan": {"wall": float("nan"),
              "cpu": 1.0}, "flag": {"wall": True, "cpu": 1.0}, "list": [1, 2], "pass 2": {"wall": 2, "cpu": 3}}
    assert phase_lines(phases) == ["pass 1 12.3 s (CPU 20.0 s)", "pass 2 2.0 s (CPU 3.0 s)"]
    assert phase_lines(["pass 1"]) == [] and phase_lines(None) == []


def test_a_dissection_records_its_phases(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = DissectSettings(quantile=0.3, batch_size=5, workers=0)
    dissect(write_model(tmp_path), ["0"], PlantedProbe(24), out, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            settings=settings, progress=False)
    phases = json.loads((out / "summary.json").read_text())["phases"]
    assert list(phases) == ["pass 1", "thresholds", "pass 2", "tables", "nulls"]
    assert all(spent["wall"] >= 0 and spent["cpu"] >= 0 for spent in phases.values())
    record = read_record(out)
    assert record.phases == phases
    assert sum(spent["wall"] for spent in phases.values()) <= record.seconds + 1.0  # inside the run's own time


def test_an_older_summary_without_phases_still_reads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = DissectSettings(quantile=0.3, batch_size=5, workers=0)
    dissect(write_model(tmp_path), ["0"], PlantedProbe(12), out, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            settings=settings, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    del summary["phases"]
    (out / "summary.json").write_text(json.dumps(summary))
    assert read_record(out).phases == {}
