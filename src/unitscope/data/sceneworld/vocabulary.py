"""The names of everything in SceneWorld and their stable Broden-style label numbers.

Numbering follows the category order object, part, scene, material, texture, color and, inside a
category, the order of the tuples below; it starts at 1 (0 = unlabeled). Appending a name to the end of
the last tuple is the only change that keeps existing numbers, so tests pin a few of them.
"""

from __future__ import annotations

from functools import cache, lru_cache

from unitscope.data.probe import BRODEN_CATEGORIES, Concept, ConceptTable

INDOOR_SCENES: tuple[str, ...] = ("bedroom", "kitchen", "bathroom", "living_room", "office")
OUTDOOR_SCENES: tuple[str, ...] = ("street", "forest", "beach", "harbor", "pasture")
SCENE_CLASSES: tuple[str, ...] = INDOOR_SCENES + OUTDOOR_SCENES

OBJECT_CLASSES: tuple[str, ...] = (
    "bed", "chair", "table", "sofa", "lamp", "window", "door", "toilet", "sink", "bathtub",
    "stove", "fridge", "cabinet", "desk", "monitor", "bookshelf", "painting", "plant", "bench",
    "car", "person", "tree", "boat", "house", "streetlight", "fence", "cow", "umbrella", "rock", "flower",
)
REGION_CLASSES: tuple[str, ...] = ("sky", "wall", "floor", "ceiling", "grass", "water", "road", "sand", "ground")

PART_NAMES: tuple[str, ...] = (
    "headboard", "footboard", "bedspread", "pillow", "leg", "backrest", "seat", "tabletop", "tablecloth",
    "cushion", "armrest", "lampshade", "stand", "base", "frame", "pane", "curtain", "panel", "knob",
    "doorframe", "tank", "bowl", "lid", "basin", "pedestal", "faucet", "tub", "rim", "cooktop", "oven",
    "handle", "door", "drawer", "countertop", "screen", "bezel", "shelf", "book", "canvas", "pot",
    "leaves", "bodywork", "wheel", "windshield", "headlight", "head", "hair", "torso", "arm", "trunk",
    "crown", "hull", "cabin", "mast", "sail", "facade", "roof", "chimney", "pole", "lantern", "post",
    "rail", "horn", "tail", "canopy", "boulder", "moss", "pebble", "stem", "petal", "pistil",
)

MATERIALS: tuple[str, ...] = (
    "wood", "metal", "fabric", "glass", "brick", "stone", "foliage", "water", "plastic", "ceramic",
    "skin", "hair", "paint", "wallpaper", "tile", "carpet", "asphalt", "sand", "soil", "sky", "paper",
    "rubber", "fur",
)

TEXTURES: tuple[str, ...] = (
    "plain", "grained", "brushed", "woven", "striped", "dotted", "chequered", "bricked", "speckled",
    "leafy", "rippled", "glossy",
)

COLOR_NAMES: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
)

CATEGORY_NAMES: dict[str, tuple[str, ...]] = {
    "object": OBJECT_CLASSES + REGION_CLASSES,
    "part": PART_NAMES,
    "scene": SCENE_CLASSES,
    "material": MATERIALS,
    "texture": TEXTURES,
    "color": COLOR_NAMES,
}


@lru_cache(maxsize=1)
def sceneworld_concepts() -> ConceptTable:
    """Every SceneWorld concept with its global label number (1 upwards) and primary category."""
    concepts: list[Concept] = []
    for category in BRODEN_CATEGORIES:
        for name in CATEGORY_NAMES[category]:
            concepts.append(Concept(len(concepts) + 1, name, category))
    return ConceptTable(tuple(concepts), BRODEN_CATEGORIES)


@cache
def label_numbers(category: str) -> dict[str, int]:
    """Name -> global label number within one category (the renderer's lookup)."""
    return {c.name: c.number for c in sceneworld_concepts().in_category(category)}
