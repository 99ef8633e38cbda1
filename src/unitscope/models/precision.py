"""Reduced-precision forward passes (``--amp``): autocast to bfloat16 or float16, off by default.

Autocast runs matrix products and convolutions in the reduced type and keeps reductions such as
softmax and normalisation in float32. The maps unitscope captures are widened back to float32
(exactly: every bf16/fp16 value is a float32 value) before any statistic sees them, so only the
network's own arithmetic changes: thresholds, IoU and labels move by the rounding of the forward pass
(measured on SceneWorld in docs/gpu.md), never by the statistics.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from unitscope.errors import UsageError

if TYPE_CHECKING:
    import torch

AMP_MODES: tuple[str, ...] = ("off", "bf16", "fp16")  # importable without torch (the CLI's --help)


def check_amp(amp: str, device: torch.device | None = None) -> None:
    """Refuse an unknown mode, or one this device cannot autocast to, before any work starts."""
    if amp not in AMP_MODES:
        raise UsageError(f"--amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    import torch

    if device is not None and amp != "off" and not torch.amp.is_autocast_available(device.type):
        raise UsageError(f"--amp {amp}: torch cannot autocast on {device.type}; use --amp off")


def autocast(amp: str, device: torch.device) -> AbstractContextManager[object]:
    """The context a forward pass runs in: autocast to ``amp``'s type on ``device``, or nothing for off."""
    import torch

    check_amp(amp)
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
