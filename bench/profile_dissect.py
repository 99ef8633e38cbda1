"""Where the CPU time of one ``unitscope dissect`` goes: cProfile (CPU clock) of the CLI in one process.

Usage: ``python bench/profile_dissect.py [--save FILE.prof] -- dissect --model alexnet --layer conv5 --data DIR
--out RUN --workers 0`` (``--workers 0`` keeps decoding in the profiled process). Prints CPU seconds per phase:
start-up (imports), model loading, image decoding, label PNG decoding, label encoding, forward passes (pass 1
and report), quantile, top-k, activation cache, the whole IoU pass (pass 2), the whole report, and the total.
Phases nest (the IoU pass includes whatever decoding it does), so they do not add up to the total.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

PHASES: tuple[tuple[str, str, str], ...] = (
    ("start-up imports", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("model loading", "models/loading.py", "load_model"),
    ("decode images", "data/image_folder.py", "read_rgb"),
    ("decode label PNGs", "data/broden.py", "_label_stack"),
    ("encode labels", "stats/labels.py", "from_samples|encode"),
    ("forward (all)", "unitscope/capture.py", "run"),
    ("quantile", "stats/quantile.py", "update"),
    ("top-k", "stats/topk.py", "update"),
    ("activation cache", "dissection/cache.py", "write"),
    ("label cache (write, read)", "dissection/label_cache.py", "write|read"),
    ("masks (WindowedMasks)", "dissection/sparse_masks.py", "pixels"),
    ("IoU counts", "stats/iou.py", "update_active|update_counts|build"),
    ("significance+bootstrap", "stats/evidence.py", "update"),
    ("confidence (after the run)", "dissection/confidence.py", "layer_confidence"),
    ("pass 1 (whole)", "dissection/engine.py", "_pass_one"),
    ("IoU pass 2 (whole)", "dissection/engine.py", "_pass_two"),
    ("report (whole)", "report/dissection.py", "write_dissection_report"),
)


def phase_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative CPU seconds of each phase's function (the outermost call: recursion counted once)."""
    table = stats.stats  # type: ignore[attr-defined]
    out = {}
    for label, file_part, func in PHASES:
        total = 0.0
        for (filename, _, name), (_, _, _, cumulative, _) in table.items():
            if name in func.split("|") and file_part in filename:
                total = max(total, cumulative) if func == "_find_and_load" else total + cumulative
        out[label] = total
    return out


def main() -> None:
    argv = sys.argv[1:]
    save = None
    if len(argv) > 1 and argv[0] == "--save":  # keep the raw profile for pstats
        save, argv = argv[1], argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    from unitscope.cli.main import main as cli

    profile = cProfile.Profile(time.process_time)
    started = time.process_time()
    profile.enable()
    try:
        cli(argv)
    finally:
        profile.disable()
    total = time.process_time() - started
    stats = pstats.Stats(profile)
    if save is not None:
        stats.dump_stats(save)
    print(f"\n{'phase':<28}{'CPU s':>8}")
    for label, seconds in phase_seconds(stats).items():
        print(f"{label:<28}{seconds:8.2f}")
    print(f"{'total (this process)':<28}{total:8.2f}")


if __name__ == "__main__":
    main()
