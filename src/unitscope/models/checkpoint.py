"""Reading checkpoints in the formats people actually have (Places365, torchvision, DataParallel)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.catalog import missing_checkpoint


def strip_dataparallel(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every ``module`` component of each key (``features.module.0.weight`` → ``features.0.weight``)."""
    return {".".join(p for p in key.split(".") if p != "module"): value for key, value in state_dict.items()}


def read_checkpoint(path: str | Path, trust: bool = False, mmap: bool = False) -> dict[str, torch.Tensor]:
    """A state_dict from a bare state_dict or ``{'state_dict': …}``, read with ``weights_only=True``.

    A checkpoint from elsewhere can run arbitrary code if fully unpickled, so nothing else is tried
    unless ``trust`` (``--trust-checkpoint``): then legacy whole-model pickles (the old Places365
    ``.pth.tar``, Python 2 era) are unpickled with ``encoding='latin1'``. ``mmap``: tensors mapped from the file
    (read when first touched: a network that stops at an early layer never reads its classifier) where the
    file's format allows it.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_checkpoint(path)
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol warning would break the one-line error
            warnings.simplefilter("ignore", UserWarning)
            if trust:
                loaded = torch.load(path, map_location="cpu", weights_only=False, encoding="latin1")
            else:
                loaded = _load_tensors(path, mmap)
    except Exception as err:  # a text file, a truncated zip, a pickle of Python objects: never run, only refused
        message = str(err)
        if not trust and ("GLOBAL" in message or "Unsupported" in message):
            raise UsageError(
                f"checkpoint {path} holds Python objects, not just tensors{_unsafe_global(err)}; unpickling them "
                "can run code from the file, so it is refused: pass --trust-checkpoint only if you trust its source"
            ) from None
        raise UsageError(
            f"cannot read checkpoint {path}: it is not a complete file saved by torch.save "
            f"({type(err).__name__}: {first_line(err)[:120]}); check the file (truncated download?)"
        ) from None
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, Mapping) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UsageError(f"{path} holds no state_dict of tensors; pass a checkpoint saved with torch.save")
    if not all(isinstance(k, str) for k in loaded):
        raise UsageError(f"{path} has state_dict keys that are not strings; pass a checkpoint saved with torch.save")
    return strip_dataparallel(loaded)


def _load_tensors(path: Path, mmap: bool) -> object:
    """``torch.load(weights_only=True)``, mapped from the file when ``mmap`` and the file is a zip checkpoint."""
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # a legacy (non-zip) file cannot be mapped: read whole below, whose error is the one told
            pass
    return torch.load(path, map_location="cpu", weights_only=True)


def _unsafe_global(err: BaseException) -> str:
    """`` (it needs GLOBAL x.y)`` from torch's weights-only error, or nothing when it names none."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return f" (it needs {found.group(1)})" if found else ""


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (torch's unpickling errors run to many lines)."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


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
