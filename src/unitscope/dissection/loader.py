"""Loading probe samples in fixed index ranges, in a worker process, with bad samples marked.

Batches are always ``[start, start + batch_size)`` so that a resumed run sees exactly the batches an
uninterrupted run would have seen after the same point. A corrupt sample becomes ``None`` plus its
error message, and the engine decides (``--skip-bad``) whether that is fatal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from unitscope.batching import batch_ranges
from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.processes import die_with_parent


@dataclass
class LoadedBatch:
    """Indices of a batch, their samples (None where unreadable) and the errors of the bad ones."""

    indices: list[int]
    samples: list[ProbeSample | None]
    errors: dict[int, str]


class _SampleDataset(Dataset[tuple[int, ProbeSample | None, str | None]]):
    def __init__(self, probe: ProbeSet, labels_only: bool) -> None:
        self.probe = probe
        self.labels_only = labels_only

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, index: int) -> tuple[int, ProbeSample | None, str | None]:
        loader = getattr(self.probe, "load_labels", None) if self.labels_only else None
        try:
            sample = loader(index) if loader is not None else self.probe[index]
        except BadSampleError as err:
            return index, None, str(err)
        return index, sample, None


def _collate(items: list[tuple[int, ProbeSample | None, str | None]]) -> LoadedBatch:
    return LoadedBatch(
        indices=[i for i, _, _ in items],
        samples=[s for _, s, _ in items],
        errors={i: e for i, _, e in items if e is not None},
    )


def iterate_batches(
    probe: ProbeSet, start: int, batch_size: int, workers: int, labels_only: bool = False
) -> Iterator[LoadedBatch]:
    """Batches covering ``[start, len(probe))`` in order."""
    n = len(probe)
    ranges = [list(part) for part in batch_ranges(n, batch_size, start)]
    if not ranges:
        return iter(())
    loader = DataLoader(
        _SampleDataset(probe, labels_only),
        batch_sampler=ranges,
        collate_fn=_collate,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=die_with_parent() if workers else None,  # no orphan workers after kill -9
    )
    return iter(loader)
