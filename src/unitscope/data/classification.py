"""Labelled classification data for ``evaluate``: SceneWorld variants or images in class folders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from unitscope.data import SCENEWORLD_SPECS, check_class_folder
from unitscope.data.class_names import no_class_names
from unitscope.errors import UsageError


class _RandomAccess(Protocol):
    def __getitem__(self, i: int, /) -> tuple[np.ndarray, int]: ...


@dataclass
class ClassificationData:
    """Images with a target index into the *model's* class list."""

    name: str
    images: _RandomAccess  # random access: images[i] -> (uint8 HxWx3, target)
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i]


class _SceneWorldTargets:
    """SceneWorld samples with their class re-indexed into the model's classes."""

    def __init__(self, probe: object, remap: np.ndarray) -> None:
        self.probe = probe
        self.remap = remap

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rendered = self.probe.render(i)  # type: ignore[attr-defined]
        return rendered.image, int(self.remap[rendered.class_index])


def class_remap(data_classes: Sequence[str], model_classes: Sequence[str], source: str) -> np.ndarray:
    """Index of each data class in the model's classes; a class the model lacks is a usage error."""
    missing = [c for c in data_classes if c not in model_classes]
    if missing:
        raise UsageError(
            f"{source} has classes the model does not know: {', '.join(missing[:6])}; the model's classes are "
            f"{', '.join(list(model_classes)[:12])}{' …' if len(model_classes) > 12 else ''}"
        )
    position = {c: i for i, c in enumerate(model_classes)}
    return np.array([position[c] for c in data_classes], dtype=np.int64)


def open_classification(
    spec: str, model_classes: Sequence[str] | None, n: int = 1000, seed: int = 12345, size: int = 112,
    command: str = "evaluate",
) -> ClassificationData:
    """Resolve ``evaluate --data``: SceneWorld scenes/objects/background, or an image class folder.

    ``command`` names the command in the error for a model without class names.
    """
    if n <= 0:
        raise UsageError(f"--n must be positive, got {n}")
    if not model_classes:
        raise no_class_names(command)
    if spec in SCENEWORLD_SPECS:
        from unitscope.data.sceneworld import SceneWorldProbe

        probe = SceneWorldProbe(n=n, seed=seed, size=size, **SCENEWORLD_SPECS[spec])  # type: ignore[arg-type]
        remap = class_remap(probe.class_names, model_classes, f"--data {spec}")
        return ClassificationData(spec, _SceneWorldTargets(probe, remap), len(probe))
    check_class_folder(spec)
    path = Path(spec)
    from unitscope.data.image_folder import ImageClassFolder

    folder = ImageClassFolder(path, list(model_classes))
    if len(folder) == 0:
        raise UsageError(f"{path} holds no images in class sub-folders; put images under {path}/<class>/")
    return ClassificationData(str(path), folder, len(folder))
