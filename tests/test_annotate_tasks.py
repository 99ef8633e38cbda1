"""Which images a task shows: the unit's top images plus catch images from other units, never its own."""

from __future__ import annotations

import pandas as pd
import pytest

from unitscope.annotate.protocol import clean_concept, refusal
from unitscope.annotate.tasks import plan_unit, top_lists
from unitscope.errors import UsageError


def test_plan_has_57_own_and_3_foreign_catches_in_a_fixed_shuffle() -> None:
    rows = [{"unit": u, "rank": r, "image": (u * 7 + r) % 200, "score": 1.0} for u in range(5) for r in range(60)]
    tops = top_lists(pd.DataFrame(rows))
    assert all(len(v) == 57 for v in tops.values())
    plan = plan_unit(2, tops, seed=1)
    own = [p for p in plan if not p.is_catch]
    catch = [p for p in plan if p.is_catch]
    assert len(plan) == 60 and len(own) == 57 and len(catch) == 3
    assert {p.probe_index for p in own} == set(tops[2])
    assert all(p.owner != 2 and p.probe_index not in tops[2] and p.probe_index in tops[p.owner] for p in catch)
    assert len({p.owner for p in catch}) == 3
    assert plan == plan_unit(2, tops, seed=1)  # deterministic
    assert [p.probe_index for p in plan] != [p.probe_index for p in plan_unit(2, tops, seed=2)]


def test_too_few_top_images_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--topk"):
        plan_unit(0, {0: [1, 2, 3], 1: [4, 5, 6]})


def test_concept_rules_and_refusals() -> None:
    assert clean_concept("  Dog   Head ") == "dog head"
    for bad in ("", "../etc", "/abs", "a" * 41, "dog\x00"):
        with pytest.raises(UsageError):
            clean_concept(bad)
    assert refusal(9, 0) is not None and refusal(10, 0) is None and refusal(40, 1) is not None
