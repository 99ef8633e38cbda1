"""unitscope: find out what every unit of a convolutional network detects.

``unitscope.dissect(...)`` labels every unit of a layer (see :func:`unitscope.dissection.run.dissect`).
Heavy modules (torch) load on first use, so ``import unitscope`` stays instant.
"""

from __future__ import annotations

from typing import Any

from unitscope.errors import UsageError

__all__ = ["UsageError", "dissect"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "dissect":
        from unitscope.dissection.run import dissect

        return dissect
    raise AttributeError(f"module 'unitscope' has no attribute {name!r}")
