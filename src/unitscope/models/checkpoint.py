"""Reading checkpoints in the formats people actually have (Places365, torchvision, DataParallel)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from unitscope.errors import UsageError


def strip_dataparallel(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every ``module`` component of each key (``features.module.0.weight`` → ``features.0.weight``)."""
    return {".".join(p for p in key.split(".") if p != "module"): value for key, value in state_dict.items()}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a bare state_dict, ``{'state_dict': …}``, or a legacy whole-model pickle.

    Safe tensor-only loading is tried first; legacy Places365 whole-model pickles (Python 2 era) need the
    full unpickler with ``encoding='latin1'`` and are only loaded that way.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist; pass an existing file to --weights")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, UnicodeDecodeError, AttributeError, ValueError):
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False, encoding="latin1")
        except Exception as err:  # any unpickling failure means the file is not a checkpoint we can use
            raise UsageError(
                f"cannot read checkpoint {path} ({type(err).__name__}: {err}); pass a torch-saved state_dict"
            ) from err
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UsageError(f"{path} holds no state_dict of tensors; pass a checkpoint saved with torch.save")
    return strip_dataparallel(loaded)


def load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load strictly; on mismatch name the missing and unexpected keys (and shape conflicts)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = sorted(
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_preview(unexpected)}")
        if wrong_shape:
            parts.append(f"shape mismatches {_preview(wrong_shape)}")
        raise UsageError(
            f"checkpoint {source} does not fit the architecture: {'; '.join(parts)}; "
            "check --model and --num-classes"
        )
    module.load_state_dict(state_dict, strict=True)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', … {len(items) - limit} more' if len(items) > limit else ''}]"
