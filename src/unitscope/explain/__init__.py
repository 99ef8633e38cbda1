"""Compositional explanations of units (Mu & Andreas 2020): the best logical formula of concepts per unit.

``explain(run, layer, out)`` reads a finished dissection run, rebuilds its unit masks exactly, packs
them and the concept masks into bits, and beam-searches formulas scored by popcounts.

The package is also the API's ``unitscope.explain(run, layer, out)`` (a callable module, as
``unitscope.report``): importing this subpackage makes ``unitscope.explain`` refer to it, so calling it
must explain a run.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from unitscope.explain.run import ExplainResult, explain

__all__ = ["ExplainResult", "explain"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> ExplainResult:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
