"""The sparse activation cache (issue #29): pass 2 computes the dense cache's bits from a small fraction of it.

A row keeps, per unit, the cells above ``bound - margin`` and their 3x3 neighbours, and reads the rest back as
the map's minimum. Whatever the threshold at or above the bound, ``Upsampler(map) > threshold`` is then the
same for the row read back as for the original. End to end: a dissection with the sparse cache writes the
same ``units.csv`` and ``iou.npy`` bytes as one that keeps every row whole, in the probe orders that are worst
for the bound (lowest activations first: it rises late; highest first: it is tight early), and after a
resume in the middle of pass 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unitscope.capture import LayerCapture
from unitscope.data import open_probe
from unitscope.data.broden import BrodenProbe
from unitscope.data.broden_export import write_broden
from unitscope.data.probe import ProbeSample
from unitscope.dissection import engine
from unitscope.dissection.cache import ActivationCache, kept_cells
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.dissection.sparse_masks import WindowedMasks
from unitscope.dissection.upsample import Upsampler
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import load_model
from unitscope.stats import TopQuantile

LAYER = "conv5"
N = 24


def _cache(tmp_path: Path, shape: tuple[int, int, int], rows: int = 4) -> ActivationCache:
    return ActivationCache(tmp_path / "acts.f32", shape, rows, fresh=True)


def test_a_row_keeps_its_hot_cells_and_their_neighbours_by_hand(tmp_path: Path) -> None:
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0] = torch.arange(16.0).view(4, 4) - 3  # -3 .. 12; bound 11: hot 12 at (3, 3), and 11 is not hot
    maps[0, 1, 0, 0] = 0.5  # the rest 0; bound 0: zeros are not hot (no margin at a zero bound)
    cache = _cache(tmp_path, (2, 4, 4))
    cache.write(np.array([2]), maps, torch.tensor([11.5, 0.0]))
    back = torch.from_numpy(cache.read(np.array([2])))
    expected = torch.full((2, 4, 4), 0.0)
    expected[0] = -3.0  # the minimum
    expected[0, 2:, 2:] = maps[0, 0, 2:, 2:]  # 12 and its neighbours inside the map
    expected[1, :2, :2] = maps[0, 1, :2, :2]  # 0.5 and its neighbours (zeros, which are the minimum anyway)
    assert torch.equal(back[0], expected)
    # 2 units: fills (4 bytes each), counts (1 byte each, padded to 4) + 4 + 4 kept values (4 bytes each)
    # + 8 positions (1 byte each)
    assert cache.end == 2 * 4 + 4 + 8 * 4 + 8
    assert torch.equal(cache.bound_max, torch.tensor([11.5, 0.0]))
    cache.close()


def test_without_a_bound_rows_are_kept_whole(tmp_path: Path) -> None:
    maps = torch.randn(3, 2, 5, 6)
    cache = _cache(tmp_path, (2, 5, 6))
    cache.write(np.array([0, 1, 3]), maps, None)
    assert np.array_equal(cache.read(np.array([3, 0, 1])), maps[[2, 0, 1]].numpy())
    assert cache.end == 3 * (2 * 4 + 4 + 4 * 2 * 30)  # no positions for units kept whole
    cache.close()


def test_one_row_mixes_units_kept_whole_partly_and_not_at_all(tmp_path: Path) -> None:
    maps = torch.randn(2, 3, 3, 5, generator=torch.Generator().manual_seed(1))
    maps[:, 1, 0, 0] = 50.0  # unit 1: one hot cell in each image
    cache = _cache(tmp_path, (3, 3, 5))
    cache.write(np.array([1, 0]), maps, torch.tensor([-100.0, 10.0, 100.0]))
    back = torch.from_numpy(cache.read(np.array([1, 0])))
    assert torch.equal(back[:, 0], maps[:, 0])  # every cell hot: kept whole, no positions
    assert torch.equal(back[:, 1, :2, :2], maps[:, 1, :2, :2])  # the hot cell and its neighbours
    rest = maps[:, 1].flatten(1).amin(dim=1)[:, None]
    assert torch.equal(back[:, 1, 2:].flatten(1), rest.expand(2, 5)) and torch.equal(back[:, 1, :, 2:].flatten(1),
                                                                                    rest.expand(2, 9))
    assert torch.equal(back[:, 2], maps[:, 2].flatten(1).amin(dim=1)[:, None, None].expand(2, 3, 5))
    cache.close()


def _tricky_maps(generator: torch.Generator, count: int, h: int, w: int, threshold: float) -> torch.Tensor:
    """Maps with cells exactly at the threshold, a float32 step either side of it, negatives and zeros."""
    scale = max(abs(threshold), 0.3)
    maps = torch.randn(count, h, w, generator=generator) * scale
    pick = torch.rand(count, h, w, generator=generator)
    t = torch.tensor(threshold, dtype=torch.float32)
    maps = torch.where(pick < 0.1, t, maps)
    maps = torch.where((pick >= 0.1) & (pick < 0.2), torch.nextafter(t, torch.tensor(-np.inf)), maps)
    maps = torch.where((pick >= 0.2) & (pick < 0.25), torch.nextafter(t, torch.tensor(np.inf)), maps)
    return torch.where((pick >= 0.25) & (pick < 0.4), 0.0, maps).clamp(min=-2 * scale)


@pytest.mark.parametrize("mode", ["bilinear", "rf"])
@pytest.mark.parametrize("feature", [(7, 7), (13, 9), (1, 3)])
def test_masks_from_the_rows_read_back_equal_the_dense_ones(tmp_path: Path, mode: str,
                                                           feature: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(7)
    units, (h, w) = 6, feature
    thresholds = torch.tensor([0.7, 0.7, 2.5, -1.0, 0.0, 0.7])
    # Bounds at the threshold, below it, a negative one below it (the minimum then matters), at zero.
    bounds = torch.tensor([0.7, 0.5, 2.5, -1.5, 0.0, 0.6999])
    maps = torch.stack([_tricky_maps(generator, 16, h, w, float(t)) for t in thresholds], dim=1)
    maps[:, 4] = maps[:, 4].clamp(min=0)  # a ReLU unit at threshold 0
    cache = _cache(tmp_path, (units, h, w), rows=16)
    cache.write(np.arange(16), maps, bounds)
    back = torch.from_numpy(cache.read(np.arange(16)))
    assert not torch.equal(back, maps)  # the cache did drop cells
    upsampler = Upsampler.build(mode, (h, w), (23, 17), (112, 112), 16.0, 7.5)
    windowed = WindowedMasks.build(upsampler)
    for threshold_shift in (0.0, 0.3):  # the final threshold: at the cache's threshold or above it
        limit = torch.maximum(thresholds, bounds) + threshold_shift
        dense = upsampler(maps) > limit[None, :, None, None]
        assert dense.any() and torch.equal(upsampler(back) > limit[None, :, None, None], dense)
        flat_back, flat_limit = back.flatten(0, 1), limit.repeat(16)
        assert torch.equal(windowed(flat_back, flat_limit).view(dense.shape), dense)
    kept = kept_cells(maps, bounds)
    assert 0 < int(kept.sum()) < kept.numel()
    cache.close()


def test_resume_drops_the_rows_written_after_the_checkpoint(tmp_path: Path) -> None:
    maps = torch.randn(4, 3, 4, 4)
    cache = _cache(tmp_path, (3, 4, 4))
    cache.write(np.array([0, 1]), maps[:2], torch.zeros(3))
    state = cache.state_dict()
    cache.write(np.array([2, 3]), maps[2:], torch.full((3,), 9.0))
    cache.close()
    again = ActivationCache(tmp_path / "acts.f32", (3, 4, 4), 4, fresh=False)
    again.resume(state)
    assert (tmp_path / "acts.f32").stat().st_size == state["end"]
    assert torch.equal(again.bound_max, torch.zeros(3))  # the later rows' bound is forgotten with them
    again.write(np.array([2, 3]), maps[2:], None)
    assert np.array_equal(again.read(np.array([2, 3])), maps[2:].numpy())
    again.close()


@pytest.mark.parametrize("order", ["shuffled", "rising", "falling"])
def test_the_quantile_floor_never_exceeds_the_final_threshold(order: str) -> None:
    values = torch.randn(3, 600, generator=torch.Generator().manual_seed(3)).round(decimals=1)  # many ties
    if order != "shuffled":
        values = values.sort(dim=1, descending=order == "falling").values
    quantile = TopQuantile(3, 0.05, 600)  # keep = 32
    floors = []
    for part in values.split(25, dim=1):
        quantile.update(part)
        floors.append(quantile.floor())
    assert floors[0] is None and floors[1] is not None  # 25 values seen: fewer than keep; then 50
    threshold = quantile.thresholds()
    expected = torch.from_numpy(np.quantile(values.double().numpy(), 0.95, axis=1))
    assert torch.equal(threshold, expected)
    assert all(bool((floor.double() <= threshold).all()) for floor in floors[1:] if floor is not None)
    if order == "falling":  # the largest values came first: the floor is the final keep-th largest at once
        assert torch.equal(floors[1], values[:, 31])


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_broden(tmp_path_factory.mktemp("data") / "broden", open_probe("sceneworld", n=N, size=64),
                        progress=False)


class _Reordered:
    """A probe set's samples in another order (index i is the original's ``order[i]``)."""

    def __init__(self, probe: BrodenProbe, order: list[int]) -> None:
        self.probe, self.order = probe, order
        self.name, self.concepts = "reordered", probe.concepts
        self.image_size, self.label_size = probe.image_size, probe.label_size

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> ProbeSample:
        sample = self.probe[self.order[i]]
        return ProbeSample(i, sample.image, sample.pixel_labels, sample.image_labels)


@pytest.fixture(scope="module")
def orders(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The probe exported with its images by rising and by falling total activation of the layer."""
    probe = BrodenProbe(scenes)
    model = load_model("sceneworld-scene")
    path = resolve_layer(model.module, LAYER)
    with LayerCapture(model.module, [path]) as capture:
        acts = capture.run(model.preprocess.batch([probe[i].image for i in range(N)], model.device))[path]
    rising = [int(i) for i in acts.flatten(1).sum(dim=1).argsort()]
    root = tmp_path_factory.mktemp("orders")
    return {name: write_broden(root / name, _Reordered(probe, order), progress=False)  # type: ignore[arg-type]
            for name, order in (("rising", rising), ("falling", rising[::-1]))}


def _run(data: Path, out: Path, monkeypatch: pytest.MonkeyPatch, dense: bool = False) -> dict[str, object]:
    """Dissect ``data``; what the cache wrote: bytes, rows written with a bound, and the bytes of the results."""
    seen: dict[str, object] = {"bounded": 0, "rows": 0, "end": 0}
    write, close = engine.ActivationCache.write, engine.ActivationCache.close

    def watched_write(self: ActivationCache, rows: np.ndarray, values: torch.Tensor,
                      bound: torch.Tensor | None = None,
                      extremes: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        seen["rows"] = int(seen["rows"]) + len(rows)  # type: ignore[call-overload]
        seen["bounded"] = int(seen["bounded"]) + (len(rows) if bound is not None else 0)  # type: ignore[call-overload]
        write(self, rows, values, None if dense else bound, extremes)

    def watched_close(self: ActivationCache) -> None:
        seen["end"] = max(int(seen["end"]), self.end)  # type: ignore[call-overload]
        close(self)

    monkeypatch.setattr(engine.ActivationCache, "write", watched_write)
    monkeypatch.setattr(engine.ActivationCache, "close", watched_close)
    settings = DissectSettings(quantile=0.02, batch_size=5, workers=0, bootstrap=20, checkpoint_seconds=0.0)
    dissect("sceneworld-scene", [LAYER], str(data), out, settings=settings, progress=False)
    monkeypatch.undo()
    seen["files"] = {name: (out / LAYER / name).read_bytes() for name in ("units.csv", "iou.npy")}
    return seen


@pytest.mark.parametrize("order", ["rising", "falling"])
def test_sparse_and_dense_caches_give_the_same_bytes(orders: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    dense = _run(orders[order], tmp_path / "dense", monkeypatch, dense=True)
    sparse = _run(orders[order], tmp_path / "sparse", monkeypatch)
    assert sparse["files"] == dense["files"]
    assert sparse["bounded"] == sparse["rows"] == N  # a bound from the first batch on
    assert int(sparse["end"]) < int(dense["end"]) / 2  # type: ignore[call-overload]
    units = (tmp_path / "sparse" / LAYER / "units.csv").read_text()
    assert units.count("\n") > 100  # every unit of conv5 was compared


def test_resume_in_the_middle_of_pass_one_gives_the_same_bytes(orders: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _run(orders["falling"], tmp_path / "whole", monkeypatch)
    write = engine.ActivationCache.write
    calls = {"n": 0}

    def interrupted(self: ActivationCache, rows: np.ndarray, values: torch.Tensor,
                    bound: torch.Tensor | None = None,
                    extremes: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        write(self, rows, values, bound, extremes)  # the rows reach the file, the checkpoint after them never comes
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.ActivationCache, "write", interrupted)
    settings = DissectSettings(quantile=0.02, batch_size=5, workers=0, bootstrap=20, checkpoint_seconds=0.0)
    with pytest.raises(KeyboardInterrupt):
        dissect("sceneworld-scene", [LAYER], str(orders["falling"]), tmp_path / "resumed", settings=settings,
                progress=False)
    monkeypatch.undo()
    state = torch.load(tmp_path / "resumed.partial" / "work" / "pass1.pt", weights_only=True)
    assert state["next_index"] == 10  # two batches of 5 checkpointed, the third written past the checkpoint
    resumed = _run(orders["falling"], tmp_path / "resumed", monkeypatch)
    assert resumed["files"] == whole["files"]


def test_a_bound_above_the_final_threshold_is_refused(scenes: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor of the quantile can never exceed the threshold; were a bound to, pass 2 would not count."""
    bound = engine.DissectionEngine.cache_bound

    def too_tight(self: engine.DissectionEngine, name: str, quantile: object) -> torch.Tensor | None:
        floor = bound(self, name, quantile)  # type: ignore[arg-type]
        return None if floor is None else floor + 1.0

    monkeypatch.setattr(engine.DissectionEngine, "cache_bound", too_tight)
    settings = DissectSettings(quantile=0.02, batch_size=5, workers=0, bootstrap=20)
    with pytest.raises(RuntimeError, match="activation cache was written for a bound"):
        dissect("sceneworld-scene", [LAYER], str(scenes), tmp_path / "run", settings=settings, progress=False)
