"""Loading probe samples in fixed index ranges, in worker processes, with bad samples marked.

Batches are always ``[start, start + batch_size)`` so that a resumed run sees exactly the batches an
uninterrupted run would have seen after the same point. A corrupt sample becomes ``None`` plus its
error message, and the engine decides (``--skip-bad``) whether that is fatal. Given a ``LabelEncoder``,
the workers also encode each sample's labels (so the main process never touches a label map) and send
the image alone. The prefetch queue is bounded (two batches per worker), so memory does not grow when
decoding runs ahead.

``workers="auto"`` on a CPU with more than one core runs *lanes* instead of worker processes
(:func:`plan_loading`): threads of this process that each read a batch and run the network on it, on one
intra-op thread each (on 2 cores), in turns, the results handed over in batch order (:func:`lane_batches`).
Decoding (Pillow and numpy release the GIL) then overlaps the forward pass and both cores run the network
at one thread's efficiency; a worker process beside a one-thread forward pass left the network on one core
and idled the other whenever decoding was done, and paid for pickling every batch. On a GPU ``auto`` keeps
worker processes (the network does not run on the cores), about a quarter of the cores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from unitscope.batching import batch_ranges
from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.dissection.threads import available_cores, threads_beside, threads_per_lane
from unitscope.errors import UsageError
from unitscope.processes import die_with_parent
from unitscope.stats._state import StatsError
from unitscope.stats.labels import LabelEncoder, SampleLabels

# Most worker processes "auto" starts: decoding a 224 px image costs a few percent of a forward pass.
MAX_AUTO_WORKERS = 4
PREFETCH_PER_WORKER = 2
MAX_AUTO_LANES = 4  # on more cores each lane's forward pass gets several intra-op threads

T = TypeVar("T")
A = TypeVar("A")

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


@dataclass(frozen=True)
class Loading:
    """How pass 1 reads the probe set and runs the network: worker processes, lanes, intra-op threads."""

    processes: int  # DataLoader worker processes (0: read in this process)
    lanes: int  # threads of this process that each read a batch and run the network on it (1: no threads)
    threads: int | None  # intra-op threads of the forward pass (of each lane); None: the user's OMP_NUM_THREADS


def plan_loading(workers: int | str, device_type: str, cores: int | None = None, ranks: int = 1) -> Loading:
    """``--workers`` on this machine: ``auto`` on a multi-core CPU runs lanes, else worker processes (also under
    torchrun, ``ranks`` > 1, where the ranks already share the cores)."""
    cores = available_cores() if cores is None else cores
    if workers == "auto" and device_type == "cpu" and cores > 1 and ranks == 1:
        lanes = min(MAX_AUTO_LANES, cores)
        return Loading(0, lanes, threads_per_lane(lanes, cores))
    processes = resolve_workers(workers, cores)
    return Loading(processes, 1, threads_beside(processes, cores))


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


def read_batch(dataset: _SampleDataset, indices: list[int]) -> LoadedBatch:
    """One batch read in this process (what a worker process sends)."""
    return _collate([dataset[i] for i in indices])


def in_order(items: Iterable[A], job: Callable[[A], T], lanes: int, prefix: str = "unitscope-lane") -> Iterator[T]:
    """``job(item)`` for every item, run by ``lanes`` threads at once and yielded in the items' order (at most
    ``lanes + 1`` jobs in flight, so memory does not grow). Whatever the consumer does with a result runs on
    its own thread, one result after another, so sums folded there are the same bytes as a sequential run."""
    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(lanes, thread_name_prefix=prefix) as pool:
        try:
            for item in items:
                pending.append(pool.submit(job, item))
                if len(pending) > lanes:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, or the consumer gave up): drop what has not started
            for future in pending:
                future.cancel()


def lane_batches(
    probe: ProbeSet, start: int, batch_size: int, lanes: int, work: Callable[[LoadedBatch], T],
    encoder: LabelEncoder | None = None,
) -> Iterator[tuple[LoadedBatch, T]]:
    """Batches covering ``[start, len(probe))`` in order, each with ``work(batch)``, read and worked on by
    ``lanes`` threads at once (:func:`in_order`)."""
    dataset = _SampleDataset(probe, False, encoder)

    def job(indices: list[int]) -> tuple[LoadedBatch, T]:
        batch = read_batch(dataset, indices)
        return batch, work(batch)

    yield from in_order((list(part) for part in batch_ranges(len(probe), batch_size, start)), job, lanes)
