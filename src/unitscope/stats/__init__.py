"""Mergeable streaming statistics for dissection: unit thresholds, top images, concept overlap.

Each has ``update``, ``merge``, ``state_dict`` and ``load_state_dict``, so a run can be
checkpointed, resumed and split across processes with the same, exact result.
"""

from unitscope.stats._state import StatsError
from unitscope.stats.iou import ConceptOverlap
from unitscope.stats.labels import LabelBatch
from unitscope.stats.quantile import TopQuantile
from unitscope.stats.topk import TopImages

__all__ = ["ConceptOverlap", "LabelBatch", "StatsError", "TopImages", "TopQuantile"]
