"""Helpers shared by the benchmark scripts: in-memory probe sets and timing."""

from __future__ import annotations

import time
from collections.abc import Callable

from unitscope.data.probe import ConceptTable, ProbeSample


class MemoryProbe:
    """A probe set held in memory, so a benchmark times the engine and not the image source."""

    def __init__(self, samples: list[ProbeSample], concepts: ConceptTable, image_size: tuple[int, int],
                 label_size: tuple[int, int], name: str) -> None:
        self.samples = samples
        self.concepts = concepts
        self.image_size = image_size
        self.label_size = label_size
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> ProbeSample:
        return self.samples[i]


def render_probe(n: int, size: int, seed: int = 0) -> MemoryProbe:
    """Pre-render ``n`` SceneWorld scenes at ``size`` px."""
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = SceneWorldProbe(n=n, seed=seed, size=size)
    return MemoryProbe([probe[i] for i in range(n)], probe.concepts, probe.image_size, probe.label_size,
                       f"{probe.name}-memory")


def best_of(repeats: int, func: Callable[[], object]) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``func`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)
