"""Run the ``unitscope`` CLI in-process and capture what a user would see."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from unitscope.cli.main import main

PROGRESS = re.compile(r"\d+%\|.*\|")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``unitscope ARGS``: exit code, stdout and stderr."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def assert_usage_error(result: CliResult, fragment: str) -> None:
    """One line on stderr containing ``fragment``, exit status 2, no traceback."""
    assert result.code == 2, result
    # Progress bars redraw with carriage returns and are erased on error; what remains is the message.
    lines = [line for line in result.err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1 and fragment in lines[0], result.err
    assert "Traceback" not in result.err


def assert_iou_at_most_one(result: object) -> None:
    """No IoU of any unit and concept in a dissection result exceeds 1 (the counting rule guarantees it)."""
    import numpy as np

    for name, layer in result.layers.items():  # type: ignore[attr-defined]
        if layer.iou is not None:
            assert float(np.max(layer.iou, initial=0.0)) <= 1.0 + 1e-9, f"layer {name}: IoU above 1"
        assert (layer.units["iou"].fillna(0) <= 1.0 + 1e-9).all(), f"layer {name}: units.csv IoU above 1"


@contextlib.contextmanager
def lock_held_elsewhere(out: Path) -> Iterator[int]:
    """Another process holding the one-writer lock of ``out`` (``staging.lock_output``) until the block ends."""
    code = ("import sys; from pathlib import Path; from unitscope.staging import lock_output\n"
            "with lock_output(Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.communicate(timeout=30)  # closes its stdin: it releases the lock and exits
