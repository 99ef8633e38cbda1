"""The streaming dissection engine: one forward pass over the probe set, then IoU from cached maps.

Pass 1 runs the network once per image, capturing every requested layer in the same forward pass
(stopping after the deepest), feeds the exact quantile, top-k (with the top images' maps, for the report)
and histogram statistics, and appends each layer's activations to an on-disk cache (so memory does not
grow with the probe set; sparse: only the cells that may reach the final threshold and their neighbours,
below a bound from the quantile, ``cache.py``). Its loader workers decode each image and label map once and
encode the labels, which go to an on-disk label cache.
Pass 2 needs the thresholds, so it replays the cached maps — no second forward pass, no file of the probe
set reopened — upsamples them to the label resolution and accumulates intersections and unions with the
cached labels, all layers per batch.
Both passes checkpoint their statistics every few seconds; a killed run resumes from the last checkpoint
and, because every statistic is exact and order-independent, ends with identical results.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitscope.batching import batch_ranges
from unitscope.capture import LayerCapture
from unitscope.data.probe import ProbeSample, ProbeSet, has_labels
from unitscope.dissection.cache import ActivationCache
from unitscope.dissection.label_cache import LabelCache
from unitscope.dissection.loader import LoadedBatch, in_order, iterate_batches, lane_batches, plan_loading
from unitscope.dissection.pass_two import PassTwoMasks
from unitscope.dissection.phases import PhaseTimes
from unitscope.dissection.run_files import check_cache_file, check_layer_shape, check_resume_state
from unitscope.dissection.settings import DissectSettings
from unitscope.dissection.sparse_masks import WindowedMasks
from unitscope.dissection.threads import available_cores, intra_op_threads, threads_for_small_ops
from unitscope.dissection.upsample import Upsampler
from unitscope.distributed import Group
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.progress import progress_bar
from unitscope.stats import ConceptOverlap, LabelBatch, StatsError, TopImages, TopQuantile
from unitscope.stats.evidence import LabelEvidence
from unitscope.stats.histogram import ActivationHistogram
from unitscope.stats.labels import LabelEncoder

LOG = logging.getLogger(__name__)
LayerShape = tuple[int, int, int]  # units, h, w
LayerStats = tuple[TopQuantile, TopImages, ActivationHistogram]
# Images per forward call on a CPU: the same bytes as the whole batch at once (each image's maps are its own),
# a quarter of the batch's intermediate maps alive at a time (AlexNet at 224 px: conv1's are 25 MB for 32
# images), and at one thread no slower (ResNet-18 ~10 % faster: the maps stay in the caches).
FORWARD_CHUNK = 8
TOP_MAPS_BYTES = 64 * 2**20  # largest float32 [U, k, h, w] of top-image maps kept per layer


def top_map_pixels(name: str, shape: LayerShape, k: int) -> int:
    """h * w when a layer's top-k maps fit in TOP_MAPS_BYTES (the report draws from them), else 0."""
    units, h, w = shape
    size = 4 * units * k * h * w
    if size <= TOP_MAPS_BYTES:
        return h * w
    LOG.warning("layer %s: its top-%d maps would take %.0f MiB (over %.0f MiB), so they are not kept; "
                "the report reruns the network on its top images", name, k, size / 2**20, TOP_MAPS_BYTES / 2**20)
    return 0


@dataclass
class LayerStatistics:
    """What the engine knows about one layer when both passes are done."""

    name: str
    path: str
    shape: LayerShape
    thresholds: torch.Tensor  # [U] float64
    top_indices: torch.Tensor  # [U, k]
    top_scores: torch.Tensor  # [U, k]
    top_peaks: torch.Tensor  # [U, k] flat index into h*w
    iou: torch.Tensor | None  # [U, L] float64 (column = label number), None without labels
    overlap: ConceptOverlap | None
    evidence: LabelEvidence | None = None  # significance and bootstrap counts (stats/evidence.py)
    top_maps: torch.Tensor | None = None  # [U, k, h, w] float32 maps of the top images (None: not kept)
    histogram: ActivationHistogram | None = None  # every activation of each unit, binned (stats/histogram.py)


@dataclass
class EngineOutcome:
    layers: list[LayerStatistics]
    skipped: dict[int, str]
    seconds: float
    phases: PhaseTimes  # wall and CPU of pass 1, the thresholds, pass 2 (the run adds the tables and nulls)


def _load_state(path: Path) -> object:
    """A pass's resumable state (tensors, numbers, strings only: never unpickles arbitrary objects), unchecked."""
    if not path.exists():
        return {}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a state file damaged outside unitscope (writes are atomic)
        raise UsageError(f"cannot resume from {path} ({type(err).__name__}); pass --overwrite to start afresh") \
            from None
    return state


@contextlib.contextmanager
def _resuming(path: Path) -> Iterator[None]:
    """Statistics restored from checkpoint ``path``: a state that does not fit names the file."""
    try:
        yield
    except (StatsError, KeyError, TypeError, ValueError, AttributeError) as err:
        detail = f"no {err}" if isinstance(err, KeyError) else str(err).split(";")[0]
        raise UsageError(f"cannot resume from {path} ({detail}); pass --overwrite to start afresh") from None


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class DissectionEngine:
    """Runs both passes for a set of layers of one model on one probe set, in ``workdir``."""

    def __init__(
        self,
        model: LoadedModel,
        layers: dict[str, str],
        probe: ProbeSet,
        settings: DissectSettings,
        workdir: Path,
        geometry: Callable[[str], tuple[float, float] | None],
        progress: bool = True,
        group: Group | None = None,
        thresholds: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.fixed_thresholds = thresholds  # per layer [U]: used instead of the quantile's (the colour control)
        self.group = group or Group()  # a shard of the probe set when run under torchrun
        self.layers = layers  # display name -> module path
        self.probe = probe
        self.settings = settings
        self.workdir = workdir
        self.geometry = geometry
        self.progress = progress
        self.device = model.device
        self.loading = plan_loading(settings.workers, self.device.type, ranks=self.group.world)
        self.workers = self.loading.processes
        labelled = has_labels(probe)
        self.encoder = LabelEncoder(probe.concepts, probe.label_size) if labelled else None
        self.label_state: dict[str, Any] | None = None  # the label cache's state once pass 1 is done
        self.cache_states: dict[str, object] = {}  # each layer's activation cache state at the last checkpoint

    # ------------------------------------------------------------------ pass 1
    def _cache_path(self, name: str) -> Path:
        return self.workdir / f"activations-{name.replace('/', '_')}.f32"

    def _open_cache(self, name: str, shape: tuple[int, int, int], state: object) -> ActivationCache:
        """A layer's cache, resumed from its checkpointed ``state`` (None: a new, empty file)."""
        cache = ActivationCache(self._cache_path(name), shape, len(self.probe), fresh=state is None)
        try:
            cache.resume(state)
        except UsageError:
            cache.close()
            raise
        return cache

    def cache_bound(self, name: str, quantile: TopQuantile) -> torch.Tensor | None:
        """[U] lower bounds of a layer's final thresholds, for the cache to keep only what may reach them."""
        if self.fixed_thresholds is not None:
            return self.fixed_thresholds[name].to(torch.float32)
        return quantile.floor()

    def _open_labels(self, state: dict[str, Any] | None) -> LabelCache | None:
        """The label cache, resumed from ``state`` (None: empty); None without labels."""
        if self.encoder is None:
            return None
        encoder = self.encoder
        cache = LabelCache(self.workdir / "labels.bin", len(self.probe), encoder.num_pixels,
                           len(encoder.categories), encoder.num_labels)
        cache.resume(state)
        return cache

    @staticmethod
    def _check_one_size(samples: list[ProbeSample]) -> None:
        first = samples[0].image.shape
        odd = [s for s in samples if s.image.shape != first]
        if odd:
            (h, w), (h0, w0) = odd[0].image.shape[:2], first[:2]
            raise UsageError(
                f"image {odd[0].index} is {w}×{h} but image {samples[0].index} is {w0}×{h0}; "
                "give probe images of one size or pass --input-size"
            )

    def _input_batch(self, samples: list[ProbeSample]) -> torch.Tensor:
        """The network's input for samples of one size (``_check_one_size``)."""
        return self.model.preprocess.batch([s.image for s in samples], self.device)

    def _new_stats(self, name: str, shape: tuple[int, int, int]) -> LayerStats:
        units, h, w = shape
        total = self._total_images() * h * w
        k = self.settings.topk
        return (TopQuantile(units, self.settings.quantile, total), TopImages(units, k, top_map_pixels(name, shape, k)),
                ActivationHistogram(units))

    def _total_images(self) -> int:
        """Images of the whole probe set (a torchrun shard knows the size of what it was cut from)."""
        return int(getattr(self.probe, "full_size", len(self.probe)))

    def _pass_one(self) -> tuple[dict[str, LayerShape], dict[str, LayerStats], dict[int, str]]:
        """Shapes, quantile, top-k (with maps) and histogram statistics of every layer, and the skipped images."""
        state_path = self.workdir / "pass1.pt"
        state = check_resume_state(_load_state(state_path), state_path, self.layers, len(self.probe), ("layers",))
        start = int(state.get("next_index", 0))
        skipped: dict[int, str] = dict(state.get("skipped", {}))
        shapes: dict[str, LayerShape] = {}
        stats: dict[str, LayerStats] = {}
        for name, saved in dict(state.get("layers", {})).items():
            shapes[name] = check_layer_shape(saved.get("shape"), state_path, name)
            stats[name] = self._new_stats(name, shapes[name])
            with _resuming(state_path):
                stats[name][0].load_state_dict(saved["quantile"])
                stats[name][1].load_state_dict(saved["topk"])
                stats[name][2].load_state_dict(saved["histogram"])
                self.cache_states[name] = saved["cache"]
                check_cache_file(self._cache_path(name), int(saved["cache"]["end"]), state_path)
        # A checkpoint of an older unitscope has no label cache: pass 2 then reads the labels from the probe.
        cached = start == 0 or "labels" in state
        self.label_state = state.get("labels") if cached else None
        n = len(self.probe)
        if start >= n:
            return shapes, stats, skipped
        caches = {name: self._open_cache(name, shape, self.cache_states[name]) for name, shape in shapes.items()}
        labels = self._open_labels(self.label_state) if cached else None

        def checkpoint(next_index: int) -> None:
            for name, cache in caches.items():
                cache.flush()
                self.cache_states[name] = cache.state_dict()
            if labels is not None:
                labels.flush()
            saved_layers = {
                name: {"shape": shapes[name], "quantile": q.state_dict(), "topk": t.state_dict(),
                       "histogram": h.state_dict(), "cache": self.cache_states[name]}
                for name, (q, t, h) in stats.items()
            }
            saved: dict[str, Any] = {"next_index": next_index, "skipped": skipped, "layers": saved_layers}
            if labels is not None:
                saved["labels"] = self.label_state = labels.state_dict()
            _atomic_save(saved, state_path)

        last_save = time.monotonic()
        with (progress_bar(total=n, initial=start, desc="pass 1/2: activations", unit="img",
                           disable=not self.progress) as bar,
              LayerCapture(self.model.module, list(self.layers.values())) as capture,
              intra_op_threads(self.loading.threads)):
            for batch, outputs in self._forward_batches(capture, start, labels is not None):
                good = self._accept(batch, skipped)
                if labels is not None and good and batch.labels is not None:
                    encoded = dict(zip(batch.indices, batch.labels, strict=True))
                    labels.write([i for i, _ in good], [encoded[i] for i, _ in good])  # type: ignore[misc]
                if good and outputs is not None:
                    indices = torch.tensor([i for i, _ in good], dtype=torch.int64)
                    for name, path in self.layers.items():
                        acts = outputs[path]
                        if acts.dim() != 4:
                            raise UsageError(
                                f"layer {name} has output shape {tuple(acts.shape)}, not [batch, units, h, w]; "
                                "dissect a convolutional or pooling layer"
                            )
                        flat = acts.flatten(2)  # a view, whatever the layout (channels-last maps too)
                        scores = flat.amax(dim=2)  # without indices: several times faster than max
                        low = flat.amin(dim=2)  # with the maxima, the extremes the cache needs
                        # max and min propagate NaN and reach any infinity: the per-map extremes tell whether
                        # every activation is finite without a pass over them all.
                        if not (torch.isfinite(scores).all() and torch.isfinite(low).all()):
                            raise UsageError(
                                f"layer {name} produced NaN or infinite activations on image {int(indices[0])}…; "
                                "check the weights and the --mean/--std normalisation"
                            )
                        if name not in stats:
                            shapes[name] = tuple(acts.shape[1:])  # type: ignore[assignment]
                            stats[name] = self._new_stats(name, shapes[name])
                            caches[name] = self._open_cache(name, shapes[name], None)
                        quantile, topk, histogram = stats[name]
                        cache = caches[name]
                        units = acts.shape[1]
                        quantile.update(acts.transpose(0, 1).reshape(units, -1))
                        topk.update(scores, indices.to(acts.device), topk.candidate_peaks(flat, scores),
                                    flat if topk.map_pixels else None)
                        histogram.update(flat)
                        cache.write(indices.numpy(), acts, self.cache_bound(name, quantile), (low, scores))
                bar.update(len(batch.indices))
                if time.monotonic() - last_save > self.settings.checkpoint_seconds:
                    checkpoint(batch.indices[-1] + 1)
                    last_save = time.monotonic()
        if not stats:
            raise UsageError("every probe image was unreadable; check --data")
        checkpoint(n)
        for cache in caches.values():
            cache.close()
        if labels is not None:
            labels.close()
        return shapes, stats, skipped

    def _forward_batches(self, capture: LayerCapture, start: int, encode: bool
                         ) -> Iterator[tuple[LoadedBatch, dict[str, torch.Tensor] | None]]:
        """Pass 1's batches from ``start`` in order, each with the captured layers of its readable samples (None:
        none, or the batch is refused by ``_accept``), in lanes (``dissection/loader.py``) or one after another."""
        encoder = self.encoder if encode else None

        def forward(batch: LoadedBatch) -> dict[str, torch.Tensor] | None:
            good = [s for s in batch.samples if s is not None]
            if not good or batch.misfit is not None or (batch.errors and not self.settings.skip_bad):
                return None
            self._check_one_size(good)
            chunk = FORWARD_CHUNK if self.device.type == "cpu" else len(good)
            parts = []
            for first in range(0, len(good), chunk):
                with self.model.autocast():  # --amp: reduced-precision forward, float32 maps
                    parts.append(capture.run(self._input_batch(good[first:first + chunk])))
            return parts[0] if len(parts) == 1 else {path: torch.cat([p[path] for p in parts]) for path in parts[0]}

        size = self.settings.batch_size
        if self.loading.lanes > 1:
            yield from lane_batches(self.probe, start, size, self.loading.lanes, forward, encoder)
            return
        for batch in iterate_batches(self.probe, start, size, self.workers, encoder=encoder):
            yield batch, forward(batch)

    def _accept(self, batch: LoadedBatch, skipped: dict[int, str]) -> list[tuple[int, ProbeSample]]:
        """The batch's readable samples; unreadable ones are fatal unless --skip-bad."""
        if batch.misfit is not None:
            raise StatsError(batch.misfit)
        if batch.errors and not self.settings.skip_bad:
            message = next(iter(batch.errors.values()))
            raise UsageError(f"{message} (pass --skip-bad to skip unreadable probe images)")
        skipped.update(batch.errors)
        return [(i, s) for i, s in zip(batch.indices, batch.samples, strict=True) if s is not None]

    # ------------------------------------------------------------------ pass 2
    def _pass_two(
        self, shapes: dict[str, LayerShape], thresholds: dict[str, torch.Tensor],
        skipped: dict[int, str],
    ) -> tuple[dict[str, ConceptOverlap], dict[str, LabelEvidence]]:
        state_path = self.workdir / "pass2.pt"
        state = check_resume_state(_load_state(state_path), state_path, self.layers, len(self.probe),
                                   ("layers", "evidence"))
        start = int(state.get("next_index", 0))
        overlaps: dict[str, ConceptOverlap] = {}
        evidence: dict[str, LabelEvidence] = {}
        maskers: dict[str, WindowedMasks] = {}
        caches: dict[str, ActivationCache] = {}
        label_size = self.probe.label_size
        input_size = self.model.preprocess.input_size or self.probe.image_size
        for name in self.layers:
            shape = shapes[name]
            overlap = ConceptOverlap(shape[0], self.probe.concepts)
            evidence[name] = LabelEvidence(shape[0], overlap.num_labels, len(overlap.categories), shape[1] * shape[2],
                                           label_size[0] * label_size[1], grid=(shape[1], shape[2]),
                                           spill=self.workdir / f"evidence-{name.replace('/', '_')}")
            with _resuming(state_path):
                for stat, section in ((overlap, "layers"), (evidence[name], "evidence")):
                    saved = state.get(section, {}).get(name)
                    if saved is not None:
                        stat.load_state_dict(saved)
            overlaps[name] = overlap
            field = self.geometry(self.layers[name])
            stride, begin = field if field is not None else (None, None)
            maskers[name] = WindowedMasks.build(Upsampler.build(
                self.settings.upsample, shape[1:], label_size, input_size, stride, begin
            ).to(self.device))
            caches[name] = self._open_cache(name, shape, self.cache_states[name])
        n = len(self.probe)
        if start >= n:
            return overlaps, evidence

        def checkpoint(next_index: int) -> None:
            _atomic_save({"next_index": next_index, "layers": {k: o.state_dict() for k, o in overlaps.items()},
                          "evidence": {k: e.state_dict() for k, e in evidence.items()}}, state_path)

        limits = {name: t.to(self.device, torch.float32) for name, t in thresholds.items()}
        for name, limit in limits.items():
            caches[name].check_covers(limit.cpu(), name)

        measure = PassTwoMasks(caches, maskers, limits, {name: e.moments for name, e in evidence.items()},
                               self.device)
        last_save = time.monotonic()
        lanes = max(1, self.loading.lanes)  # at least one thread measures the next batch while this one folds
        with (progress_bar(total=n, initial=start, desc="pass 2/2: IoU", unit="img", disable=not self.progress) as bar,
              intra_op_threads(threads_for_small_ops(available_cores()))):
            for indices, rows, labels, layers in in_order(self._label_batches(start, skipped), measure, lanes):
                if len(rows):
                    global_rows = self.group.global_indices(torch.from_numpy(rows)).numpy()  # bootstrap keys
                    for name, got in layers.items():
                        overlaps[name].update_counts(got.counts, got.image_of, got.unit_of, labels)
                        evidence[name].update(got.pixels, got.image_of, got.unit_of, labels, global_rows, got.counts,
                                              got.clumps)
                bar.update(len(indices))
                if time.monotonic() - last_save > self.settings.checkpoint_seconds:
                    checkpoint(indices[-1] + 1)
                    last_save = time.monotonic()
        checkpoint(n)
        for cache in caches.values():
            cache.close()
        for kept in evidence.values():
            kept.counts.close()
        return overlaps, evidence

    def _label_batches(self, start: int, skipped: dict[int, str]) -> Iterator[tuple[list[int], np.ndarray, LabelBatch]]:
        """Per batch from ``start``: its indices, the rows counted (not skipped) and their labels.

        From the label cache pass 1 wrote; only a run resumed from an older checkpoint reads the probe again.
        """
        n, size, encoder = len(self.probe), self.settings.batch_size, self.encoder
        if encoder is None:
            return
        counted = np.array([i for i in range(n) if i not in skipped], dtype=np.int64)
        cache = self._open_labels(self.label_state) if self.label_state is not None else None
        if cache is not None and not cache.complete(counted):
            cache.close()
            cache = None
        if cache is None:
            for batch in iterate_batches(self.probe, start, size, self.workers, labels_only=True, encoder=encoder):
                if batch.misfit is not None:
                    raise StatsError(batch.misfit)
                good = [(i, lab) for i, lab in zip(batch.indices, batch.labels or [None] * len(batch.indices),
                                                    strict=True) if lab is not None and i not in skipped]
                yield (batch.indices, np.array([i for i, _ in good], dtype=np.int64),
                       LabelBatch.from_encoded([lab for _, lab in good], encoder, self.device))
            return
        try:
            for part in batch_ranges(n, size, start):
                indices = list(part)
                rows = np.array([i for i in indices if i not in skipped], dtype=np.int64)
                yield indices, rows, LabelBatch.from_encoded(cache.read(rows), encoder, self.device)
        finally:
            cache.close()

    # ------------------------------------------------------------------ both
    def run(self) -> EngineOutcome:
        started = time.perf_counter()
        phases = PhaseTimes()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with phases.measure("pass 1"):
            shapes, stats, skipped = self._pass_one()
        group = self.group
        with phases.measure("thresholds"):
            stats = {k: (group.merge_quantile(q), group.merge_topk(t), group.merge_histogram(h))
                     for k, (q, t, h) in stats.items()}
            all_skipped = group.merge_skipped(skipped)
            results, thresholds = self._pass_one_results(shapes, stats, self._total_images() - len(all_skipped))
        if has_labels(self.probe):
            with phases.measure("pass 2"):
                overlaps, evidence = self._pass_two(shapes, thresholds, skipped)
            for name, overlap in overlaps.items():
                overlap = group.merge_overlap(overlap)
                results[name].iou = overlap.iou().cpu()
                results[name].overlap = overlap
                results[name].evidence = group.merge_evidence(evidence[name])
        return EngineOutcome(list(results.values()), all_skipped, time.perf_counter() - started, phases)

    def _pass_one_results(
        self, shapes: dict[str, LayerShape], stats: dict[str, LayerStats],
        counted: int,
    ) -> tuple[dict[str, LayerStatistics], dict[str, torch.Tensor]]:
        """Each layer's statistics from pass 1 (thresholds, top images, histogram) and its thresholds."""
        results: dict[str, LayerStatistics] = {}
        thresholds: dict[str, torch.Tensor] = {}
        for name, path in self.layers.items():
            shape = shapes[name]
            quantile, topk, histogram = stats[name]
            if self.fixed_thresholds is not None:
                thresholds[name] = self.fixed_thresholds[name].to(torch.float64)
            else:
                thresholds[name] = quantile.thresholds(count=counted * shape[1] * shape[2])
            indices, scores, peaks = topk.result()
            maps = topk.maps()
            results[name] = LayerStatistics(name, path, shape, thresholds[name].cpu(), indices.cpu(),
                                            scores.cpu(), peaks.cpu(), None, None, histogram=histogram,
                                            top_maps=None if maps is None else maps.cpu().view(*indices.shape,
                                                                                                *shape[1:]))
        return results, thresholds
