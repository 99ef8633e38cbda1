"""Why the CPU statistics select through numpy (``stats/_select.py``): torch vs numpy on one pass-1 batch.

    python bench/selection.py [--reps 50]

On a batch of AlexNet conv5 at 224 px (32 images, 256 units of 13x13, ReLU'd normal values, ~2 % above the
threshold): each selection step the statistics take, in torch at one thread and through ``_select``, with the
ratio; and a check that both give the same values. Also torch's max-with-indices and aminmax beside the
amax/amin pass 1 and pass 2 use instead.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import torch

from unitscope.stats._select import flat_nonzero, greater, masked, row_counts, take_rows


def per_call_ms(work: Callable[[], object], reps: int) -> float:
    return min(timeit.repeat(work, number=reps, repeat=3)) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(32, 256, 13, 13, generator=generator).relu()
    values = maps.transpose(0, 1).reshape(256, -1).contiguous()  # [U, B*h*w], as TopQuantile.update sees it
    floor = torch.full((256, 1), 2.0)
    above = values > floor
    table = torch.randint(-1, 167, (32 * 12544, 4), dtype=torch.int32, generator=generator)  # label table rows
    rows = torch.randint(0, len(table), (190_000,), generator=generator)  # one per on pixel
    flat = maps.flatten(2)
    cases: list[tuple[str, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]] = [
        ("values > floor", lambda: values > floor, lambda: greater(values, floor)),
        ("values[mask]", lambda: values[above], lambda: masked(values, above)),
        ("nonzero(mask)", lambda: torch.nonzero(above.view(-1))[:, 0], lambda: flat_nonzero(above)),
        ("mask.sum(dim=1)", lambda: above.sum(dim=1), lambda: row_counts(above)),
        ("table.index_select", lambda: table.index_select(0, rows), lambda: take_rows(table, rows)),
    ]
    print(f"{'step':<22}{'torch ms':>10}{'ours ms':>10}{'ratio':>8}  same")
    for name, theirs, ours in cases:
        same = torch.equal(theirs(), ours())
        t, o = per_call_ms(theirs, args.reps), per_call_ms(ours, args.reps)
        print(f"{name:<22}{t:>10.3f}{o:>10.3f}{t / o:>8.1f}  {same}")
    pairs = [("max(dim) -> amax", lambda: flat.max(dim=2).values, lambda: flat.amax(dim=2)),
             ("aminmax -> amin, amax", lambda: torch.aminmax(flat, dim=2).min,
              lambda: (flat.amin(dim=2), flat.amax(dim=2))[0])]
    for name, theirs, ours in pairs:
        same = torch.equal(theirs(), ours())
        t, o = per_call_ms(theirs, args.reps), per_call_ms(ours, args.reps)
        print(f"{name:<22}{t:>10.3f}{o:>10.3f}{t / o:>8.1f}  {same}")

if __name__ == "__main__":
    main()
