"""SceneWorldProbe / SceneWorldClassification: determinism, coverage, label consistency, controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitscope.data.probe import ProbeSet
from unitscope.data.sceneworld import (
    COLOR_NAMES,
    OBJECT_CLASSES,
    REGION_CLASSES,
    SCENE_CLASSES,
    SceneWorldClassification,
    SceneWorldProbe,
)
from unitscope.data.sceneworld import compose as compose_module
from unitscope.data.sceneworld.colors import name_colors
from unitscope.data.sceneworld.objects import OBJECT_SPECS
from unitscope.data.sceneworld.primitives import Dice
from unitscope.data.sceneworld.vocabulary import label_numbers
from unitscope.errors import UsageError

OBJECTS = label_numbers("object")
REGION_NUMBERS = {OBJECTS[r] for r in REGION_CLASSES}


@pytest.fixture(scope="module")
def scenes() -> SceneWorldProbe:
    return SceneWorldProbe(400, seed=11)


@pytest.fixture(scope="module")
def scene_renders(scenes: SceneWorldProbe) -> list:
    return [scenes.render(i) for i in range(250)]


def test_probe_implements_the_protocol_with_half_resolution_labels() -> None:
    probe = SceneWorldProbe(3, seed=0)
    assert isinstance(probe, ProbeSet)
    assert (probe.image_size, probe.label_size, probe.class_names) == ((112, 112), (56, 56), SCENE_CLASSES)
    sample = probe[1]
    assert sample.index == 1 and sample.image.shape == (112, 112, 3) and sample.image.dtype == np.uint8
    assert set(sample.pixel_labels) == {"object", "part", "material", "color"}
    for maps in sample.pixel_labels.values():
        assert maps.shape == (1, 56, 56) and maps.dtype == np.int32
    full = probe.render(1)
    assert np.array_equal(sample.pixel_labels["object"][0], full.object_map[1::2, 1::2])
    assert sample.image_labels["scene"] == (full.scene,)
    assert probe.concepts[full.scene].name == SCENE_CLASSES[full.class_index]
    assert probe.concepts[sample.image_labels["texture"][0]].category == "texture"


def test_objects_kind_has_object_classes_and_no_scene_label() -> None:
    probe = SceneWorldProbe(4, seed=0, kind="objects", label_scale=1)
    assert probe.class_names == OBJECT_CLASSES and probe.label_size == (112, 112)
    sample = probe[0]
    assert "scene" not in sample.image_labels and "texture" in sample.image_labels
    assert sample.pixel_labels["object"].shape == (1, 112, 112)


def test_sample_depends_only_on_seed_and_index() -> None:
    a, b = SceneWorldProbe(5, seed=3), SceneWorldProbe(50, seed=3)
    ra, rb = a.render(4), b.render(4)
    for field in ("image", "object_map", "part_map", "material_map", "color_map"):
        assert np.array_equal(getattr(ra, field), getattr(rb, field)), field
    assert ra.instances == rb.instances
    assert not np.array_equal(SceneWorldProbe(5, seed=4).render(4).image, ra.image)
    assert not np.array_equal(a.render(3).image, ra.image)


def test_class_index_matches_render_without_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = SceneWorldProbe(60, seed=2, kind="objects")
    targets = [probe.class_index(i) for i in range(60)]
    assert targets == [probe.render(i).class_index for i in range(60)]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("class_index must not compose or render")

    monkeypatch.setattr(compose_module, "_compose_object", fail)
    assert SceneWorldProbe(60, seed=2, kind="objects").class_index(7) == targets[7]


def test_every_class_occurs() -> None:
    scenes = SceneWorldProbe(300, seed=0)
    assert {scenes.class_index(i) for i in range(300)} == set(range(len(SCENE_CLASSES)))
    objects = SceneWorldProbe(600, seed=0, kind="objects")
    assert {objects.class_index(i) for i in range(600)} == set(range(len(OBJECT_CLASSES)))


def test_every_object_and_region_appears_in_scene_images(scene_renders: list) -> None:
    seen = set()
    for r in scene_renders:
        seen |= set(np.unique(r.object_map).tolist())
    assert seen == set(OBJECTS.values())


def test_object_centric_images_are_dominated_by_their_object() -> None:
    def extent(box: tuple[int, int, int, int]) -> int:
        return max(box[2] - box[0], box[3] - box[1])

    probe = SceneWorldProbe(60, seed=8, kind="objects")
    for i in range(60):
        r = probe.render(i)
        (main,) = [x for x in r.instances if x.name == OBJECT_CLASSES[r.class_index]][-1:]
        assert extent(main.bbox) >= 0.5 * 112 and main.area >= 150, (i, main)
        for other in r.instances[:-1]:
            assert extent(other.bbox) < extent(main.bbox), (i, other, main)
        assert r.instances[-1] is main  # drawn last: nothing occludes it


def test_parts_lie_inside_objects_that_own_them(scene_renders: list) -> None:
    parts = label_numbers("part")
    vocabulary: dict[int, set[int]] = {}
    for name, spec in OBJECT_SPECS.items():
        owned = set()
        for seed in range(30):
            for placement in {*spec.indoor, *spec.outdoor}:
                owned |= {parts[p.part] for p in spec.build(Dice(np.random.default_rng(seed)), placement)[1] if p.part}
        vocabulary[OBJECTS[name]] = owned
    pairs = set()
    for r in scene_renders[:120]:
        has_part = r.part_map > 0
        assert not np.isin(r.object_map[has_part], list(REGION_NUMBERS)).any()
        pairs |= set(zip(r.object_map[has_part].tolist(), r.part_map[has_part].tolist(), strict=True))
    bad = [(o, p) for o, p in pairs if p not in vocabulary[o]]
    assert not bad
    assert len({p for _, p in pairs}) >= 30


def test_colour_labels_name_the_paint_and_describe_the_pixels(scene_renders: list) -> None:
    numbers = np.array([label_numbers("color")[c] for c in COLOR_NAMES])
    agreement = []
    for r in scene_renders[:40]:
        assert np.array_equal(r.color_map, numbers[name_colors(r.base)])
        assert np.abs(r.image / 255.0 - r.base).mean() < 0.1
        agreement.append((numbers[name_colors(r.image / 255.0)] == r.color_map).mean())
    assert min(agreement) > 0.45 and np.mean(agreement) > 0.75
    assert len(set(np.concatenate([np.unique(r.color_map) for r in scene_renders]).tolist())) >= 9


def test_every_pixel_has_a_material_and_regions_have_theirs(scene_renders: list) -> None:
    materials = label_numbers("material")
    used = set()
    for r in scene_renders[:60]:
        assert (r.material_map > 0).all()
        assert (r.material_map[r.object_map == OBJECTS["sky"]] == materials["sky"]).all()
        assert (r.material_map[r.object_map == OBJECTS["water"]] == materials["water"]).all()
        used |= set(np.unique(r.material_map).tolist())
    assert len(used) >= 15


def test_background_only_control_keeps_background_and_drops_objects(scenes: SceneWorldProbe) -> None:
    bare = SceneWorldProbe(400, seed=11, remove_objects=True)
    assert bare.name == "sceneworld-background"
    for i in range(12):
        full, empty = scenes.render(i), bare.render(i)
        assert empty.class_index == full.class_index and empty.scene == full.scene
        assert set(np.unique(empty.object_map).tolist()) <= REGION_NUMBERS
        assert (empty.part_map == 0).all() and empty.instances == ()
        shown = np.isin(full.object_map, list(REGION_NUMBERS))
        assert np.array_equal(full.image[shown], empty.image[shown])
        assert np.array_equal(full.object_map[shown], empty.object_map[shown])


def test_classification_dataset_yields_uint8_chw_and_targets() -> None:
    data = SceneWorldClassification(6, seed=1, kind="objects")
    image, target = data[2]
    assert image.dtype == torch.uint8 and image.shape == (3, 112, 112)
    assert target == data.probe.class_index(2) and len(data) == 6
    assert np.array_equal(image.permute(1, 2, 0).numpy(), data.probe.render(2).image)


def test_other_sizes_render_with_matching_labels() -> None:
    probe = SceneWorldProbe(2, seed=0, size=64, label_scale=4)
    sample = probe[0]
    assert sample.image.shape == (64, 64, 3) and sample.pixel_labels["part"].shape == (1, 16, 16)
    assert np.array_equal(sample.pixel_labels["color"][0], probe.render(0).color_map[2::4, 2::4])


@pytest.mark.parametrize("kwargs", [
    {"n": 0}, {"n": 3, "kind": "rooms"}, {"n": 3, "size": 112, "label_scale": 3}, {"n": 3, "size": 16},
    {"n": 3, "seed": -1}, {"n": 2.5},
])
def test_bad_arguments_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        SceneWorldProbe(**kwargs)


def test_numpy_integers_are_accepted() -> None:
    probe = SceneWorldProbe(np.int64(3), seed=np.int32(2), size=np.int64(64))
    assert len(probe) == 3 and probe.image_size == (64, 64)


def test_out_of_range_index_raises_index_error() -> None:
    probe = SceneWorldProbe(3)
    with pytest.raises(IndexError):
        probe[3]
    assert probe[-1].index == 2
