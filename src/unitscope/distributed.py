"""Running one command on several processes (``torchrun``): who am I, which images are mine, and merging.

``torchrun`` (or ``python -m torch.distributed.run``) starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` in the environment. :func:`session` joins them with
``torch.distributed`` (gloo on CPU, NCCL on CUDA) under a timeout, so a rank that dies makes the others
fail with one line instead of hanging. Each rank takes a strided, non-padding shard: every ``world``-th
batch of one process's batches (strided by batch rather than by image, so each image is computed in the
same batch as without distribution and even batch-dependent kernels give the same bits), never a
padding sampler such as ``DistributedSampler``, which repeats indices and would count images twice. The
statistics, which are exact multisets and sums, are merged with collectives:

- ``TopQuantile``: every rank's kept top values are gathered and merged, so each rank holds the exact
  global multiset of largest values and computes the same thresholds as one process would;
- ``TopImages``: local positions are mapped back to global image indices (the map is increasing, so ties
  still go to the lower index) and the gathered tables merged;
- ``ConceptOverlap``: intersections and unions are int64 sums, reduced with ``all_reduce``;
- ``TopImages`` keeps its top images' maps through the merge; ``ActivationHistogram`` counts are int64 sums.

Without ``WORLD_SIZE`` > 1 everything here is a no-op (:class:`Group` of one), so the engine has a single
code path.
"""

from __future__ import annotations

import atexit
import copy
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from unitscope.batching import batch_count, batch_ranges
from unitscope.data.probe import ConceptTable, ProbeSample, ProbeSet
from unitscope.errors import UsageError
from unitscope.stats import ConceptOverlap, TopImages, TopQuantile
from unitscope.stats.bootstrap import ImageCounts
from unitscope.stats.evidence import LabelEvidence
from unitscope.stats.histogram import ActivationHistogram

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_TIMEOUT_SECONDS: float = 1800.0
TIMEOUT_ENV: str = "UNITSCOPE_DIST_TIMEOUT"
TRAFFIC_ENV: str = "UNITSCOPE_DIST_TRAFFIC"


class PeerFailure(UsageError):
    """Another rank stopped (killed, or failed on its own input): keep the checkpoints for the rerun."""


@dataclass
class Group:
    """This process's place among the ranks; a world of one is a plain single-process run."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    sent_bytes: int = field(default=0)
    positions: torch.Tensor | None = field(default=None)  # global index of each local position

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, batch_size: int = 1) -> list[int]:
        """The global indices this rank handles: every ``world``-th batch from batch ``rank``, no padding.

        Batches are those of one process (``[b * batch_size, (b + 1) * batch_size)``), so every image is
        computed in the same batch as without distribution: even kernels whose rounding depends on the
        batch give the same bits.
        """
        if batch_size < 1:
            raise UsageError(f"batch size must be positive, got {batch_size}")
        return [i for part in list(batch_ranges(n, batch_size))[self.rank::self.world] for i in part]

    def shard_probe(self, probe: ProbeSet, batch_size: int) -> ShardProbe:
        """This rank's part of ``probe``; later merges map its positions back to global indices."""
        if self.world > batch_count(len(probe), batch_size):
            raise UsageError(
                f"{self.world} ranks but only {batch_count(len(probe), batch_size)} batches of {batch_size} images; "
                "use fewer ranks, a smaller --batch-size or more probe images"
            )
        shard = ShardProbe(probe, self.shard(len(probe), batch_size))
        self.positions = torch.tensor(shard.indices, dtype=torch.int64)
        return shard

    def global_indices(self, local: torch.Tensor) -> torch.Tensor:
        """Global probe indices of local shard positions (increasing, so ties keep their order)."""
        if self.positions is None:
            return local.clone()
        return self.positions[local.long()]

    # ------------------------------------------------------------------ collectives
    def _failed(self, err: Exception) -> PeerFailure:
        return PeerFailure(
            f"rank {self.rank}: another rank stopped during a merge ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no message'}); see that rank's error, mend it and rerun "
            "the same command to resume"
        )

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (a list of one without distribution)."""
        if not self.active:
            return [obj]
        self.sent_bytes += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        parts: list[object] = [None] * self.world
        try:
            dist.all_gather_object(parts, obj)
        except (RuntimeError, ValueError) as err:
            raise self._failed(err) from err
        return parts  # type: ignore[return-value]

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` in rank order on rank 0, an empty list elsewhere (half the traffic of all_gather)."""
        if not self.active:
            return [obj]
        self.sent_bytes += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        parts: list[object] | None = [None] * self.world if self.is_main else None
        try:
            dist.gather_object(obj, parts, dst=0)
        except (RuntimeError, ValueError) as err:
            raise self._failed(err) from err
        return parts if parts is not None else []  # type: ignore[return-value]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box: list[object] = [obj if self.is_main else None]
        if self.is_main:
            self.sent_bytes += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        try:
            dist.broadcast_object_list(box, src=0)
        except (RuntimeError, ValueError) as err:
            raise self._failed(err) from err
        return box[0]  # type: ignore[return-value]

    def sum_int64(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum int64 tensors over the ranks, in place (exact: integer addition is associative)."""
        if not self.active:
            return
        for tensor in tensors:
            if tensor.dtype != torch.int64:
                raise UsageError(f"sum_int64 needs int64 tensors, got {tensor.dtype}")
            self.sent_bytes += tensor.numel() * 8
            moved = tensor.to(self._comm_device())
            try:
                dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            except (RuntimeError, ValueError) as err:
                raise self._failed(err) from err
            tensor.copy_(moved.to(tensor.device))

    def barrier(self) -> None:
        if not self.active:
            return
        try:
            dist.barrier()
        except (RuntimeError, ValueError) as err:
            raise self._failed(err) from err

    def work_name(self) -> str:
        """This rank's checkpoint folder name: ranks resume their own shards."""
        return f"rank{self.rank}-of-{self.world}"

    def _comm_device(self) -> torch.device:
        return torch.device(self.device) if self.device.startswith("cuda") else torch.device("cpu")

    # ------------------------------------------------------------------ statistics
    def merge_quantile(self, mine: TopQuantile) -> TopQuantile:
        """The TopQuantile of the whole probe set from every rank's part (same on every rank)."""
        if not self.active:
            return mine
        parts = self.all_gather({k: v.cpu() if isinstance(v, torch.Tensor) else v
                                 for k, v in mine.state_dict().items()})
        merged = TopQuantile(mine.num_units, mine.quantile, mine.total_per_unit, dtype=mine.dtype)
        for state in parts:
            part = TopQuantile(mine.num_units, mine.quantile, mine.total_per_unit, dtype=mine.dtype)
            part.load_state_dict(state)
            merged.merge(part)
        return merged

    def merge_topk(self, mine: TopImages) -> TopImages:
        """The TopImages of the whole probe set, ``mine`` holding local shard positions as indices."""
        if not self.active:
            return mine
        state = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in mine.state_dict().items()}
        local = state["indices"]
        if not isinstance(local, torch.Tensor):
            raise UsageError("TopImages state has no index table; merge states written by TopImages.state_dict()")
        state["indices"] = self.global_indices(local)
        merged = TopImages(mine.num_units, mine.k, mine.map_pixels)
        for part_state in self.all_gather(state):
            part = TopImages(mine.num_units, mine.k, mine.map_pixels)
            part.load_state_dict(part_state)
            merged.merge(part)
        return merged

    def merge_histogram(self, mine: ActivationHistogram) -> ActivationHistogram:
        """Activation counts summed over the ranks (int64, same on every rank)."""
        if not self.active:
            return mine
        counts = mine.counts
        self.sum_int64([counts])
        merged = ActivationHistogram(mine.num_units)
        merged.load_state_dict({"num_units": mine.num_units, "counts": counts.cpu()})
        return merged

    def merge_skipped(self, mine: dict[int, str]) -> dict[int, str]:
        """Unreadable images of all ranks, by global index."""
        if not self.active:
            return dict(mine)
        local = {int(self.global_indices(torch.tensor(i))): message for i, message in mine.items()}
        merged: dict[int, str] = {}
        for part in self.all_gather(local):
            merged.update(part)
        return dict(sorted(merged.items()))

    def merge_evidence(self, mine: LabelEvidence | None) -> LabelEvidence | None:
        """Significance moments and per-image counts of every rank, merged in rank order (rank 0 keeps them)."""
        if not self.active or mine is None:
            return mine
        parts = self.all_gather(mine.export_state())  # per-image rows in memory (a rank's spill files are its own)
        merged = LabelEvidence.__new__(LabelEvidence)
        merged.num_units = mine.num_units
        merged.moments = mine.moments
        merged.counts = ImageCounts(mine.counts.num_units, mine.counts.num_labels)  # in memory: work folders go
        merged.load_state_dict(parts[0])
        for state in parts[1:]:
            other = LabelEvidence.__new__(LabelEvidence)
            other.num_units = mine.num_units
            other.moments = copy.deepcopy(mine.moments)
            other.counts = ImageCounts(mine.counts.num_units, mine.counts.num_labels)  # in memory
            other.load_state_dict(state)
            merged.merge(other)
        return merged

    def merge_overlap(self, mine: ConceptOverlap) -> ConceptOverlap:
        """Intersections, label and unit areas summed over the ranks (int64, in place)."""
        if not self.active:
            return mine
        images = torch.tensor([mine.num_images], dtype=torch.int64)
        self.sum_int64([mine.intersection, mine.label_area, mine.unit_area, images])
        mine.num_images = int(images.item())
        return mine


def batches_in_order(group: Group, n: int, batch_size: int, compute: Callable[[range], R],
                     consume: Callable[[range, R], None]) -> None:
    """``compute`` this rank's batches of ``[0, n)`` (the shard of :meth:`Group.shard`), ``consume`` all on rank 0.

    For per-image commands (``segment``, ``cam``) whose output is written by rank 0 alone: in round r,
    rank k computes batch ``r * world + k``; rank 0 gathers the round's results and consumes them in batch
    order, so whatever it accumulates or writes is what one process would have, batch for batch. One
    round's results are in flight at a time (memory stays flat in n). A usage error on any rank, in
    ``compute`` or in rank 0's ``consume``, stops every rank with that message after the round.
    """
    ranges = list(batch_ranges(n, batch_size))
    batches = len(ranges)
    for first in range(0, batches, group.world):
        mine = first + group.rank
        outcome: tuple[str | None, R | None] = (None, None)
        if mine < batches:
            try:
                outcome = (None, compute(ranges[mine]))
            except UsageError as err:
                if not group.active:
                    raise
                outcome = (str(err), None)
        parts = group.gather(outcome)
        problem = next((message for message, _ in parts if message is not None), None)
        if group.is_main and problem is None:
            try:
                for b, (_, result) in enumerate(parts, start=first):
                    if b < batches:
                        consume(ranges[b], result)  # type: ignore[arg-type]
            except UsageError as err:
                if not group.active:
                    raise
                problem = str(err)
        problem = group.broadcast(problem)
        if problem is not None:
            raise UsageError(problem)


class ShardProbe:
    """Some images of a probe set (a rank's shard), seen as a probe set of its own.

    Position j is global image ``indices[j]``; samples keep their global ``index``.
    """

    def __init__(self, probe: ProbeSet, indices: Sequence[int]) -> None:
        self.probe = probe
        self.indices = list(indices)
        self.full_size = len(probe)
        self.name: str = probe.name
        self.concepts: ConceptTable = probe.concepts
        self.image_size: tuple[int, int] = probe.image_size
        self.label_size: tuple[int, int] = probe.label_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> ProbeSample:
        return self.probe[self.indices[position]]

    def load_labels(self, position: int) -> ProbeSample:
        loader = getattr(self.probe, "load_labels", None)
        index = self.indices[position]
        sample: ProbeSample = loader(index) if loader is not None else self.probe[index]
        return sample


def is_main_process() -> bool:
    """Whether this process should talk to the user: rank 0 of a torchrun job, or a plain process."""
    return _env_int("RANK", 0) == 0


def timeout_seconds() -> float:
    """How long a collective waits for a silent rank (``UNITSCOPE_DIST_TIMEOUT`` seconds, default 30 min)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError as err:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from err
    if value <= 0:
        raise UsageError(f"{TIMEOUT_ENV} must be positive, got {raw!r}")
    return value


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise UsageError(f"environment variable {name} must be an integer, got {raw!r}") from err


@contextmanager
def session(device: str = "cpu") -> Iterator[Group]:
    """Join the ranks started by torchrun (if any) for the duration of one command.

    CUDA ranks use NCCL and the GPU ``cuda:LOCAL_RANK``; CPU ranks use gloo. The process group is
    created once per process and torn down when the process exits.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world <= 1:
        yield Group(0, 1, device)
        return
    if not 0 <= rank < world:
        raise UsageError(f"RANK {rank} is outside WORLD_SIZE {world}; start ranks with torchrun")
    cuda = device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise UsageError(f"rank {rank}: --device {device} asked for CUDA but no GPU is visible; use --device cpu")
        local = _env_int("LOCAL_RANK", 0)
        if local >= torch.cuda.device_count():
            raise UsageError(f"rank {rank}: LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} "
                             "GPU(s); start at most that many ranks per node (--nproc_per_node)")
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_seconds()))
        except (RuntimeError, ValueError) as err:
            raise UsageError(f"rank {rank}: could not join the other ranks ({err}); start with torchrun") from err
        # Kept for the life of the process: a second init on torchrun's store would wait forever, and a
        # script may run several commands in one launch.
        atexit.register(_destroy)
    group = Group(rank, world, device)
    try:
        yield group
    finally:
        _record_traffic(group)


def _record_traffic(group: Group) -> None:
    """With ``UNITSCOPE_DIST_TRAFFIC=DIR``, add this rank's sent bytes to ``DIR/rank<r>.txt`` (benchmarks)."""
    folder = os.environ.get(TRAFFIC_ENV)
    if folder:
        with open(os.path.join(folder, f"rank{group.rank}.txt"), "a") as out:
            out.write(f"{group.sent_bytes}\n")


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
