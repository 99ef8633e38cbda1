"""unitscope: find out what every unit of a convolutional network detects.

One API shape (:mod:`unitscope.api`): ``dissect``, ``report``, ``receptive_fields``, ``minimal_images``,
``compare``, ``segment``, ``cam``, ``explain``, ``ablate``, ``see`` take a model spec string or an ``nn.Module`` and a
probe spec or a ``ProbeSet``, and return typed results with pandas tables; ``study_emergence`` runs a whole study
(:mod:`unitscope.study.emergence`). Heavy modules (torch) load on first use, so
``import unitscope`` stays instant.
"""

from __future__ import annotations

from typing import Any

from unitscope.errors import UsageError

API: tuple[str, ...] = ("dissect", "report", "receptive_fields", "minimal_images", "compare", "segment", "cam",
                        "explain", "ablate", "see", "study_emergence")
__all__ = ["UsageError", *API]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "study_emergence":  # studies stand above the API (unitscope.study, which uses it)
        from unitscope.study.emergence import study_emergence

        return study_emergence
    if name in API:
        from unitscope import api

        return getattr(api, name)
    raise AttributeError(f"module 'unitscope' has no attribute {name!r}")
