"""Compositional explanations: the bit-packed beam search against plain boolean arrays."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.explain.bank import ConceptBank, UnitMask
from unitscope.explain.bitmasks import pack, popcount, sparse_words, unpack
from unitscope.explain.formulas import Binary, Leaf, Not
from unitscope.explain.reference import BooleanProbe, all_formulas, exhaustive
from unitscope.explain.search import BeamSearch

CATEGORIES = ("object", "color")
ALL_MOVES = [("and", False), ("or", False), ("and", True), ("or", True)]


def tiny_probe(seed: int, concepts: int = 5, images: int = 6, pixels: int = 70) -> BooleanProbe:
    """Random blobs of concepts in two categories; the colour category is not annotated in image 0."""
    rng = np.random.default_rng(seed)
    leaves = tuple(Leaf(10 + k, f"c{k}", k % 2) for k in range(concepts))
    masks = rng.random((concepts, images, pixels)) < rng.uniform(0.05, 0.5, size=(concepts, 1, 1))
    annotated = np.ones((images, 2), dtype=bool)
    annotated[0, 1] = False
    masks[1::2, 0] = False  # a colour concept has no pixels where colour is not annotated
    return BooleanProbe(leaves, masks, annotated)


def bank_of(probe: BooleanProbe) -> ConceptBank:
    return ConceptBank.from_masks(probe.leaves, probe.masks, probe.annotated, CATEGORIES)


def test_packing_round_trip_and_popcount() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 4, 70)) < 0.3  # 70 pixels: two words per image, 58 padding bits
    words = pack(masks)
    assert words.shape == (3, 4, 2) and words.dtype == np.uint64
    np.testing.assert_array_equal(unpack(words, 70), masks)
    np.testing.assert_array_equal(popcount(words.reshape(3, -1)), masks.reshape(3, -1).sum(axis=1))
    index, value = sparse_words(np.array([3, 64, 65, 200]), 4)
    np.testing.assert_array_equal(index, [0, 1, 3])
    np.testing.assert_array_equal(value, np.array([8, 3, 1 << 8], dtype=np.uint64))


def test_lookup_table_popcount_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    words = np.array([[0, 1, 2**64 - 1, 2**63 + 5]], dtype=np.uint64)
    expected = popcount(words)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    np.testing.assert_array_equal(popcount(words), expected)
    assert int(popcount(words)[0]) == 0 + 1 + 64 + 3


def test_printing() -> None:
    water, river, blue = Leaf(1, "water", 0), Leaf(2, "river", 0), Leaf(3, "blue", 1)
    formula = Binary("and", Binary("or", water, river), Not(blue))
    assert str(formula) == "(water OR river) AND NOT blue"
    assert str(Binary("or", Binary("or", water, river), blue)) == "water OR river OR blue"


@pytest.mark.parametrize("seed", range(4))
def test_bit_packed_iou_equals_boolean_iou(seed: int) -> None:
    probe = tiny_probe(seed)
    bank = bank_of(probe)
    unit = np.random.default_rng(100 + seed).random(probe.masks.shape[1:]) < 0.2
    search = BeamSearch(bank, 3, beam=10_000, ops=("and", "or", "not"))
    mask = UnitMask.from_bool(unit, bank)
    singles, unit_concept = search.singles(mask)
    for k, leaf in enumerate(probe.leaves):
        assert singles[k] == probe.iou(leaf, unit)
    for formula in list(all_formulas(probe.leaves, 2, ALL_MOVES))[:40]:
        state = search._state(formula, 0.0, mask)
        assert state.size == int(probe.mask(formula).sum())
        for op, negate, ious in search.extensions(state, mask, unit_concept):
            for k, leaf in enumerate(probe.leaves):
                if leaf in formula.leaves:
                    continue
                extended = Binary(op, formula, Not(leaf) if negate else leaf)
                assert ious[k] == pytest.approx(probe.iou(extended, unit), abs=1e-15), str(extended)


@pytest.mark.parametrize("seed", range(6))
def test_beam_equals_exhaustive_up_to_length_two(seed: int) -> None:
    probe = tiny_probe(seed, concepts=6)
    unit = np.random.default_rng(200 + seed).random(probe.masks.shape[1:]) < 0.15
    # A beam as wide as the concept list holds every seed, so length 2 is searched exhaustively.
    found = BeamSearch(bank_of(probe), 2, beam=6).explain(UnitMask.from_bool(unit, bank_of(probe)))
    iou, formula = exhaustive(probe, unit, 2, ALL_MOVES)
    assert (found.iou, str(found.formula)) == (iou, str(formula))
    assert found.single_iou == max(probe.iou(leaf, unit) for leaf in probe.leaves)


@pytest.mark.parametrize("seed", range(3))
def test_beam_equals_exhaustive_up_to_length_three(seed: int) -> None:
    probe = tiny_probe(seed, concepts=4)
    unit = np.random.default_rng(300 + seed).random(probe.masks.shape[1:]) < 0.2
    # 4 singles + 4*3*4 pairs fit in the beam: every length-3 formula gets scored.
    found = BeamSearch(bank_of(probe), 3, beam=60).explain(UnitMask.from_bool(unit, bank_of(probe)))
    iou, formula = exhaustive(probe, unit, 3, ALL_MOVES)
    assert (found.iou, str(found.formula)) == (iou, str(formula))


def test_narrow_beam_never_beats_exhaustive() -> None:
    probe = tiny_probe(7, concepts=6)
    unit = np.random.default_rng(7).random(probe.masks.shape[1:]) < 0.15
    found = BeamSearch(bank_of(probe), 3, beam=2).explain(UnitMask.from_bool(unit, bank_of(probe)))
    assert found.iou == pytest.approx(probe.iou(found.formula, unit))
    assert found.iou <= exhaustive(probe, unit, 3, ALL_MOVES)[0]
    assert found.iou >= found.single_iou


def test_planted_or_and_and_not() -> None:
    probe = tiny_probe(11, concepts=6)
    a, b = probe.leaves[0], probe.leaves[2]
    bank = bank_of(probe)
    search = BeamSearch(bank, 3, beam=5)
    planted_or = probe.concept(a) | probe.concept(b)
    found = search.explain(UnitMask.from_bool(planted_or, bank))
    assert (str(found.formula), found.iou) == ("c0 OR c2", 1.0)
    assert found.single_iou < 1.0 and found.gain > 0
    planted_not = probe.concept(a) & ~probe.concept(b)
    found = search.explain(UnitMask.from_bool(planted_not, bank))
    assert (str(found.formula), found.iou) == ("c0 AND NOT c2", 1.0)


def test_without_not_no_negations() -> None:
    probe = tiny_probe(11, concepts=6)
    bank = bank_of(probe)
    planted_not = probe.concept(probe.leaves[0]) & ~probe.concept(probe.leaves[2])
    found = BeamSearch(bank, 3, beam=5, ops=("and", "or")).explain(UnitMask.from_bool(planted_not, bank))
    assert "NOT" not in str(found.formula) and found.iou < 1.0


def test_chain_round_trip() -> None:
    probe = tiny_probe(3, concepts=4)
    leaves = {leaf.number: leaf for leaf in probe.leaves}
    from unitscope.explain.formulas import chain, from_chain

    for formula in all_formulas(probe.leaves, 3, ALL_MOVES):
        assert from_chain(chain(formula), leaves.__getitem__) == formula


def test_names_shared_across_categories_are_qualified() -> None:
    probe = tiny_probe(1, concepts=3)
    leaves = (Leaf(1, "door", 0), Leaf(2, "door", 1), Leaf(3, "red", 1))
    bank = ConceptBank.from_masks(leaves, probe.masks, probe.annotated, CATEGORIES)
    assert [bank.leaf(k).name for k in range(3)] == ["door(object)", "door(color)", "red"]


def test_same_name_in_two_categories_is_searched_as_two_concepts() -> None:
    """Formulas over ``door`` the object and ``door`` the part must not share cached counts."""
    probe = tiny_probe(5, concepts=4)
    twins = (Leaf(10, "door", 0), Leaf(11, "door", 1), Leaf(12, "x", 0), Leaf(13, "y", 1))
    same = BooleanProbe(twins, probe.masks, probe.annotated)
    bank = ConceptBank(np.array([10, 11, 12, 13]), ("door",) * 2 + ("x", "y"), np.array([0, 1, 0, 1]), CATEGORIES,
                       pack(probe.masks), probe.annotated, probe.masks.shape[-1])
    bank.labels = ("door", "door", "x", "y")  # as if unqualified: the cache must still tell them apart
    search = BeamSearch(bank, 3, beam=60)  # one search object: its cache serves every unit
    for unit in (probe.masks[1] | probe.masks[2], probe.masks[0] & ~probe.masks[1], probe.masks[1] & ~probe.masks[3]):
        found = search.explain(UnitMask.from_bool(unit, bank))
        assert found.iou == exhaustive(same, unit, 3, ALL_MOVES)[0]
