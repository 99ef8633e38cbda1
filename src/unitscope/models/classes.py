"""The one route by which a model gets its class names: its own, or a file / list the user gives.

Every command and API function that needs classes goes through :func:`with_class_names` (names given) and
:func:`require_class_names` (names needed), so the checks and the error lines are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from unitscope.data.class_names import no_class_names, read_class_names
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel

PROBE_SIDE = 224  # input side of the one forward pass that counts the outputs when the model sets none


def output_width(model: LoadedModel) -> int | None:
    """How many scores the network outputs per image ([1, K] → K), or None when that is not one vector.

    One forward pass of a blank image at the model's input size (224 px when it sets none).
    """
    side = model.preprocess.input_size or (PROBE_SIDE, PROBE_SIDE)
    x = torch.zeros(1, 3, *side, device=model.device)
    try:
        with torch.no_grad(), model.autocast():
            out = model.module(x)
    except Exception:  # a network that cannot take this input: later steps say why
        return None
    if isinstance(out, tuple | list) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        return None
    return int(out.shape[1])


def with_class_names(model: LoadedModel, names: str | Path | Sequence[str], *,
                     file: str | Path | None = None) -> LoadedModel:
    """A copy of ``model`` with ``names`` (a class-names file, or the names, read from ``file``) as its classes.

    The names must be as many as the network's outputs: a file for another checkpoint is refused here, not
    discovered as wrong labels later.
    """
    if isinstance(names, str | Path):
        file, names = names, read_class_names(names)
    found = [str(n) for n in names]
    from_file = file is not None
    source = f"--class-names {file}" if from_file else "class_names"
    if not found:
        raise UsageError(f"{source} is empty; give one name per output of the model")
    width = output_width(model)
    if width is not None and width != len(found):
        mend = ("give the class-names file of this checkpoint" if from_file
                else "give one name per output, in output order")
        raise UsageError(f"{source} names {len(found)} classes but the model outputs {width} scores per image; "
                         f"{mend} (or --num-classes {len(found)} for an architecture built from scratch)")
    return replace(model, class_names=found)


def require_class_names(model: LoadedModel, command: str) -> list[str]:
    """The model's class names, or the one line that names ``--class-names FILE`` and ``command``."""
    if not model.class_names:
        raise no_class_names(command)
    return list(model.class_names)
