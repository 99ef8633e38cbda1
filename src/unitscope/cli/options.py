"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.models.loading import LoadedModel

F = Callable[..., Any]


def model_options(func: F) -> F:
    """--model, --weights, --num-classes, --device."""
    func = click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")(func)
    func = click.option("--num-classes", type=int, default=None,
                        help="Classifier size for architectures built from scratch (365 for Places365).")(func)
    func = click.option("--weights", default=None,
                        help="torchvision weights name, or a checkpoint path (state_dict or {'state_dict': …}).")(func)
    func = click.option("--model", "model_spec", required=True,
                        help="torchvision name, sceneworld-scene, sceneworld-object, or path/file.py:callable.")(func)
    return func


def open_model(model_spec: str, weights: str | None, num_classes: int | None, device: str) -> LoadedModel:
    """Load the model named on the command line."""
    if num_classes is not None and num_classes <= 0:
        raise UsageError(f"--num-classes must be positive, got {num_classes}")
    from unitscope.models.loading import load_model  # torch loads only when a command needs a model

    return load_model(model_spec, weights=weights, num_classes=num_classes, device=device)


def check_positive(**values: int | None) -> None:
    """Refuse zero or negative counts with the option's name."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check_output_dir(path: Path, overwrite: bool) -> None:
    """An output directory must be new, empty, or explicitly overwritten; its parent must be writable."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a directory; choose another output path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UsageError(f"{path} is not empty; choose another path or pass --overwrite")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot create {path}: {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write to {parent}; choose a writable output path")
