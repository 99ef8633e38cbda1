"""SceneWorld vocabulary: concept numbering, category contents, object part vocabularies, scene tables."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.data.probe import BRODEN_CATEGORIES
from unitscope.data.sceneworld import (
    COLOR_NAMES,
    MATERIALS,
    OBJECT_CLASSES,
    REGION_CLASSES,
    SCENE_CLASSES,
    TEXTURES,
    sceneworld_concepts,
)
from unitscope.data.sceneworld.colors import name_colors
from unitscope.data.sceneworld.objects import OBJECT_SPECS
from unitscope.data.sceneworld.primitives import Dice
from unitscope.data.sceneworld.scenes import SCENE_SPECS


def test_concept_numbers_are_contiguous_from_one_and_unique_per_category() -> None:
    table = sceneworld_concepts()
    numbers = [c.number for c in table.concepts]
    assert numbers == list(range(1, len(numbers) + 1))
    assert table.categories == BRODEN_CATEGORIES
    for category in BRODEN_CATEGORIES:
        names = [c.name for c in table.in_category(category)]
        assert len(names) == len(set(names)), category


def test_concept_numbers_are_pinned() -> None:
    """Numbers are part of the on-disk format: changing them breaks exported probe sets."""
    table = sceneworld_concepts()
    assert table.number_of("bed", "object") == 1
    assert table.number_of("sky", "object") == len(OBJECT_CLASSES) + 1
    assert table.number_of("ground", "object") == len(OBJECT_CLASSES) + len(REGION_CLASSES)
    assert table.number_of("headboard", "part") == 40
    assert table.number_of("bedroom", "scene") == table.number_of("pistil", "part") + 1
    assert table.number_of("grey", "color") == table.max_number == 166
    # the same name in two categories has two numbers
    assert table.number_of("water", "object") != table.number_of("water", "material")


def test_categories_hold_what_the_world_promises() -> None:
    assert len(SCENE_CLASSES) >= 10 and len(OBJECT_CLASSES) >= 24
    assert len(MATERIALS) >= 5 and len(COLOR_NAMES) >= 8 and len(TEXTURES) >= 5
    assert set(REGION_CLASSES) >= {"sky", "wall", "floor", "ceiling", "grass", "water", "road", "sand", "ground"}
    assert not set(REGION_CLASSES) & set(OBJECT_CLASSES)


@pytest.mark.parametrize("name", OBJECT_CLASSES)
def test_every_object_class_has_at_least_two_named_parts(name: str) -> None:
    parts: set[str] = set()
    for seed in range(12):
        spec = OBJECT_SPECS[name]
        for placement in {*spec.indoor, *spec.outdoor}:
            aspect, prims = spec.build(Dice(np.random.default_rng(seed)), placement)
            assert 0.2 < aspect < 6.0
            parts |= {p.part for p in prims if p.part is not None}
    assert len(parts) >= 2, parts


def test_scene_tables_are_long_tailed_and_share_objects() -> None:
    users: dict[str, int] = {}
    for spec in SCENE_SPECS.values():
        probs = sorted((e.p for e in spec.entries), reverse=True)
        assert sum(p >= 0.6 for p in probs) >= 1 and sum(p <= 0.3 for p in probs) >= 3, spec.name
        assert 1 <= len(spec.key) <= 4 and all(k in {e.obj for e in spec.entries} for k in spec.key)
        for e in spec.entries:
            users[e.obj] = users.get(e.obj, 0) + 1
    assert set(users) == set(OBJECT_CLASSES)
    assert all(users[o] >= 3 for o in ("window", "chair", "person", "tree", "lamp"))


def test_named_colours_of_pure_colours() -> None:
    rgb = np.array([[1, 0, 0], [0, 0.8, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0.5, 0.5, 0.5], [1, 1, 0]], float)
    names = [COLOR_NAMES[i] for i in name_colors(rgb)]
    assert names == ["red", "green", "blue", "white", "black", "grey", "yellow"]
