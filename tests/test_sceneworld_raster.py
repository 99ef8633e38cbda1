"""Rasterising hand-made layouts: exact pixel sets, mirroring, painter's order, labels per shape."""

from __future__ import annotations

import numpy as np

from unitscope.data.sceneworld.layout import Item, Layout
from unitscope.data.sceneworld.primitives import Look, oval, rect, trap
from unitscope.data.sceneworld.raster import render_layout
from unitscope.data.sceneworld.vocabulary import label_numbers

SIZE = 32
GREY = Look("paint", "plain", 0, (0.5, 0.5, 0.5), None)
RED = Look("wood", "grained", 0, (0.8, 0.1, 0.1), None)
STRIPES = Look("fabric", "striped", 0, (0.1, 0.2, 0.9), (0.95, 0.95, 0.95))


def _layout(*items: Item) -> Layout:
    return Layout(tuple(items), 0, "bedroom", (0.0, 0.0, 1.0), (0.0, 0.0, 0.0))


def _wall(look: Look = GREY) -> Item:
    return Item("wall", (rect(0, 0, 1, 1, None, look),), (0, 0, 1, 1), False, -100, False, (0.0, 0.0))


def _obj(label: str, prims: tuple, box: tuple[float, float, float, float], mirror: bool = False,
         depth: float = 0.0) -> Item:
    return Item(label, prims, box, mirror, depth, True, (0.0, 0.0))


def test_rect_covers_exactly_its_pixels_with_object_part_and_material_labels() -> None:
    # box x 8..24, y 8..24 (pixels); the rect spans the box's left half and lower three quarters
    bed = _obj("bed", (rect(0.0, 0.25, 0.5, 1.0, "pillow", RED),), (0.25, 0.25, 0.5, 0.5))
    r = render_layout(_layout(_wall(), bed), SIZE)
    expected = np.zeros((SIZE, SIZE), bool)
    expected[12:24, 8:16] = True
    objects, parts, materials = label_numbers("object"), label_numbers("part"), label_numbers("material")
    assert np.array_equal(r.object_map == objects["bed"], expected)
    assert np.array_equal(r.part_map == parts["pillow"], expected)
    assert np.array_equal(r.part_map == 0, ~expected)
    assert np.array_equal(r.object_map[~expected], np.full((~expected).sum(), objects["wall"]))
    assert set(np.unique(r.material_map[expected])) == {materials["wood"]}
    assert set(np.unique(r.material_map[~expected])) == {materials["paint"]}
    (inst,) = r.instances
    assert (inst.name, inst.area, inst.bbox) == ("bed", 96, (8, 8, 24, 24))


def test_mirror_flips_the_shape_inside_its_box() -> None:
    prims = (rect(0.0, 0.0, 0.25, 1.0, "leg", RED),)
    plain = render_layout(_layout(_wall(), _obj("chair", prims, (0.0, 0.0, 1.0, 1.0))), SIZE)
    flipped = render_layout(_layout(_wall(), _obj("chair", prims, (0.0, 0.0, 1.0, 1.0), mirror=True)), SIZE)
    assert np.array_equal(plain.object_map[:, ::-1], flipped.object_map)
    assert (plain.object_map[:, :8] == label_numbers("object")["chair"]).all()


def test_trapezoid_and_ellipse_areas() -> None:
    triangle = _obj("tree", (trap(0.0, 1.0, 0.5, 0.5, 0.0, 1.0, "crown", RED),), (0, 0, 1, 1))
    r = render_layout(_layout(_wall(), triangle), SIZE)
    area = int((r.object_map == label_numbers("object")["tree"]).sum())
    assert abs(area - SIZE * SIZE / 2) <= SIZE  # half the square, up to one pixel per row
    disk = _obj("rock", (oval(0.5, 0.5, 0.25, 0.25, "boulder", RED),), (0, 0, 1, 1))
    r = render_layout(_layout(_wall(), disk), SIZE)
    area = int((r.object_map == label_numbers("object")["rock"]).sum())
    assert abs(area - np.pi * 8 * 8) < 0.1 * np.pi * 8 * 8


def test_later_items_occlude_earlier_ones_and_areas_count_visible_pixels() -> None:
    back = _obj("sofa", (rect(0, 0, 1, 1, "cushion", RED),), (0.0, 0.0, 0.5, 0.5), depth=0.5)
    front = _obj("person", (rect(0, 0, 1, 1, "torso", RED),), (0.25, 0.25, 0.5, 0.5), depth=0.75)
    r = render_layout(_layout(_wall(), back, front), SIZE)
    assert r.object_map[12, 12] == label_numbers("object")["person"]
    areas = {i.name: i.area for i in r.instances}
    assert areas == {"sofa": 16 * 16 - 8 * 8, "person": 16 * 16}


def test_two_tone_patterns_label_each_pixel_by_its_own_paint() -> None:
    r = render_layout(_layout(_wall(STRIPES)), SIZE)
    colors = label_numbers("color")
    assert set(np.unique(r.color_map)) == {colors["blue"], colors["white"]}
    blue = r.color_map == colors["blue"]
    assert 0.3 < blue.mean() < 0.7
    assert np.allclose(r.base[blue], (0.1, 0.2, 0.9)) and np.allclose(r.base[~blue], (0.95, 0.95, 0.95))
    assert r.texture == label_numbers("texture")["striped"]


def test_plain_dominant_region_gives_plain_texture_and_no_noise_means_exact_paint() -> None:
    r = render_layout(_layout(_wall()), SIZE)
    assert r.texture == label_numbers("texture")["plain"]
    # plain texture, shading only: every pixel stays near its paint
    assert np.abs(r.image / 255.0 - r.base).max() < 0.1


def test_remove_objects_keeps_background_pixels_identical() -> None:
    bed = _obj("bed", (rect(0, 0, 1, 1, "bedspread", RED),), (0.25, 0.25, 0.5, 0.5))
    full = render_layout(_layout(_wall(), bed), SIZE)
    bare = render_layout(_layout(_wall(), bed), SIZE, remove_objects=True)
    assert bare.instances == ()
    assert set(np.unique(bare.object_map)) == {label_numbers("object")["wall"]}
    shown = full.object_map == label_numbers("object")["wall"]
    assert np.array_equal(full.image[shown], bare.image[shown])
