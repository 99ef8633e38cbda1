"""Time ConceptOverlap.update at Broden scale against a naive per-unit, per-label Python loop.

Broden-like batch: U=256 units, B=32 images, 112x112 label maps, 1200 concepts with ~15 present per
image (14 in the object map, one scene label). The naive loop runs on a slice (few units, two
images) and is scaled to the full batch by its time per (image, unit, label) triple.
Run: .venv/bin/python bench/stats.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.stats import ConceptOverlap, LabelBatch, TopQuantile
from unitscope.stats.iou import count_overlaps

UNITS, BATCH, SIDE, LABELS, PIXEL_LABELS_PER_IMAGE = 256, 32, 112, 1200, 14
NAIVE_UNITS, NAIVE_IMAGES = 16, 2


def concept_table() -> ConceptTable:
    """1200 concepts: 1100 objects and 100 scenes."""
    concepts = tuple(Concept(n, f"c{n}", "object" if n <= 1100 else "scene") for n in range(1, LABELS + 1))
    return ConceptTable(concepts, ("object", "scene"))


def samples(rng: np.random.Generator) -> list[ProbeSample]:
    """Images whose object map is a coarse random mosaic of 14 objects, plus one scene label."""
    image = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    out = []
    for i in range(BATCH):
        present = rng.choice(np.arange(1, 1101), size=PIXEL_LABELS_PER_IMAGE, replace=False)
        blocks = rng.choice(present, size=(SIDE // 16, SIDE // 16))
        object_map = np.kron(blocks, np.ones((16, 16), dtype=np.int64)).astype(np.int32)
        scene = (int(rng.integers(1101, LABELS + 1)),)
        out.append(ProbeSample(i, image, pixel_labels={"object": object_map[None]}, image_labels={"scene": scene}))
    return out


def best_of(repeats: int, run: object) -> float:
    """The fastest of several timed calls of ``run``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def naive_update(masks: torch.Tensor, batch: list[ProbeSample], inter: np.ndarray) -> int:
    """Per image, per unit, per present label: count the overlap; returns the triples counted."""
    triples = 0
    for b, sample in enumerate(batch):
        object_map = sample.pixel_labels["object"][0]
        labels = [int(n) for n in np.unique(object_map) if n > 0]
        for u in range(masks.shape[1]):
            unit = masks[b, u].numpy()
            for label in labels:
                inter[u, label] += int((unit & (object_map == label)).sum())
                triples += 1
    return triples


def bench_quantile() -> None:
    """Steady-state TopQuantile.update time: 256 units, batches of 32 images at 14x14, q = 0.005."""
    units, per_batch, batches = 256, 32 * 14 * 14, 60
    generator = torch.Generator().manual_seed(0)
    stat = TopQuantile(units, 0.005, per_batch * batches)
    spent = []
    for _ in range(batches):
        values = torch.randn(units, per_batch, generator=generator).relu_()
        start = time.perf_counter()
        stat.update(values)
        spent.append(time.perf_counter() - start)
    start = time.perf_counter()
    stat.thresholds()
    final = time.perf_counter() - start
    steady = sum(spent[batches // 2 :]) / (batches - batches // 2)
    print(
        f"TopQuantile.update U={units}, {per_batch} values per unit per batch, keep={stat.keep}: "
        f"first batch {spent[0] * 1e3:.1f} ms, steady state {steady * 1e3:.1f} ms per batch; "
        f"thresholds() {final * 1e3:.1f} ms"
    )


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    table = concept_table()
    batch = samples(rng)
    masks = torch.from_numpy(rng.random((BATCH, UNITS, SIDE, SIDE)) < 0.02)

    encode = best_of(3, lambda: LabelBatch.from_samples(batch, table, (SIDE, SIDE)))
    labels = LabelBatch.from_samples(batch, table, (SIDE, SIDE))
    overlap = ConceptOverlap(UNITS, table)
    fast = best_of(3, lambda: overlap.update(masks, labels))
    present = len(labels.pixel_numbers) + len(labels.image_numbers)
    print(
        f"ConceptOverlap.update U={UNITS} B={BATCH} {SIDE}x{SIDE} L={LABELS}: {fast * 1e3:.1f} ms per batch "
        f"({present / BATCH:.1f} labels present per image; 1 CPU thread)"
    )
    print(f"LabelBatch.from_samples (once per batch, shared by all layers): {encode * 1e3:.1f} ms")

    flat = masks.reshape(BATCH, UNITS, SIDE * SIDE)
    float_path = best_of(3, lambda: [count_overlaps(flat[b], r, integer=False) for b, r in enumerate(labels.regions)])
    print(f"the same products on the float32 path (the one used on CUDA) take here: {float_path * 1e3:.1f} ms")

    slice_masks, slice_batch = masks[:NAIVE_IMAGES, :NAIVE_UNITS], batch[:NAIVE_IMAGES]
    inter = np.zeros((NAIVE_UNITS, LABELS + 1), dtype=np.int64)
    triples = naive_update(slice_masks, slice_batch, inter)
    naive = best_of(3, lambda: naive_update(slice_masks, slice_batch, np.zeros_like(inter)))
    per_triple = naive / triples
    full_triples = UNITS * present
    naive_full = per_triple * full_triples
    print(
        f"naive loop: {triples} (image, unit, label) triples in {naive * 1e3:.1f} ms "
        f"= {per_triple * 1e6:.1f} us each; full batch ~{full_triples} triples ~{naive_full:.2f} s"
    )
    print(f"speed-up of ConceptOverlap.update over the naive loop: {naive_full / fast:.0f}x")

    check = ConceptOverlap(NAIVE_UNITS, table)
    check.update(
        masks[:NAIVE_IMAGES, :NAIVE_UNITS].contiguous(),
        LabelBatch.from_samples(batch[:NAIVE_IMAGES], table, (SIDE, SIDE)),
    )
    object_columns = torch.arange(1, 1101)
    if not np.array_equal(check.intersection[:, object_columns].numpy(), inter[:, 1:1101]):
        raise SystemExit("ConceptOverlap disagrees with the naive loop")
    print("slice check: ConceptOverlap intersection equals the naive loop's")
    bench_quantile()


if __name__ == "__main__":
    main()
