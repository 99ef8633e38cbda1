"""Minimal image representations (Zhou et al. 2015 §2): remove regions greedily while still classified."""

from unitscope.minimal.fills import FILLS, make_fill
from unitscope.minimal.greedy import MinimalResult, RemovalStep, minimal_image
from unitscope.minimal.poisson import GradientFill, PoissonSolver
from unitscope.minimal.run import MinimalSettings, run_minimal
from unitscope.minimal.segments import Segmentation, segment_image
from unitscope.minimal.sources import open_source

__all__ = [
    "FILLS",
    "GradientFill",
    "MinimalResult",
    "MinimalSettings",
    "PoissonSolver",
    "RemovalStep",
    "Segmentation",
    "make_fill",
    "minimal_image",
    "open_source",
    "run_minimal",
    "segment_image",
]
