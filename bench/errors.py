"""Every error that needs no model, timed as a user meets it: ``python -m unitscope …`` from process start to
exit (issue #25: each ≤ 0.5 s wall). Prints wall and CPU seconds per case and whether it is within the target;
exits 1 when a case does not fail with one line and status 2.
Run: .venv/bin/python bench/errors.py   (makes one tiny dissection first, for the cases that need a run)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def cases() -> list[tuple[str, list[str]]]:
    """(name, arguments) of each error, run in a folder holding ``run`` (finished) and ``full`` (not empty)."""
    net = ["--model", "resnet18"]
    return [
        ("dissect: missing --data", ["dissect", *net, "--data", "nope", "--layer", "layer4", "--out", "x"]),
        ("dissect: missing --weights", ["dissect", *net, "--weights", "nope.pth", "--layer", "layer4", "--out", "x"]),
        ("dissect: unknown model", ["dissect", "--model", "resnet19", "--layer", "layer4", "--out", "x"]),
        ("dissect: unknown layer", ["dissect", *net, "--layer", "layer5", "--out", "x"]),
        ("dissect: unknown layer (built-in)", ["dissect", "--model", "sceneworld-scene", "--layer", "conv9",
                                               "--out", "x"]),
        ("dissect: --out not a run", ["dissect", *net, "--layer", "layer4", "--out", "full"]),
        ("dissect: different finished run", ["dissect", "--model", "sceneworld-scene", "--layer", "conv1", "--n", "8",
                                             "--bootstrap", "0", "--no-report", "--workers", "0", "--quantile", "0.01",
                                             "--out", "run"]),
        ("dissect: --quantile 2", ["dissect", *net, "--layer", "layer4", "--quantile", "2", "--out", "x"]),
        ("dissect: --num-classes 0", ["dissect", *net, "--layer", "layer4", "--num-classes", "0", "--out", "x"]),
        ("cam: existing --out", ["cam", *net, "--data", "sceneworld", "--out", "full"]),
        ("cam: missing --data", ["cam", *net, "--data", "nope", "--out", "x"]),
        ("cam: missing --image", ["cam", *net, "--image", "nope.png", "--out", "x"]),
        ("cam: unknown layer", ["cam", *net, "--layer", "layer5", "--data", "sceneworld", "--out", "x"]),
        ("cam: --top-fraction 0", ["cam", *net, "--top-fraction", "0", "--data", "sceneworld", "--out", "x"]),
        ("segment: missing --run", ["segment", *net, "--run", "nope", "--data", "sceneworld", "--out", "x"]),
        ("segment: existing --out", ["segment", *net, "--run", "run", "--data", "sceneworld", "--out", "full"]),
        ("segment: unknown layer", ["segment", *net, "--run", "run", "--layer", "conv9", "--data", "sceneworld",
                                    "--out", "x"]),
        ("compare: missing run", ["compare", "run", "nope", "--out", "x"]),
        ("compare: existing --out", ["compare", "run", "run", "--out", "full"]),
        ("minimal: existing --out", ["minimal", "--model", "sceneworld-scene", "--data", "sceneworld",
                                     "--out", "full"]),
        ("minimal: missing --data", ["minimal", "--model", "sceneworld-scene", "--data", "nope", "--out", "x"]),
        ("explain: unknown layer", ["explain", "--run", "run", "--layer", "conv9", "--out", "x"]),
        ("explain: existing --out", ["explain", "--run", "run", "--layer", "conv1", "--out", "full"]),
        ("explain: --holdout 1", ["explain", "--run", "run", "--layer", "conv1", "--holdout", "1", "--out", "x"]),
        ("ablate: unknown layer", ["ablate", "--model", "sceneworld-scene", "--layer", "conv9", "--units", "1",
                                   "--out", "x"]),
        ("ablate: missing --run", ["ablate", "--model", "sceneworld-scene", "--layer", "conv5", "--run", "nope",
                                   "--out", "x"]),
        ("ablate: existing --out", ["ablate", "--model", "sceneworld-scene", "--layer", "conv5", "--units", "1",
                                    "--out", "full"]),
        ("report: missing run", ["report", "nope"]),
        ("report: --units 0", ["report", "run", "--units", "0"]),
        ("rf: unknown layer", ["rf", "--model", "alexnet", "--layer", "conv9"]),
        ("evaluate: unknown model", ["evaluate", "--model", "resnet19"]),
        ("evaluate: missing --data", ["evaluate", "--model", "sceneworld-scene", "--data", "nope"]),
        ("layers: unknown model", ["layers", "--model", "vgg17"]),
    ]


def timed(args: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU (user + system) seconds of one ``python -m unitscope ARGS``, and what it returned."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "unitscope", *args], capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="unitscope-errors-") as tmp:
        root = Path(tmp)
        (root / "full").mkdir()
        (root / "full" / "note.txt").write_text("not a run")
        tiny = ["dissect", "--model", "sceneworld-scene", "--layer", "conv1", "--n", "8", "--bootstrap", "0",
                "--no-report", "--workers", "0", "--out", "run"]
        made = subprocess.run([sys.executable, "-m", "unitscope", *tiny], capture_output=True, text=True, cwd=root)
        if made.returncode:
            print(made.stderr)
            return 1
        wall, cpu, _ = timed(["--version"], root)
        print(f"{'python -m unitscope --version (start-up floor)':<40}{wall:>7.2f} s wall{cpu:>7.2f} s CPU")
        timed_import = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import torch; "
                                       "print(time.perf_counter() - t)"], capture_output=True, text=True)
        print(f"{'import torch alone (for comparison)':<40}{float(timed_import.stdout):>7.2f} s wall")
        failures = 0
        print(f"{'case':<40}{'wall':>7}  {'CPU':>7}  ≤ {TARGET_S} s  message")
        for name, args in cases():
            wall, cpu, done = timed(args, root)
            lines = done.stderr.splitlines()
            ok = done.returncode == 2 and len(lines) == 1 and lines[0].startswith("unitscope: error: ")
            failures += not ok or wall > TARGET_S
            message = lines[0].removeprefix("unitscope: error: ")[:70] if ok else f"UNEXPECTED: {done.stderr[-200:]!r}"
            print(f"{name:<40}{wall:>7.2f}  {cpu:>7.2f}  {'yes' if wall <= TARGET_S else 'NO':>7}  {message}")
        print(f"{len(cases()) - failures} of {len(cases())} cases within {TARGET_S} s wall")
        return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
