"""The contract between probe sets and everything that consumes them.

A probe set is random access: ``probe[i]`` returns a :class:`ProbeSample`. Labels use Broden's
conventions: global label numbers (0 = unlabeled), each concept with one primary category; pixel
categories carry label maps at the probe set's label resolution, image categories a tuple of numbers.
A category missing from a sample's dicts means "not annotated in this image", which matters for IoU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

PIXEL_CATEGORIES: tuple[str, ...] = ("object", "part", "material", "color")
IMAGE_CATEGORIES: tuple[str, ...] = ("scene", "texture")
BRODEN_CATEGORIES: tuple[str, ...] = ("object", "part", "scene", "material", "texture", "color")


@dataclass(frozen=True)
class Concept:
    """One labelled concept: its global number, name and primary category."""

    number: int
    name: str
    category: str


@dataclass(frozen=True)
class ConceptTable:
    """All concepts of a probe set, indexed by label number (0 = unlabeled is never a concept)."""

    concepts: tuple[Concept, ...]
    categories: tuple[str, ...]
    _by_number: dict[int, Concept] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_number = {c.number: c for c in self.concepts}
        if len(by_number) != len(self.concepts):
            raise ValueError("concept numbers must be unique")
        if 0 in by_number:
            raise ValueError("label number 0 means unlabeled and cannot be a concept")
        object.__setattr__(self, "_by_number", by_number)

    def __len__(self) -> int:
        return len(self.concepts)

    def __getitem__(self, number: int) -> Concept:
        return self._by_number[number]

    def __contains__(self, number: object) -> bool:
        return number in self._by_number

    @property
    def max_number(self) -> int:
        return max((c.number for c in self.concepts), default=0)

    def in_category(self, category: str) -> list[Concept]:
        return [c for c in self.concepts if c.category == category]

    def number_of(self, name: str, category: str | None = None) -> int:
        """The label number of a concept name (optionally within one category)."""
        for c in self.concepts:
            if c.name == name and (category is None or c.category == category):
                return c.number
        raise KeyError(name)


@dataclass(frozen=True)
class ProbeSample:
    """One probe image and its labels.

    image: uint8 RGB array [H, W, 3] at the probe set's native size.
    pixel_labels: category -> int32 array [k, sh, sw] of label numbers (k >= 1 stacked maps, 0 = none).
    image_labels: category -> tuple of label numbers for whole-image categories (scene, texture).
    A category absent from both dicts is not annotated in this image.
    """

    index: int
    image: np.ndarray
    pixel_labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    image_labels: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def annotated_categories(self) -> set[str]:
        return set(self.pixel_labels) | set(self.image_labels)


@runtime_checkable
class ProbeSet(Protocol):
    """Random-access probe images. ``concepts`` is empty for unlabeled sets (plain image folders)."""

    name: str
    concepts: ConceptTable
    image_size: tuple[int, int]
    label_size: tuple[int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ProbeSample: ...


def has_labels(probe: ProbeSet) -> bool:
    """Whether the probe set carries concept labels (IoU needs them)."""
    return len(probe.concepts) > 0
