"""Loading probe samples in fixed index ranges, in worker processes, with bad samples marked.

Batches are always ``[start, start + batch_size)`` so that a resumed run sees exactly the batches an
uninterrupted run would have seen after the same point. A corrupt sample becomes ``None`` plus its
error message, and the engine decides (``--skip-bad``) whether that is fatal. Given a ``LabelEncoder``,
the workers also encode each sample's labels (so the main process never touches a label map) and send
the image alone. ``workers="auto"`` uses worker processes on machines with more than one core; the
prefetch queue is bounded (two batches per worker), so memory does not grow when decoding runs ahead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Dataset

from unitscope.batching import batch_ranges
from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.dissection.threads import available_cores
from unitscope.errors import UsageError
from unitscope.processes import die_with_parent
from unitscope.stats._state import StatsError
from unitscope.stats.labels import LabelEncoder, SampleLabels

# Most worker processes "auto" starts: decoding a 224 px image costs a few percent of a forward pass.
MAX_AUTO_WORKERS = 4
PREFETCH_PER_WORKER = 2

# index, sample (None: unreadable), its encoded labels, why it is unreadable, labels that do not fit
Item = tuple[int, ProbeSample | None, SampleLabels | None, str | None, str | None]


def resolve_workers(workers: int | str, cores: int | None = None) -> int:
    """Loader processes for ``--workers``: a number, or ``auto`` (none on one core, else about a quarter)."""
    if workers == "auto":
        cores = available_cores() if cores is None else cores
        return 0 if cores <= 1 else min(MAX_AUTO_WORKERS, max(1, cores // 4))
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0:
        return workers
    raise UsageError(f"--workers must be auto or a number of processes (0 or more), got {workers!r}")


@dataclass
class LoadedBatch:
    """Indices of a batch, their samples (None where unreadable) and the errors of the bad ones."""

    indices: list[int]
    samples: list[ProbeSample | None]
    errors: dict[int, str]
    labels: list[SampleLabels | None] | None = None  # encoded labels, when an encoder was given
    misfit: str | None = None  # labels that cannot be encoded (wrong size): fatal even with --skip-bad


class _SampleDataset(Dataset[Item]):
    def __init__(self, probe: ProbeSet, labels_only: bool, encoder: LabelEncoder | None) -> None:
        self.probe = probe
        self.labels_only = labels_only
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, index: int) -> Item:
        loader = getattr(self.probe, "load_labels", None) if self.labels_only else None
        try:
            sample = loader(index) if loader is not None else self.probe[index]
        except BadSampleError as err:
            return index, None, None, str(err), None
        if self.encoder is None:
            return index, sample, None, None, None
        try:
            labels = self.encoder.encode(sample)
        except StatsError as err:  # raised in the main process (an exception here would gain a traceback)
            return index, None, None, None, str(err)
        return index, replace(sample, pixel_labels={}, image_labels={}), labels, None, None


def _collate(items: list[Item]) -> LoadedBatch:
    return LoadedBatch(
        indices=[item[0] for item in items],
        samples=[item[1] for item in items],
        errors={item[0]: item[3] for item in items if item[3] is not None},
        labels=[item[2] for item in items] if any(item[2] is not None for item in items) else None,
        misfit=next((item[4] for item in items if item[4] is not None), None),
    )


def iterate_batches(
    probe: ProbeSet, start: int, batch_size: int, workers: int, labels_only: bool = False,
    encoder: LabelEncoder | None = None,
) -> Iterator[LoadedBatch]:
    """Batches covering ``[start, len(probe))`` in order; with ``encoder``, each sample's labels encoded."""
    n = len(probe)
    ranges = [list(part) for part in batch_ranges(n, batch_size, start)]
    if not ranges:
        return iter(())
    loader = DataLoader(
        _SampleDataset(probe, labels_only, encoder),
        batch_sampler=ranges,
        collate_fn=_collate,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=PREFETCH_PER_WORKER if workers else None,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=die_with_parent() if workers else None,  # no orphan workers after kill -9
    )
    return iter(loader)
