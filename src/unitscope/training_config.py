"""The settings of ``unitscope train`` (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unitscope.constraint_spec import parse_constraints
from unitscope.errors import UsageError

TASK_KINDS: dict[str, str] = {"scene": "scenes", "object": "objects"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (with the seed, training is reproducible on one device)."""

    task: str = "scene"
    n_train: int = 6000
    n_val: int = 1000
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    size: int = 112
    threads: int = 2
    constraints: tuple[str, ...] = ()  # --constraint specs, canonical (constraint_spec.ConstraintSpec.text)

    def validate(self) -> None:
        parse_constraints(self.constraints)
        if self.task not in TASK_KINDS:
            raise UsageError(f"unknown --task {self.task!r}; use scene or object")
        for field_name in ("n_train", "n_val", "epochs", "batch_size", "threads"):
            if getattr(self, field_name) <= 0:
                raise UsageError(f"--{field_name.replace('_', '-')} must be positive")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        for field_name in ("n_train", "n_val"):
            if getattr(self, field_name) > 10_000_000:
                raise UsageError(f"--{field_name.replace('_', '-')} {getattr(self, field_name)} is more images than "
                                 "SceneWorld can render in reasonable time; give at most 10,000,000")
