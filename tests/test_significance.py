"""Label confidence: BH q-values, null moments by hand, and the planted acceptance (exact, weak, null, dead)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from planted import PlantedProbe
from planted_significance import DEAD, EXACT, FIRST_NULL, WEAK, write_noise_model, write_significance_model
from scipy.stats import false_discovery_control, kstest

import unitscope.dissection.confidence as confidence_module
from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.dissection.confidence import small_probe_warning
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.run import dissect
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError
from unitscope.report.run_report import render_report
from unitscope.stats._state import StatsError
from unitscope.stats.labels import LabelBatch
from unitscope.stats.significance import NullMoments, benjamini_hochberg, p_values


def test_bh_matches_scipy_and_hand_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # hand: sorted 0.005,0.01,0.03,0.04,0.5 -> ×5/rank = .025,.025,.05,.05,.5 (already monotone)
    assert np.allclose(benjamini_hochberg(p), [0.025, 0.05, 0.05, 0.025, 0.5])
    rng = np.random.default_rng(0)
    q = rng.uniform(size=(7, 9)) ** 3
    assert np.allclose(benjamini_hochberg(q), false_discovery_control(q.reshape(-1)).reshape(7, 9))
    with pytest.raises(UsageError):
        benjamini_hochberg(np.array([0.2, 1.5]))


def _labels(maps: list[np.ndarray], scenes: list[int]) -> LabelBatch:
    concepts = ConceptTable((Concept(1, "a", "object"), Concept(2, "s", "scene")), ("object", "scene"))
    samples = [ProbeSample(i, np.zeros((2, 2, 3), np.uint8), {"object": m[None]}, {"scene": (s,)} if s else {})
               for i, (m, s) in enumerate(zip(maps, scenes, strict=True))]
    return LabelBatch.from_samples(samples, concepts, (2, 2))


def test_null_moments_by_hand_and_batch_independent() -> None:
    maps = [np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]), np.array([[0, 0], [0, 0]])]
    areas = torch.tensor([[2.0], [3.0], [1.0]], dtype=torch.float64)  # one unit, active pixels per image
    label_areas = torch.tensor([[0, 2, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    whole = NullMoments(1, 3, 2, cells=4, pixels=4)
    whole.update(areas, label_areas, _labels(maps, [2, 0, 2]))
    # image 0: a=2, l=2, n=4, K=4: mean 1, var 2*2*2*2/(16*3); image 1: a=3, l=1: mean .75, var 3*1*1*3/(16*3)
    assert whole.mean[0, 1].item() == pytest.approx(1.75)
    assert whole.var[0, 1].item() == pytest.approx(16 / 48 + 9 / 48)
    mean, var = whole.moments(torch.tensor([-1, 0, 1]))
    # scene annotated in images 0 and 2 only (areas 2, 1), label on k=2 of N=2: mean 2*1.5, no variance
    assert mean[0, 2] == pytest.approx(3.0)
    assert var[0, 2] == pytest.approx(0.0)
    parts = NullMoments(1, 3, 2, cells=4, pixels=4)
    parts.update(areas[:1], label_areas[:1], _labels(maps[:1], [2]))
    rest = NullMoments(1, 3, 2, cells=4, pixels=4)
    rest.update(areas[1:], label_areas[1:], _labels(maps[1:], [0, 2]))
    parts.merge(rest)
    assert torch.allclose(parts.mean, whole.mean) and torch.allclose(parts.var, whole.var)
    assert np.allclose(parts.moments(torch.tensor([-1, 0, 1]))[1], var)
    p = p_values(np.array([[0.0, 3.0, 4.0]]), mean, var, np.array([False, True, True]))
    assert p[0, 0] == 1.0 and 0 < p[0, 1] < 0.5 and p[0, 2] == 1.0


def test_clump_size_by_hand_widens_the_variance() -> None:
    """One unit on a 1x8 map (label pixels = cells), on in cells 0 and 1: centred z = (.75, .75, -.25 x 6),
    lag 0: 1.5; lag 1: 2 x (.5625 - .1875 + 5 x .0625) = 1.375; lag 2: 2 x (-2 x .1875 + 4 x .0625) = -.25;
    clump size c = 1 + 1.125 / 1.5 = 1.75, so 8 / 1.75 sites instead of 8, the variance x 7 / (8 / 1.75 - 1)."""
    from unitscope.stats.iou import MaskPixels

    concepts = ConceptTable((Concept(1, "a", "object"),), ("object",))
    label = np.array([[1, 1, 1, 0, 0, 0, 0, 0]])
    labels = LabelBatch.from_samples([ProbeSample(0, np.zeros((1, 8, 3), np.uint8), {"object": label[None]}, {})],
                                     concepts, (1, 8))
    masks = MaskPixels(torch.tensor([0, 0]), torch.tensor([0, 1]), 1, (1, 8))
    areas = torch.tensor([[2.0]], dtype=torch.float64)
    label_areas = torch.tensor([[3.0]], dtype=torch.float64)
    flat = NullMoments(1, 2, 1, cells=8, pixels=8)
    clumped = NullMoments(1, 2, 1, cells=8, pixels=8, grid=(1, 8))
    for stat in (flat, clumped):
        stat.update(areas, label_areas, labels, masks, torch.tensor([0]))
    assert clumped.clump_sizes().tolist() == pytest.approx([1.75])
    assert flat.clump_sizes().tolist() == [1.0]
    base = 2 * 6 * 3 * 5 / (64 * 7)  # a(n-a) l(n-l) / (n^2 (K-1))
    category = torch.tensor([-1, 0])
    assert flat.moments(category)[1][0, 1] == pytest.approx(base)
    assert clumped.moments(category)[1][0, 1] == pytest.approx(base * 7 / (8 / 1.75 - 1))
    scattered = NullMoments(1, 2, 1, cells=8, pixels=8, grid=(1, 8))  # cells 0 and 4: no clump, c = 1
    scattered.update(areas, label_areas, labels, MaskPixels(torch.tensor([0, 0]), torch.tensor([0, 4]), 1, (1, 8)),
                     torch.tensor([0]))
    assert scattered.clump_sizes().tolist() == [1.0]


def _planted(tmp_path: Path, seed: int, batch_size: int = 16) -> object:
    settings = DissectSettings(quantile=0.1, bootstrap=100, batch_size=batch_size, workers=0)
    return dissect(write_significance_model(tmp_path, 50, seed), ["0"], PlantedProbe(80, seed=seed), None,
                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), settings=settings, progress=False)


def test_planted_exact_weak_null_dead(tmp_path: Path) -> None:
    false_positives, nulls, iou_only, weak_stability = 0, 0, 0, []
    for seed in range(4):
        units = _planted(tmp_path, seed).layers["0"].units  # type: ignore[attr-defined]
        exact = units[units["unit"].isin(EXACT)]
        assert exact["significant"].all() and exact["detector"].all()
        assert (exact["stability"] == 1.0).all()
        assert set(exact["label"]) == {"square", "bar"}
        weak = units[units["unit"].isin(WEAK)]
        assert weak["significant"].all()
        weak_stability += list(weak["stability"])
        dead = units[units["unit"].isin(DEAD)]
        assert not dead["detector"].any() and dead["stability"].isna().all()
        null = units[units["unit"] >= FIRST_NULL]
        false_positives += int(null["significant"].sum())
        iou_only += int(null["iou_detector"].sum())
        nulls += len(null)
    assert nulls >= 200
    assert false_positives / nulls <= 0.05  # measured: 0 of 200
    assert iou_only > 100  # NetDissect's rule alone calls most null units detectors
    assert np.mean(weak_stability) < 1.0


@pytest.mark.parametrize("quantile", [0.1, 0.02])
def test_null_p_values_are_uniform_on_independent_smooth_null_units(tmp_path: Path, quantile: float,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """200 independent null units (blurred noise, so each map is smooth as a CNN's) on 80 planted images.

    Measured, seed 0 (quantile 0.1 / 0.02): KS p of the "square" p-values 0.92 / 0.72, of the scene "left"
    0.04 / 0.04; 0 / 0 null units significant. Before the variance counted each unit's clump size (K sites
    per image however smooth the map): KS p 2e-7 / 4e-5, 21 % / 19 % of "square" p-values below 0.05, and
    2 / 18 null units significant. Thin or one-pixel labels ("bar", "corner") get conservative p-values
    (their pixels clump less than the mask), so they are held only to the 5 % rate, not to uniformity.
    """
    p_matrices: list[np.ndarray] = []
    real_p_values = confidence_module.p_values

    def keep(*args: object, **kwargs: object) -> np.ndarray:
        p = real_p_values(*args, **kwargs)  # type: ignore[arg-type]
        p_matrices.append(p)
        return p

    monkeypatch.setattr(confidence_module, "p_values", keep)
    settings = DissectSettings(quantile=quantile, bootstrap=0, batch_size=16, workers=0, upsample="bilinear")
    result = dissect(write_noise_model(tmp_path, 200, seed=0), ["1"], PlantedProbe(80, seed=0), None,
                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), settings=settings, progress=False)
    units = result.layers["1"].units
    (p,) = p_matrices  # [units, label numbers]: every unit x concept p-value of the layer
    assert p.shape[0] == 200
    number = {c.name: c.number for c in result.concepts.concepts}
    for name in ("square", "left"):  # a compact object label; a whole-image label
        assert kstest(p[:, number[name]], "uniform").pvalue > 0.01, name
    for name in number:  # no concept is called more often than the nominal rate (binomial 200 x 5 %: <= 18)
        assert (p[:, number[name]] < 0.05).sum() <= 18, name
    assert units["significant"].sum() <= 2


def test_confidence_independent_of_batch_size(tmp_path: Path) -> None:
    a = _planted(tmp_path, 1, batch_size=7).layers["0"]  # type: ignore[attr-defined]
    b = _planted(tmp_path, 1, batch_size=80).layers["0"]  # type: ignore[attr-defined]
    for column in ("p_value", "q_value", "significant", "margin", "stability"):
        assert np.allclose(a.units[column].to_numpy(dtype=float), b.units[column].to_numpy(dtype=float),
                           equal_nan=True, rtol=1e-9), column
    assert a.intervals == b.intervals


def test_random_baseline_and_small_probe_warning(tmp_path: Path) -> None:
    settings = DissectSettings(quantile=0.005, bootstrap=20, baseline="random", workers=0)
    result = dissect(write_significance_model(tmp_path, 4, 0), ["0"], PlantedProbe(20), tmp_path / "run",
                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), settings=settings, progress=False)
    page = render_report(result, probe=PlantedProbe(20)).read_text()
    assert "Probe set too small" in page and "Random weights" in page
    assert "stable in" in page and "<span>q " in page
    units = result.layers["0"].units
    marked = page.count("NOT SIGNIFICANT</span>")
    assert marked == int((units["iou_detector"] & ~units["detector"]).sum())
    baseline = result.record.baseline
    assert baseline["kind"] == "random"  # type: ignore[index]
    total = baseline["layers"]["0"]["table"][-1]  # type: ignore[index]
    assert total["category"] == "total" and total["iou_detectors"] >= total["detectors"]
    side = min(PlantedProbe(20).image_size)  # the model takes the probe's own size: larger images would help
    assert result.record.warnings == (small_probe_warning(0.005, 20, (10, 16, 16), "0", image_side=side),)
    assert DissectionResult.load(tmp_path / "run").layers["0"].intervals == result.layers["0"].intervals
    assert small_probe_warning(0.005, 100, (512, 4, 4), "layer4") is not None
    assert small_probe_warning(0.005, 1000, (256, 7, 7), "conv5") is None
    with pytest.raises(UsageError):
        DissectSettings(fdr=0.0).validate()


def test_permutation_mean_scores_masks_against_other_images_labels() -> None:
    from unitscope.stats.iou import MaskPixels

    # Two 2x2 images; label 1 at pixel 0 in image 0 and at pixels 0, 1 in image 1. One unit, on at pixel 0
    # in image 0 and at pixel 3 in image 1. Pairings (mask i, labels j): |M0∩L0|=1, |M0∩L1|=1, |M1∩L0|=0,
    # |M1∩L1|=0, so the mean over a random partner image is (1+1+0+0)/2 = 1.
    maps = [np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]])]
    labels = _labels(maps, [0, 0])
    masks = MaskPixels(torch.tensor([0, 1]), torch.tensor([0, 3]), 2, (2, 2))
    stat = NullMoments(1, 3, 2, cells=4, pixels=4)
    areas = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    label_areas = torch.tensor([[0, 1, 0], [0, 2, 0]], dtype=torch.float64)
    stat.update(areas, label_areas, labels, masks, torch.tensor([0, 0]))
    mean, _ = stat.moments(torch.tensor([-1, 0, 1]))
    assert mean[0, 1] == pytest.approx(1.0)
    restored = NullMoments(1, 3, 2, cells=4, pixels=4)
    restored.load_state_dict(stat.state_dict())
    assert np.allclose(restored.moments(torch.tensor([-1, 0, 1]))[0], mean)


def test_position_maps_and_label_counts_match_brute_force() -> None:
    """The per-position maps (unit on, label present) and per-image label areas against plain loops."""
    from unitscope.stats.iou import MaskPixels

    rng = np.random.default_rng(3)
    names = ("object", "part")
    concepts = ConceptTable(tuple(Concept(n, f"c{n}", names[n % 2]) for n in range(1, 7)), names)
    size, units = (3, 4), 3
    samples = [ProbeSample(i, np.zeros((3, 4, 3), np.uint8),
                           {"object": rng.integers(0, 7, (2, *size)), "part": rng.integers(0, 7, (1, *size))}, {})
               for i in range(5)]
    labels = LabelBatch.from_samples(samples, concepts, size)
    on = rng.random((5, units, 12)) < 0.4  # [image, unit, pixel]
    image_of, unit_of = (torch.from_numpy(a.ravel()) for a in np.indices((5, units)))
    index, pixel = (torch.from_numpy(a) for a in np.nonzero(on.reshape(5 * units, 12)))
    stat = NullMoments(units, 7, 2, cells=4, pixels=12)
    areas = torch.from_numpy(on.sum(axis=2).astype(np.float64))
    for _ in range(2):  # a second batch adds to the first
        stat.update(areas, labels.label_counts[:, 1:].double(), labels, MaskPixels(index, pixel, 15, size), unit_of)
    assert torch.equal(stat.unit_map, torch.from_numpy(2 * on.sum(axis=0).astype(np.float32)))
    present = np.zeros((5, 7, 12), dtype=np.int64)  # image, label, pixel: the label in any of its maps
    for b, sample in enumerate(samples):
        stacked = np.concatenate([m.reshape(len(m), 12) for m in sample.pixel_labels.values()])
        for label in range(1, 7):
            present[b, label] = (stacked == label).any(axis=0)
    assert torch.equal(stat.label_map, torch.from_numpy(2 * present.sum(axis=0).astype(np.float32)))  # row: label
    assert torch.equal(labels.label_counts[:, 1:], torch.from_numpy(present.sum(axis=2)))  # column 0: no label
    assert int(image_of.max()) == 4


@pytest.mark.parametrize("numpy", [True, False])
def test_label_runs_give_the_per_image_and_per_position_counts_of_every_entry(numpy: bool) -> None:
    """Label counts and position maps from the runs of equal labels (numpy's path and torch's, which other
    devices take) equal the counts of every table entry, on piecewise-constant and on noisy tables."""
    from unitscope.stats.labels import label_runs, run_label_counts, run_position_edges

    rng = np.random.default_rng(5)
    num_labels, pixels = 9, 30
    blocky = np.repeat(rng.integers(-1, num_labels, (4, 6, 3)), 5, axis=1)  # runs of 5 along the pixels
    noisy = rng.integers(-1, num_labels, (3, pixels, 2))
    for entries in (blocky, noisy, np.zeros((2, pixels, 0), np.int64), rng.integers(-1, 3, (2, 1, 2))):
        table = torch.from_numpy(entries.astype(np.int32))
        batch, width = len(entries), entries.shape[1]
        runs = label_runs(table, numpy=numpy)
        counts = run_label_counts(runs, batch, num_labels, width, numpy=numpy)
        expected = np.stack([np.bincount(e.reshape(-1) + 1, minlength=num_labels + 1) for e in entries])
        assert counts.dtype == torch.int64 and np.array_equal(counts.numpy(), expected.reshape(batch, -1))
        begins, ends = run_position_edges(runs, num_labels, width, numpy=numpy)
        edges = torch.zeros((num_labels + 1) * width, dtype=torch.int64)
        edges.index_add_(0, begins.long(), torch.ones_like(begins, dtype=torch.int64))
        edges.index_add_(0, ends.long(), -torch.ones_like(ends, dtype=torch.int64))
        held = edges.view(num_labels + 1, width).cumsum(dim=1)
        brute = np.zeros((num_labels + 1, width), dtype=np.int64)  # [1 + label, pixel]: entries summed
        for b, p, k in np.ndindex(*entries.shape):
            brute[entries[b, p, k] + 1, p] += 1
        assert np.array_equal(held.numpy(), brute)


def test_label_map_merges_restores_and_refuses_what_no_count_can_be() -> None:
    maps = [np.array([[1, 1], [2, 0]]), np.array([[0, 1], [1, 1]])]
    stat = NullMoments(1, 3, 2, cells=4, pixels=4)
    stat.update(torch.ones(2, 1, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64), _labels(maps, [0, 0]))
    assert stat.label_map.tolist() == [[0, 0, 0, 0], [1, 2, 1, 1], [0, 0, 1, 0]]  # row: label number
    twice = NullMoments(1, 3, 2, cells=4, pixels=4)
    twice.load_state_dict(stat.state_dict())
    twice.merge(stat)
    assert torch.equal(twice.label_map, 2 * stat.label_map)
    for bad in (0.5, -1.0, float("nan")):
        state = stat.state_dict()
        state["label_map"] = state["label_map"].clone()
        state["label_map"][0, 2] = bad
        with pytest.raises(StatsError, match="whole image counts"):
            NullMoments(1, 3, 2, cells=4, pixels=4).load_state_dict(state)
