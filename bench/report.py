"""The report's cost: drawn from the top maps pass 1 stored vs rerunning the network, image-encoding threads on and off.

Setup (not timed, as in ``bench/end_to_end.py``): a Broden-format SceneWorld export (``--n`` images, 224 px)
and a seeded random-weight torchvision checkpoint; one ``unitscope dissect --no-report`` run. A copy of that
run without ``top_maps.npy`` (and without the record's pointer to it) stands for a run made before the maps
were stored, so its report reruns the network on the top images. Then, interleaved, ``--reps`` times each,
every command its own process rendering ``report.html`` and a page per unit (all units, every top image):

- ``stored``: the run as written (default encoding threads);
- ``stored, 0 threads``: the same, image files encoded in the main thread;
- ``forward``: the copy without stored maps.

CPU seconds are user + sys of the process tree, wall seconds beside them, peak RSS of the process; medians.
Last line: ``ratio: X.XX`` = CPU of ``forward`` / CPU of ``stored``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from end_to_end import _median, setup, timed

KINDS = ("stored", "stored, 0 threads", "forward")
LAYERS = {"alexnet": "conv5", "resnet18": "layer4"}


def run_report(run: str, out: str, threads: str) -> None:
    """Child mode: render the report of ``run`` into ``out`` (``threads``: encoding threads, or "auto")."""
    from end_to_end import _record_rss

    from unitscope.dissection.result import DissectionResult
    from unitscope.report.dissection import ReportOptions
    from unitscope.report.run_report import render_report

    try:
        options = ReportOptions(image_threads=None if threads == "auto" else int(threads))
        render_report(DissectionResult.load(run), options, out=Path(out))
    finally:
        _record_rss()


def without_maps(run: Path, copy: Path) -> None:
    """A copy of ``run`` as an older unitscope wrote it: no stored top maps."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    for layer in summary["layers"]:
        (copy / layer["directory"] / "top_maps.npy").unlink(missing_ok=True)
        layer.pop("top_maps", None)
    (copy / "summary.json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images in the Broden export")
    parser.add_argument("--model", choices=sorted(LAYERS), default="resnet18")
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every command (interleaved)")
    parser.add_argument("--work", type=Path, default=None, help="keep the export, checkpoint and run here")
    args = parser.parse_args()
    env = dict(os.environ)
    work = args.work or Path(tempfile.mkdtemp(prefix="unitscope-report-"))
    work.mkdir(parents=True, exist_ok=True)
    data, weights = setup(work, args.n, env)
    run = work / f"run-{args.model}-{args.n}"
    me = [sys.executable, str(Path(__file__).with_name("end_to_end.py"))]
    if not (run / "summary.json").is_file():
        dissected = timed([*me, "--child-cli", "dissect", "--model", args.model, "--weights", str(weights[args.model]),
                           "--layer", LAYERS[args.model], "--data", str(data), "--out", str(run), "--no-report",
                           "--overwrite"], env)
        print(f"dissect (no report): wall {dissected['wall']:.2f} s  cpu {dissected['cpu']:.2f} s  "
              f"rss {dissected['rss']:.0f} MB", flush=True)
    older = work / f"run-{args.model}-{args.n}-older"
    without_maps(run, older)
    child = [sys.executable, __file__, "--child-report"]
    raw: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for rep in range(args.reps):
        for kind in KINDS:
            out = work / "report-out"
            shutil.rmtree(out, ignore_errors=True)
            source = older if kind == "forward" else run
            raw[kind].append(timed([*child, str(source), str(out), "0" if "0 threads" in kind else "auto"], env))
            m = raw[kind][-1]
            print(f"rep {rep + 1} {kind:<18} wall {m['wall']:6.2f} s  cpu {m['cpu']:6.2f} s  rss {m['rss']:6.0f} MB",
                  flush=True)
    print(f"\n{args.model} {LAYERS[args.model]}, {args.n} images, every unit and top image; medians of {args.reps}")
    print(f"{'report from':<20}{'wall s':>8}{'CPU s':>8}{'RSS MB':>8}")
    for kind in KINDS:
        ms = raw[kind]
        print(f"{kind:<20}{_median([m['wall'] for m in ms]):8.2f}{_median([m['cpu'] for m in ms]):8.2f}"
              f"{max(m['rss'] for m in ms):8.0f}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ratio: {_median([m['cpu'] for m in raw['forward']]) / _median([m['cpu'] for m in raw['stored']]):.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-report":
        run_report(*sys.argv[2:5])
    else:
        main()
