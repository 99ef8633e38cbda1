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


TRUST_KEY = "unitscope.trust_checkpoint"


def _remember_trust(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[TRUST_KEY] = value
    return value


def trusted_checkpoints() -> bool:
    """Whether this command was given --trust-checkpoint (False outside a click command)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx.meta.get(TRUST_KEY, False)) if ctx is not None else False


def model_options(func: F) -> F:
    """--model, --weights, --trust-checkpoint, --num-classes, --device."""
    func = click.option("--trust-checkpoint", is_flag=True, expose_value=False, callback=_remember_trust,
                        help="Fully unpickle a --weights file that is not tensor-only (legacy whole-model "
                             "pickles). Unpickling can run code from the file: only for files you trust.")(func)
    func = click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")(func)
    func = click.option("--num-classes", type=int, default=None,
                        help="Classifier size for architectures built from scratch (365 for Places365).")(func)
    func = click.option("--weights", default=None,
                        help="torchvision weights name, or a checkpoint path (state_dict or {'state_dict': …}).")(func)
    func = click.option("--model", "model_spec", required=True,
                        help="torchvision name, sceneworld-scene, sceneworld-object, or path/file.py:callable "
                             "(a model file is Python code and runs as you: use only files you trust).")(func)
    return func


def open_model(model_spec: str, weights: str | None, num_classes: int | None, device: str) -> LoadedModel:
    """Load the model named on the command line."""
    if num_classes is not None and num_classes <= 0:
        raise UsageError(f"--num-classes must be positive, got {num_classes}")
    from unitscope.models.loading import load_model  # torch loads only when a command needs a model

    return load_model(model_spec, weights=weights, num_classes=num_classes, device=device,
                      trust_checkpoint=trusted_checkpoints())


def check_positive(**values: int | None) -> None:
    """Refuse zero or negative counts with the option's name."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def check_output_dir(path: Path, overwrite: bool, *, reusable: bool = False) -> None:
    """Check the output path and hold its one-writer lock for the rest of the command (see ``staging``)."""
    from unitscope.staging import claim_output

    claim_output(path, overwrite, reusable=reusable)
