"""Receptive fields: theoretical (``theory``), empirical by occlusion (``empirical``), unit segmentations.

Only the theory is imported here, so ``unitscope.perturb`` can use it without an import cycle; import
``unitscope.rf.empirical`` and ``unitscope.receptive.segmentation`` explicitly.
"""

from unitscope.receptive.theory import FieldGeometry, theoretical_fields

__all__ = ["FieldGeometry", "theoretical_fields"]
