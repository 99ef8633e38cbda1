"""Beam search for the formula that best explains a unit (Mu & Andreas 2020), scored by popcounts.

The beam starts from the best single concepts; each step extends every beam formula F with every
concept c under each op (``F AND c``, ``F OR c`` and, with ``not``, ``F AND NOT c``, ``F OR NOT c``)
and keeps the best ``beam`` formulas seen. Every candidate's IoU follows from two popcounts per
(F, c) — a = |F ∩ c| (dense, shared by every unit whose beam holds F) and b = |unit ∩ F ∩ c| (only
over the unit's few non-zero words) — plus counts known before the search:

  AND      |F'| = a                          |U ∩ F'| = b
  OR       |F'| = |F| + |c| - a              |U ∩ F'| = |U ∩ F| + |U ∩ c| - b
  AND NOT  |F'| = |F ∩ D_c| - a              |U ∩ F'| = |U ∩ F ∩ D_c| - b
  OR NOT   |F'| = |F| + |D_c| - |c| - (|F ∩ D_c| - a),  likewise for U

where D_c are the images where c's category is annotated. IoU(F') = |U ∩ F'| / (|U in D(F')| +
|F'| - |U ∩ F'|), D(F') the images where any of its categories is annotated. Ties go to the shorter
formula, then to the formula that prints first. A concept already in F is not added again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unitscope.errors import UsageError
from unitscope.explain.bank import ConceptBank, UnitMask
from unitscope.explain.bitmasks import popcount
from unitscope.explain.formulas import OPS, Formula, category_mask, chain, extend, length


@dataclass(frozen=True)
class Explanation:
    """A unit's best formula and its best single concept, with their IoUs."""

    formula: Formula
    iou: float
    single: Formula
    single_iou: float
    candidates: int  # formulas scored

    @property
    def gain(self) -> float:
        return self.iou - self.single_iou


@dataclass
class _State:
    """A beam formula with the counts its extensions need."""

    formula: Formula
    key: str
    iou: float
    bits: np.ndarray  # [N*W]
    size: int  # |F|
    inter: int  # |U ∩ F|
    domain: int  # category bit set
    in_domain: np.ndarray  # [C] |F ∩ D_c|
    unit_in_domain: np.ndarray  # [C] |U ∩ F ∩ D_c|


def _rank_key(iou: float, formula: Formula) -> tuple[float, int, str, str]:
    return (-iou, length(formula), str(formula), chain(formula))


MAX_LENGTH = 10  # concepts in a formula: Mu & Andreas's sweep of formula lengths goes to 10
MAX_BEAM = 64  # formulas kept per step


def check_search_size(length: int, beam: int) -> None:
    """Refuse a search that would not finish: per unit it scores about beam × (length - 1) × concepts × 4
    formulas and caches |F ∩ c| for each of its beam × (length - 1) formulas (timings: docs/beyond-the-paper.md)."""
    for option, value, most in (("--length", length, MAX_LENGTH), ("--beam", beam, MAX_BEAM)):
        if not 1 <= value <= most:
            raise UsageError(f"{option} {value} is outside 1-{most}; each unit's search scores about beam × "
                             f"(length - 1) × concepts × 4 formulas (default --length 3 --beam 5)")


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """The ops as a tuple, refusing unknown ones (``not`` alone adds nothing)."""
    ops = tuple(ops)
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown ops {unknown}; use some of {', '.join(OPS)}")
    return ops


class BeamSearch:
    """Searches formulas of up to ``max_length`` concepts over one bank; reused for every unit."""

    def __init__(self, bank: ConceptBank, max_length: int = 3, beam: int = 5,
                 ops: Sequence[str] = ("and", "or", "not")) -> None:
        if max_length < 1 or beam < 1:
            raise ValueError(f"length and beam must be positive, got {max_length} and {beam}")
        self.bank = bank
        self.max_length = max_length
        self.beam = beam
        self.ops = check_ops(ops)
        binary = [op for op in ("and", "or") if op in self.ops]
        self.moves: list[tuple[str, bool]] = [(op, False) for op in binary]
        if "not" in self.ops:
            self.moves += [(op, True) for op in binary]

    # ------------------------------------------------------------------ scoring
    def _iou(self, inter: np.ndarray, size: np.ndarray, area: np.ndarray) -> np.ndarray:
        union = area + size - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)

    def _areas(self, unit: UnitMask, domains: np.ndarray) -> np.ndarray:
        values, inverse = np.unique(domains, return_inverse=True)
        return np.array([unit.area(int(d), self.bank) for d in values], dtype=np.int64)[inverse]

    def singles(self, unit: UnitMask) -> tuple[np.ndarray, np.ndarray]:
        """IoU of every concept, and |U ∩ c| for every concept."""
        bank = self.bank
        unit_concept = popcount_gather(bank.flat, unit)
        domains = np.left_shift(1, bank.categories)
        return self._iou(unit_concept, bank.sizes, self._areas(unit, domains)), unit_concept

    def _state(self, formula: Formula, iou: float, unit: UnitMask) -> _State:
        bank = self.bank
        bits = bank.bits(formula)
        per_image = _per_image(bits, bank)
        unit_per_image = unit.overlap_per_image(bits)
        return _State(formula, chain(formula), iou, bits, int(per_image.sum()), int(unit_per_image.sum()),
                      category_mask(formula), per_image @ bank.annotated, unit_per_image @ bank.annotated)

    def extensions(self, state: _State, unit: UnitMask, unit_concept: np.ndarray) -> list[tuple[str, bool, np.ndarray]]:
        """(op, negated, IoU [K]) of ``state``'s formula extended by every concept."""
        bank = self.bank
        a = bank.overlaps(state.key, state.bits)
        b = popcount_gather(bank.flat, unit, state.bits)
        cat = bank.categories
        area = self._areas(unit, state.domain | np.left_shift(1, cat))
        f_dc, u_dc = state.in_domain[cat], state.unit_in_domain[cat]
        unit_dc = np.array([unit.area(1 << c, bank) for c in range(len(bank.category_names))], dtype=np.int64)[cat]
        out = []
        for op, negate in self.moves:
            if op == "and" and not negate:
                size, inter = a, b
            elif op == "or" and not negate:
                size, inter = state.size + bank.sizes - a, state.inter + unit_concept - b
            elif op == "and":
                size, inter = f_dc - a, u_dc - b
            else:
                size = state.size + bank.domain_pixels[cat] - bank.sizes - (f_dc - a)
                inter = state.inter + unit_dc - unit_concept - (u_dc - b)
            iou = self._iou(inter, size, area)
            used = [bank.row_of(leaf) for leaf in state.formula.leaves]
            iou[used] = -1.0
            out.append((op, negate, iou))
        return out

    # ------------------------------------------------------------------ search
    def _top(self, pool: Sequence[tuple[float, Formula]]) -> list[tuple[float, Formula]]:
        return sorted(pool, key=lambda item: _rank_key(*item))[: self.beam]

    def _best_of(self, ious: np.ndarray) -> list[tuple[float, int]]:
        """(IoU, index) of the candidates that can enter the beam: the ``beam`` best IoUs, with ties."""
        if ious.size == 0:
            return []
        keep = min(self.beam, ious.size)
        cutoff = np.partition(ious, ious.size - keep)[ious.size - keep]
        chosen = np.nonzero((ious >= cutoff) & (ious >= 0))[0]
        return [(float(ious[i]), int(i)) for i in chosen]

    def explain(self, unit: UnitMask) -> Explanation:
        """The best formula of up to ``max_length`` concepts for ``unit``."""
        bank = self.bank
        single_iou, unit_concept = self.singles(unit)
        leaves = [bank.leaf(k) for k in range(len(bank))]
        pool = self._top([(v, leaves[k]) for v, k in self._best_of(single_iou)])
        best_single = pool[0] if pool else (0.0, leaves[0])
        scored = len(bank)
        expanded: set[str] = set()
        for _ in range(self.max_length - 1):
            candidates: list[tuple[float, Formula]] = list(pool)
            for iou, formula in pool:
                key = chain(formula)  # label numbers: names may repeat across categories
                if key in expanded or length(formula) >= self.max_length:
                    continue
                expanded.add(key)
                state = self._state(formula, iou, unit)
                for op, negate, ious in self.extensions(state, unit, unit_concept):
                    scored += int((ious >= 0).sum())
                    candidates += [(v, extend(formula, op, leaves[k], negate)) for v, k in self._best_of(ious)]
            pool = self._top(candidates)
        best = pool[0] if pool else best_single
        return Explanation(best[1], best[0], best_single[1], best_single[0], scored)


def popcount_gather(flat: np.ndarray, unit: UnitMask, bits: np.ndarray | None = None) -> np.ndarray:
    """[K] |unit ∩ (bits) ∩ concept k|, reading only the unit's non-zero words."""
    words = unit.value if bits is None else unit.value & bits[unit.index]
    return popcount(flat[:, unit.index] & words[None, :])


def _per_image(bits: np.ndarray, bank: ConceptBank) -> np.ndarray:
    return popcount(bits.reshape(bank.num_images, bank.words_per_image))
