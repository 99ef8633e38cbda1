"""Compositional explanations of units (Mu & Andreas 2020): the best logical formula of concepts per unit.

``explain(run, layer, out)`` reads a finished dissection run, rebuilds its unit masks exactly, packs
them and the concept masks into bits, and beam-searches formulas scored by popcounts.
"""

from __future__ import annotations

from unitscope.explain.run import ExplainResult, explain

__all__ = ["ExplainResult", "explain"]
