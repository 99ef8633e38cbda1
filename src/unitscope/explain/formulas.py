"""Logical formulas of concepts (Mu & Andreas 2020): leaves, NOT of a leaf, AND/OR of two formulas.

Formulas grow left to right as the beam search builds them: ``F op c`` or ``F op NOT c``. Printing
puts parentheses only where precedence needs them, e.g. ``(water OR river) AND NOT blue``.

Semantics, with Broden's annotated-category rule: concept c covers its labelled pixels; ``NOT c``
covers the pixels *not* labelled c in the images where c's category is annotated (outside those
images nobody knows whether c is there). A formula's domain is the set of images where at least one
of its concepts' categories is annotated; a unit's active pixels count against the formula only there.
For a single concept this is exactly Network Dissection's IoU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OPS: tuple[str, ...] = ("and", "or", "not")


@dataclass(frozen=True)
class Leaf:
    """One concept by label number (``name`` for printing, ``category`` index for the annotated rule)."""

    number: int
    name: str
    category: int

    def __str__(self) -> str:
        return self.name

    @property
    def leaves(self) -> tuple[Leaf, ...]:
        return (self,)


@dataclass(frozen=True)
class Not:
    """NOT of a concept, within the images where its category is annotated."""

    leaf: Leaf

    def __str__(self) -> str:
        return f"NOT {self.leaf}"

    @property
    def leaves(self) -> tuple[Leaf, ...]:
        return (self.leaf,)


@dataclass(frozen=True)
class Binary:
    """``left AND right`` or ``left OR right``."""

    op: str  # "and" | "or"
    left: Formula
    right: Literal

    def __str__(self) -> str:
        def side(f: Formula) -> str:
            return f"({f})" if isinstance(f, Binary) and f.op != self.op else str(f)

        return f"{side(self.left)} {self.op.upper()} {side(self.right)}"

    @property
    def leaves(self) -> tuple[Leaf, ...]:
        return self.left.leaves + self.right.leaves


Literal = Leaf | Not
Formula = Leaf | Not | Binary


def length(formula: Formula) -> int:
    """Number of concepts in the formula."""
    return len(formula.leaves)


def category_mask(formula: Formula) -> int:
    """Bit set of the categories of the formula's concepts (its domain is where any is annotated)."""
    bits = 0
    for leaf in formula.leaves:
        bits |= 1 << leaf.category
    return bits


def extend(formula: Formula, op: str, leaf: Leaf, negate: bool) -> Binary:
    """``formula op leaf`` or ``formula op NOT leaf``."""
    if op not in ("and", "or"):
        raise ValueError(f"binary op must be 'and' or 'or', got {op!r}")
    return Binary(op, formula, Not(leaf) if negate else leaf)


def chain(formula: Formula) -> str:
    """The formula as the chain the search built, by label number: ``12 and 40 and-not 7``."""
    if isinstance(formula, Leaf):
        return str(formula.number)
    if isinstance(formula, Not):
        raise ValueError("a formula starts with a concept, not its negation")
    op = formula.op + ("-not" if isinstance(formula.right, Not) else "")
    return f"{chain(formula.left)} {op} {formula.right.leaves[0].number}"


def from_chain(text: str, leaf: Callable[[int], Leaf]) -> Formula:
    """The inverse of :func:`chain`, with ``leaf`` mapping label numbers to leaves."""
    tokens = text.split()
    if len(tokens) % 2 != 1:
        raise ValueError(f"not a formula chain: {text!r}")
    formula: Formula = leaf(int(tokens[0]))
    for op, number in zip(tokens[1::2], tokens[2::2], strict=True):
        name, _, negate = op.partition("-")
        formula = extend(formula, name, leaf(int(number)), negate == "not")
    return formula


def evaluate(formula: Formula, concept: Callable[[Leaf], np.ndarray],
             annotated: Callable[[Leaf], np.ndarray]) -> np.ndarray:
    """The formula's boolean mask, from each leaf's mask and the mask of its category's annotated images.

    Plain boolean arrays: the reference the bit-packed search is tested and benchmarked against.
    """
    if isinstance(formula, Leaf):
        return np.asarray(concept(formula), dtype=bool)
    if isinstance(formula, Not):
        return np.asarray(annotated(formula.leaf) & ~concept(formula.leaf), dtype=bool)
    left = evaluate(formula.left, concept, annotated)
    right = evaluate(formula.right, concept, annotated)
    return np.asarray(left & right if formula.op == "and" else left | right, dtype=bool)
