"""Retention tables on hand-made label maps, and SceneWorld's object maps for them."""

from __future__ import annotations

import numpy as np
import pytest

from unitscope.data.sceneworld import SCENE_CLASSES
from unitscope.errors import UsageError
from unitscope.minimal.retention import (
    ImageCounts,
    ObjectRetention,
    class_retention,
    count_objects,
    retention_markdown,
)
from unitscope.minimal.sources import open_source

NAMES = {5: "bed", 6: "lamp"}


def test_count_objects_by_hand() -> None:
    maps = np.array([[[5, 5, 0, 6], [5, 5, 0, 0]]])  # bed 4 px, lamp 1 px, 3 px background
    kept = np.array([[True, False, True, True], [True, False, False, False]])
    counts = count_objects(maps, kept, NAMES)
    assert (counts.pixels, counts.kept) == (5, 3)
    assert counts.per_object == {"bed": (4, 2), "lamp": (1, 1)}


def test_class_retention_pools_pixels_and_counts_survivals() -> None:
    maps = np.array([[[5, 5, 0, 6], [5, 5, 0, 0]]])
    keep_bed = np.array([[True, True, False, False], [True, False, False, False]])  # 3 of 4 bed px, no lamp
    keep_lamp = np.array([[False, False, True, True], [False, False, False, False]])  # lamp + 1 background px
    images = [
        ImageCounts("bedroom", 8, 3, count_objects(maps, keep_bed, NAMES)),
        ImageCounts("bedroom", 8, 2, count_objects(maps, keep_lamp, NAMES)),
        ImageCounts("street", 8, 0, count_objects(np.zeros((1, 2, 4), int), np.zeros((2, 4), bool), NAMES)),
    ]
    bedroom, street = class_retention(images)
    assert bedroom.class_name == "bedroom" and bedroom.images == 2
    assert bedroom.pixel_fraction_kept == pytest.approx(5 / 16)
    assert bedroom.object_share_original == pytest.approx(10 / 16)
    assert bedroom.object_share_kept == pytest.approx(4 / 5)  # 3 bed px + 1 lamp px of 5 kept
    assert bedroom.objects == (
        ObjectRetention("bed", present=2, touched=1, survived=1, pixel_share_kept=3 / 8, share_of_kept=3 / 5),
        ObjectRetention("lamp", present=2, touched=1, survived=1, pixel_share_kept=1 / 2, share_of_kept=1 / 5),
    )
    assert bedroom.kept_objects_text() == "bed 60% (1/2); lamp 20% (1/2)"
    assert np.isnan(street.object_share_kept) and street.kept_objects_text() == "none"
    table = retention_markdown([bedroom, street], "t")
    assert "| bedroom | 2 | 31.2% | 62.5% | 80.0% | bed 60% (1/2); lamp 20% (1/2) |" in table
    assert "| street | 1 | 0.0% | 0.0% | – | none |" in table


def test_sceneworld_source_gives_renders_targets_and_object_maps_without_background() -> None:
    classes = list(reversed(SCENE_CLASSES))  # the model's order differs from SceneWorld's
    source = open_source("sceneworld", classes, n=3, seed=12345, size=64)
    sample = source[1]
    rendered = source.probe.render(1)
    np.testing.assert_array_equal(sample.image, rendered.image)
    assert classes[sample.target] == SCENE_CLASSES[rendered.class_index]
    assert sample.object_maps.shape == (1, 64, 64)
    present = {sample.object_names[int(v)] for v in np.unique(sample.object_maps) if v}
    assert present and present <= {i.name for i in rendered.instances}
    assert not {"sky", "wall", "floor"} & set(sample.object_names.values())
    background = sample.object_maps[0] == 0
    assert background.any() and rendered.object_map[background].min() > 0  # background regions are labelled there


def test_sceneworld_with_a_model_lacking_its_classes_is_refused() -> None:
    with pytest.raises(UsageError, match="does not know"):
        open_source("sceneworld", ["bedroom", "kitchen"], n=2, seed=0, size=64)
