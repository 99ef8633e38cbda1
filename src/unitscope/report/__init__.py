"""Reports of analyses: self-contained HTML pages and the figures and unit images they embed.

The package is also the API's ``unitscope.report(run)`` (a callable module): importing this subpackage
makes ``unitscope.report`` refer to it, so calling it must render a run.
"""

import sys
import types
from pathlib import Path
from typing import Any

from unitscope.report.dissection import ReportOptions, build_report, write_dissection_report
from unitscope.report.figures import category_colors, plot_detector_counts
from unitscope.report.outlines import OutlineStyle, outline_region
from unitscope.report.regions import REGION_RULES, field_sizes_from_rf
from unitscope.report.unit_images import unit_card_image

__all__ = [
    "REGION_RULES",
    "OutlineStyle",
    "ReportOptions",
    "build_report",
    "category_colors",
    "field_sizes_from_rf",
    "outline_region",
    "plot_detector_counts",
    "unit_card_image",
    "write_dissection_report",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Path:
        from unitscope.report.run_report import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
