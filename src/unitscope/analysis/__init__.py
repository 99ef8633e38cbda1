"""Emergence analyses on top of dissection runs, one subpackage per feature: compare, segment, CAM.

- :func:`~unitscope.analysis.compare.runs.compare_runs` — two runs side by side (``compare_many``: two or more), with
  :func:`~unitscope.analysis.compare.label_stats.probe_label_stats` for frequency and discriminativeness.
- :class:`~unitscope.analysis.segment.segmenter.UnitSegmenter` — segmentation by detector units and the
  prediction from one forward pass (:func:`~unitscope.analysis.segment.run.run_segment` end to end).
- :class:`~unitscope.analysis.cam.methods.ChannelWeightedCAM` with :class:`~unitscope.analysis.cam.methods.CAM` and
  :class:`~unitscope.analysis.cam.methods.GradCAM`; :func:`~unitscope.analysis.cam.site.find_cam_site` picks one.
- :func:`~unitscope.evaluation.transfer.transfer_accuracy` — a linear SVM on a layer's pooled features.
"""

from unitscope.analysis.cam.methods import CAM, ChannelWeightedCAM, GradCAM
from unitscope.analysis.cam.site import find_cam_site
from unitscope.analysis.compare.label_stats import probe_label_stats
from unitscope.analysis.compare.runs import compare_many, compare_runs
from unitscope.analysis.segment.segmenter import UnitSegmenter

__all__ = [
    "CAM",
    "ChannelWeightedCAM",
    "GradCAM",
    "UnitSegmenter",
    "compare_many",
    "compare_runs",
    "find_cam_site",
    "probe_label_stats",
]
