"""Perturbation analyses: one batched occlusion engine (full or incremental inference)."""

from unitscope.perturb.occluders import OccluderGrid, grid_to_pixels, occluder_patches, relevant_positions
from unitscope.perturb.occlusion import OcclusionPlan, occlusion_discrepancy, plan_occlusion

__all__ = [
    "OccluderGrid",
    "OcclusionPlan",
    "grid_to_pixels",
    "occluder_patches",
    "occlusion_discrepancy",
    "plan_occlusion",
    "relevant_positions",
]
