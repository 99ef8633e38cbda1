"""What the streaming statistics share: their error type and the checks on saved or merged state.

Every statistic writes its constructor arguments into its ``state_dict`` so that loading or merging
state built with other arguments (another quantile, another concept table, ...) is refused instead
of silently producing a wrong table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from unitscope.errors import UsageError

StateValue = torch.Tensor | int | float


class StatsError(UsageError, ValueError):
    """Bad arguments or incompatible state for a statistic.

    A UsageError, so the CLI prints it as one line; also a ValueError, as callers of a plain
    numeric API expect.
    """


def require_keys(kind: str, state: Mapping[str, StateValue], keys: Iterable[str]) -> None:
    """Refuse a state dict that lacks any of ``keys`` (a checkpoint of another statistic, say)."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise StatsError(f"{kind} state lacks {', '.join(missing)}; load a state_dict written by {kind}.state_dict()")


def check_same_args(kind: str, action: str, mine: Mapping[str, object], theirs: Mapping[str, object]) -> None:
    """Refuse to ``action`` (merge / load) state whose constructor arguments differ from ours."""
    for name, value in mine.items():
        other = theirs[name]
        if isinstance(value, torch.Tensor) or isinstance(other, torch.Tensor):
            same = (
                isinstance(value, torch.Tensor)
                and isinstance(other, torch.Tensor)
                and value.shape == other.shape
                and bool(torch.equal(value.cpu(), other.cpu()))
            )
        else:
            same = value == other
        if not same:
            detail = "differs" if isinstance(value, torch.Tensor) else f"is {other!r}, ours is {value!r}"
            raise StatsError(f"cannot {action} {kind}: its {name} {detail}; build both with the same arguments")


def check_kind(kind: str, other: object, expected: type, mine: object) -> None:
    """Refuse to merge a statistic of another type, or a statistic into itself."""
    if not isinstance(other, expected):
        raise StatsError(f"cannot merge {type(other).__name__} into {kind}; merge two {kind} objects")
    if other is mine:
        raise StatsError(f"cannot merge a {kind} into itself; merge parts built from disjoint images")


def as_int(kind: str, state: Mapping[str, StateValue], key: str) -> int:
    """An integer entry of a state dict (a 0-d tensor is accepted too)."""
    value = state[key]
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise StatsError(f"{kind} state entry {key!r} must be one integer, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not float(value).is_integer():
        raise StatsError(f"{kind} state entry {key!r} must be an integer, got {value!r}")
    return int(value)


def as_tensor(kind: str, state: Mapping[str, StateValue], key: str) -> torch.Tensor:
    """A tensor entry of a state dict, detached and copied so later updates never alias it."""
    value = state[key]
    if not isinstance(value, torch.Tensor):
        raise StatsError(f"{kind} state entry {key!r} must be a tensor, got {type(value).__name__}")
    return value.detach().clone()
