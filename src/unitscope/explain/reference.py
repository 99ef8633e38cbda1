"""The straightforward way: formulas evaluated on plain boolean arrays, and exhaustive search.

Slow, obviously right, and independent of the bit-packed counting algebra in ``search``: the
oracle for the tests and the baseline of ``bench/explain.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from unitscope.explain.formulas import Formula, Leaf, category_mask, chain, evaluate, extend, length


@dataclass(frozen=True)
class BooleanProbe:
    """Concept masks bool [K, N, P] (row k = ``leaves[k]``) and annotated categories bool [N, C]."""

    leaves: tuple[Leaf, ...]
    masks: np.ndarray
    annotated: np.ndarray

    def concept(self, leaf: Leaf) -> np.ndarray:
        return np.asarray(self.masks[self.leaves.index(leaf)], dtype=bool)

    def category_images(self, category: int) -> np.ndarray:
        return np.broadcast_to(self.annotated[:, category, None], self.masks.shape[1:])

    def domain(self, formula: Formula) -> np.ndarray:
        """bool [N, P]: pixels of the images where one of the formula's categories is annotated."""
        bits = category_mask(formula)
        cats = [c for c in range(self.annotated.shape[1]) if bits >> c & 1]
        images = np.asarray(self.annotated[:, cats].any(axis=1), dtype=bool)
        return np.broadcast_to(images[:, None], self.masks.shape[1:])

    def mask(self, formula: Formula) -> np.ndarray:
        return evaluate(formula, self.concept, lambda leaf: self.category_images(leaf.category))

    def iou(self, formula: Formula, unit: np.ndarray) -> float:
        """IoU of a unit's bool [N, P] mask with the formula, counting the unit only in the formula's domain."""
        mask = self.mask(formula)
        inter = int((unit & mask).sum())
        union = int((unit & self.domain(formula)).sum()) + int(mask.sum()) - inter
        return inter / union if union > 0 else 0.0


def all_formulas(leaves: Sequence[Leaf], max_length: int, moves: Sequence[tuple[str, bool]]) -> Iterator[Formula]:
    """Every formula of up to ``max_length`` distinct concepts that the beam's grammar can build."""
    for size in range(1, max_length + 1):
        for chosen in permutations(leaves, size):
            yield from _grow(chosen[0], chosen[1:], moves)


def _grow(formula: Formula, rest: Sequence[Leaf], moves: Sequence[tuple[str, bool]]) -> Iterator[Formula]:
    if not rest:
        yield formula
        return
    for op, negate in moves:
        yield from _grow(extend(formula, op, rest[0], negate), rest[1:], moves)


def exhaustive(probe: BooleanProbe, unit: np.ndarray, max_length: int,
               moves: Sequence[tuple[str, bool]]) -> tuple[float, Formula]:
    """The best formula by IoU over all formulas (ties: shorter, then the one that prints first)."""
    best: tuple[tuple[float, int, str, str], float, Formula] | None = None
    for formula in all_formulas(probe.leaves, max_length, moves):
        iou = probe.iou(formula, unit)
        key = (-iou, length(formula), str(formula), chain(formula))
        if best is None or key < best[0]:
            best = (key, iou, formula)
    if best is None:
        raise ValueError("no concepts to search")
    return best[1], best[2]


def boolean_beam(probe: BooleanProbe, unit: np.ndarray, max_length: int, beam: int,
                 moves: Sequence[tuple[str, bool]]) -> tuple[float, Formula, int]:
    """The beam search of ``search.BeamSearch`` with every candidate evaluated on boolean arrays.

    Same seeds, moves, distinct concepts and tie-breaking, so the same result; returns
    (IoU, formula, candidates scored).
    """
    def top(pool: list[tuple[float, Formula]]) -> list[tuple[float, Formula]]:
        return sorted(pool, key=lambda item: (-item[0], length(item[1]), str(item[1]), chain(item[1])))[:beam]

    pool = top([(probe.iou(leaf, unit), leaf) for leaf in probe.leaves])
    scored = len(probe.leaves)
    expanded: set[str] = set()
    for _ in range(max_length - 1):
        candidates = list(pool)
        for _, formula in pool:
            if chain(formula) in expanded or length(formula) >= max_length:
                continue
            expanded.add(chain(formula))
            for leaf in probe.leaves:
                if leaf in formula.leaves:
                    continue
                for op, negate in moves:
                    extended = extend(formula, op, leaf, negate)
                    candidates.append((probe.iou(extended, unit), extended))
                    scored += 1
        pool = top(candidates)
    return pool[0][0], pool[0][1], scored
