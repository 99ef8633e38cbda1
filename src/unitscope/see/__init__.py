"""``see``: one forward pass that names the scene, finds its objects and shows why (CAM), from a finished run.

``from unitscope.see import SeeSystem, Sight`` — ``SeeSystem.open(run).see(images)`` gives one :class:`Sight`
per image; ``write_sight_page(sight, image, out_dir)`` draws it on the shared page template. See docs/see.md.
"""

import sys
import types
from typing import Any

from unitscope.see.page import write_index_page, write_sight_page
from unitscope.see.run import SeeResult, see
from unitscope.see.sight import SCHEMA, SCHEMA_VERSION, ObjectBox, SceneGuess, Sight, Support
from unitscope.see.system import SeeOptions, SeeSystem

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ObjectBox", "SceneGuess", "SeeOptions", "SeeResult", "SeeSystem", "Sight",
           "Support", "see", "write_index_page", "write_sight_page"]


class _CallableModule(types.ModuleType):
    """The package is also the API's ``unitscope.see(run, ...)`` (as ``unitscope.explain``): importing it makes
    ``unitscope.see`` refer to it, so calling it must see."""

    def __call__(self, *args: Any, **kwargs: Any) -> SeeResult:
        return see(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
