"""Emergence analyses on top of dissection runs: compare, segment, CAM and transfer.

- :func:`~unitscope.analysis.compare.compare_runs` — two runs side by side, with
  :func:`~unitscope.analysis.label_stats.probe_label_stats` for frequency and discriminativeness.
- :class:`~unitscope.analysis.segment.UnitSegmenter` — segmentation by detector units and the
  prediction from one forward pass (:func:`~unitscope.analysis.segment_run.run_segment` end to end).
- :class:`~unitscope.analysis.cam.ChannelWeightedCAM` with :class:`~unitscope.analysis.cam.CAM` and
  :class:`~unitscope.analysis.cam.GradCAM`; :func:`~unitscope.analysis.cam_site.find_cam_site` picks one.
- :func:`~unitscope.analysis.transfer.transfer_accuracy` — a linear SVM on a layer's pooled features.
"""

from unitscope.analysis.cam import CAM, ChannelWeightedCAM, GradCAM
from unitscope.analysis.cam_site import find_cam_site
from unitscope.analysis.compare import compare_runs
from unitscope.analysis.label_stats import probe_label_stats
from unitscope.analysis.segment import UnitSegmenter
from unitscope.analysis.transfer import transfer_accuracy

__all__ = [
    "CAM",
    "ChannelWeightedCAM",
    "GradCAM",
    "UnitSegmenter",
    "compare_runs",
    "find_cam_site",
    "probe_label_stats",
    "transfer_accuracy",
]
