"""``see``: one forward pass that names the scene, finds its objects and shows why (CAM), from a finished run.

``from unitscope.see import SeeSystem, Sight`` — ``SeeSystem.open(run).see(images)`` gives one :class:`Sight`
per image; ``write_sight_page(sight, image, out_dir)`` draws it on the shared page template. See docs/see.md.
"""

from unitscope.see.page import write_index_page, write_sight_page
from unitscope.see.sight import SCHEMA, SCHEMA_VERSION, ObjectBox, SceneGuess, Sight, Support
from unitscope.see.system import SeeOptions, SeeSystem

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ObjectBox", "SceneGuess", "SeeOptions", "SeeSystem", "Sight", "Support",
           "write_index_page", "write_sight_page"]
