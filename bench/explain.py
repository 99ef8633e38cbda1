"""Bit-packed formula scoring against plain boolean arrays, on the same beam search, in one run.

Makes a SceneWorld dissection run of the scene net's conv5 (or takes ``--run``), rebuilds its unit
and concept masks, then explains a few units twice: with ``BeamSearch`` (bit-packed masks, two
popcounts per candidate, the unit's non-zero words only) and with ``boolean_beam`` (every candidate
formula evaluated on boolean [N, P] arrays). Both score the same candidates and must agree.
Run: .venv/bin/python bench/explain.py [--run RUN] [--units 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from unitscope.explain.bank import UnitMask
from unitscope.explain.bitmasks import unpack
from unitscope.explain.masks import compute_masks
from unitscope.explain.reference import BooleanProbe, boolean_beam
from unitscope.explain.search import BeamSearch
from unitscope.explain.source import read_run


def timed(func):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    value = func()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=None, help="a finished dissection run (default: make one)")
    parser.add_argument("--n", type=int, default=120, help="probe images of the run made here")
    parser.add_argument("--units", type=int, default=4, help="units explained by both methods")
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--beam", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        run = args.run
        if run is None:
            from unitscope import dissect

            run = Path(tmp) / "run"
            dissect("sceneworld-scene", ["conv5"], "sceneworld", run, n=args.n, report=False, progress=False)
        layer = read_run(run, "conv5")
        masks = compute_masks(layer, progress=False)
    bank = masks.bank
    search = BeamSearch(bank, args.length, args.beam)
    probe = BooleanProbe(tuple(bank.leaf(k) for k in range(len(bank))), unpack(bank.words, bank.pixels),
                         bank.annotated)
    units = [u for u in range(layer.units) if masks.offsets[u + 1] > masks.offsets[u]][: args.units]
    print(f"{layer.run_dir}: {bank.num_images} images, {bank.pixels} label pixels each, {len(bank)} concepts; "
          f"length {args.length}, beam {args.beam}; units {units}")
    packed_wall = packed_cpu = bool_wall = bool_cpu = 0.0
    scored = 0
    for unit in units:
        bits = masks.unit_bits(unit)
        found, wall, cpu = timed(lambda bits=bits: search.explain(UnitMask.from_bits(bits, bank)))  # type: ignore[misc]
        packed_wall, packed_cpu = packed_wall + wall, packed_cpu + cpu
        flat = np.zeros(bank.num_images * bank.words_per_image * 64, dtype=bool)
        flat[bits] = True
        unit_bool = flat.reshape(bank.num_images, -1)[:, : bank.pixels]
        (iou, formula, count), wall, cpu = timed(
            lambda u=unit_bool: boolean_beam(probe, u, args.length, args.beam, search.moves))  # type: ignore[misc]
        bool_wall, bool_cpu = bool_wall + wall, bool_cpu + cpu
        if (str(formula), iou) != (str(found.formula), found.iou) or count != found.candidates:
            raise SystemExit(f"unit {unit}: boolean {formula} {iou} ({count}) != packed {found.formula} "
                             f"{found.iou} ({found.candidates})")
        scored += count
        print(f"unit {unit:3d}: {found.formula}  IoU {found.iou:.4f} (single {found.single} {found.single_iou:.4f}), "
              f"{count} candidates")
    print(f"bit-packed: {packed_wall:.3f} s wall, {packed_cpu:.3f} s CPU, "
          f"{1e6 * packed_wall / scored:.2f} µs per candidate")
    print(f"boolean arrays: {bool_wall:.3f} s wall, {bool_cpu:.3f} s CPU, "
          f"{1e6 * bool_wall / scored:.1f} µs per candidate")
    print(f"CPU-time ratio: {bool_cpu / packed_cpu:.1f}")
    print(f"speedup: {bool_wall / packed_wall:.1f}")


if __name__ == "__main__":
    main()
