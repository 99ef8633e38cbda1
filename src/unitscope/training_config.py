"""The settings of ``unitscope train`` (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from unitscope.constraint_spec import parse_constraints
from unitscope.errors import UsageError

TASK_KINDS: dict[str, str] = {"scene": "scenes", "object": "objects"}

# The families ``unitscope train --arch`` builds (unitscope.models.architectures); alexnet is SceneWorldNet.
ARCHITECTURES: tuple[str, ...] = ("alexnet", "resnet", "vgg", "convnext", "vit", "swin")

# Each family's recipe: the TrainConfig fields that differ from the defaults (the AlexNet pair's recipe).
# Every family trains with AdamW, a one-cycle schedule, label smoothing 0.1, flips and 4 px shifts.
# Measured (seed 0, --threads 1, last-epoch validation top-1 scene / object): resnet 0.932 / 0.944,
# vgg 0.925 / 0.952, convnext 0.721 / 0.738 (12 epochs at lr 4e-3; 8 at lr 2e-3 gave 0.655 on scenes),
# vit 0.653 / 0.428 (12,000 images x 7 epochs, cut from 12 for time: still rising; docs/architectures.md);
# swin is an untried guess.
ARCH_RECIPES: dict[str, dict[str, float | int]] = {
    "alexnet": {},
    "resnet": {},
    "vgg": {"lr": 2e-3},
    "convnext": {"epochs": 12, "lr": 4e-3, "weight_decay": 0.05},
    "vit": {"n_train": 12000, "epochs": 7, "lr": 1e-3, "weight_decay": 0.05},
    "swin": {"epochs": 10, "lr": 1e-3, "weight_decay": 0.05},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (with the seed, training is reproducible on one device)."""

    task: str = "scene"
    arch: str = "alexnet"
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

    @classmethod
    def for_arch(cls, arch: str, **overrides: object) -> TrainConfig:
        """``arch``'s recipe, with every override that is not None (the CLI's options left unset are None)."""
        if arch not in ARCH_RECIPES:
            raise UsageError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHITECTURES)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"TrainConfig has no field(s) {', '.join(unknown)}")
        base = replace(cls(arch=arch), **ARCH_RECIPES[arch])  # type: ignore[arg-type]
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

    def validate(self) -> None:
        parse_constraints(self.constraints)
        if self.task not in TASK_KINDS:
            raise UsageError(f"unknown --task {self.task!r}; use scene or object")
        if self.arch not in ARCHITECTURES:
            raise UsageError(f"unknown --arch {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")
        for field_name in ("n_train", "n_val", "epochs", "batch_size", "threads"):
            if getattr(self, field_name) <= 0:
                raise UsageError(f"--{field_name.replace('_', '-')} must be positive")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be zero or a positive number, got {self.weight_decay}")
        for field_name in ("n_train", "n_val"):
            if getattr(self, field_name) > 10_000_000:
                raise UsageError(f"--{field_name.replace('_', '-')} {getattr(self, field_name)} is more images than "
                                 "SceneWorld can render in reasonable time; give at most 10,000,000")
