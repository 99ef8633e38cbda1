"""SceneWorld: a procedural world of scenes made of objects, rendered with exact per-pixel labels.

The embedded stand-in for Places/ImageNet and Broden: scene images (10 classes, indoor and outdoor)
and object-centric images (30 classes), with object, part, material, colour, texture and scene labels.
See docs/sceneworld.md.
"""

from unitscope.data.sceneworld.dataset import SceneWorldClassification, SceneWorldProbe
from unitscope.data.sceneworld.raster import ObjectInstance, RenderedImage
from unitscope.data.sceneworld.vocabulary import (
    COLOR_NAMES,
    MATERIALS,
    OBJECT_CLASSES,
    PART_NAMES,
    REGION_CLASSES,
    SCENE_CLASSES,
    TEXTURES,
    sceneworld_concepts,
)

__all__ = [
    "COLOR_NAMES",
    "MATERIALS",
    "OBJECT_CLASSES",
    "PART_NAMES",
    "REGION_CLASSES",
    "SCENE_CLASSES",
    "TEXTURES",
    "ObjectInstance",
    "RenderedImage",
    "SceneWorldClassification",
    "SceneWorldProbe",
    "sceneworld_concepts",
]
