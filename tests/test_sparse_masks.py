"""WindowedMasks must equal the dense reference ``Upsampler(maps) > threshold`` bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.dissection.sparse_masks import WindowedMasks
from unitscope.dissection.upsample import Upsampler
from unitscope.stats import ConceptOverlap, LabelBatch

# (mode, feature size, label size, input size, stride, start): odd sizes, offsets, up- and downsampling.
GEOMETRIES = [
    ("rf", (13, 13), (112, 112), (224, 224), 16.0, 31.0),  # AlexNet conv5
    ("rf", (7, 5), (56, 40), (112, 80), 16.0, 7.5),
    ("rf", (6, 9), (30, 45), (96, 144), 8.0, -3.0),  # centres past the left border
    ("rf", (5, 5), (20, 20), (40, 40), 4.0, 20.0),  # centres beyond the right border
    ("bilinear", (13, 13), (112, 112), (224, 224), None, None),
    ("bilinear", (7, 11), (56, 33), (112, 66), None, None),
    ("bilinear", (27, 27), (20, 20), (224, 224), None, None),  # downsampling
    ("bilinear", (1, 4), (6, 8), (6, 8), None, None),  # a single row
]


def _pair(geometry: tuple) -> tuple[Upsampler, WindowedMasks]:
    mode, feature, label, size, stride, start = geometry
    dense = Upsampler.build(mode, feature, label, size, stride, start)
    return dense, WindowedMasks.build(dense)


def _reference(dense: Upsampler, maps: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    return dense(maps) > thresholds[:, None, None]


def test_hand_computed_corner() -> None:
    """2x2 -> 4x4 bilinear: rows and columns weigh cell 0 by 1, .75, .25, 0, so only the corner 2x2 > .5."""
    masker = WindowedMasks.build(Upsampler.build("bilinear", (2, 2), (4, 4), (4, 4)))
    masks = masker(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), torch.tensor([0.5]))
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, :2, :2] = True
    assert torch.equal(masks, expected)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_random_maps_equal_dense(geometry: tuple) -> None:
    dense, masker = _pair(geometry)
    h, w = geometry[1]
    gen = torch.Generator().manual_seed(7)
    maps = torch.randn(60, h, w, generator=gen).relu() * torch.rand(60, 1, 1, generator=gen) * 4
    maps[:5] = 0  # dead maps
    maps[5, 0, 0] = maps[6, -1, -1] = maps[7, 0, -1] = maps[8, -1, 0] = 50.0  # hot corners
    thresholds = torch.quantile(maps.flatten(), torch.tensor([0.5, 0.9, 0.99]))
    thresholds = thresholds[torch.arange(60) % 3]
    assert torch.equal(masker(maps, thresholds), _reference(dense, maps, thresholds))


@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[5]])
def test_ties_at_the_threshold(geometry: tuple) -> None:
    """Plateaus and cells exactly at the threshold, where float rounding decides."""
    dense, masker = _pair(geometry)
    h, w = geometry[1]
    gen = torch.Generator().manual_seed(3)
    levels = torch.tensor([0.1, 0.3, 1 / 3, 0.7, 1.0])
    maps = levels[torch.randint(0, 5, (200, h, w), generator=gen)]
    thresholds = levels[torch.randint(0, 5, (200,), generator=gen)]
    maps[:20] = thresholds[:20, None, None]  # flat at the threshold
    assert torch.equal(masker(maps, thresholds), _reference(dense, maps, thresholds))


@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[6]])
def test_zero_and_negative_thresholds(geometry: tuple) -> None:
    dense, masker = _pair(geometry)
    h, w = geometry[1]
    gen = torch.Generator().manual_seed(11)
    maps = torch.randn(40, h, w, generator=gen)
    maps[:20] = maps[:20].relu()
    maps[:4] = 0
    thresholds = torch.cat([torch.zeros(20), -torch.rand(20, generator=gen)])
    assert torch.equal(masker(maps, thresholds), _reference(dense, maps, thresholds))


def test_active_pairs_cover_every_non_empty_mask() -> None:
    dense, masker = _pair(GEOMETRIES[1])
    gen = torch.Generator().manual_seed(5)
    acts = torch.randn(3, 8, 7, 5, generator=gen).relu()
    acts[0, 0] = 0
    thresholds = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.0])
    image_of, unit_of = masker.active_pairs(acts, thresholds)
    listed = torch.zeros(3, 8, dtype=torch.bool)
    listed[image_of, unit_of] = True
    full = dense(acts) > thresholds[None, :, None, None]
    assert torch.equal(full.flatten(2).any(dim=2) & ~listed, torch.zeros(3, 8, dtype=torch.bool))
    assert not listed[0, 0]  # an all-zero map at threshold 0 needs no work
    assert torch.equal(listed, acts.amax(dim=(2, 3)) > thresholds)  # no near-ties here


def test_masks_do_not_depend_on_the_batch() -> None:
    _, masker = _pair(GEOMETRIES[4])
    gen = torch.Generator().manual_seed(9)
    maps = torch.rand(30, 13, 13, generator=gen) ** 4
    thresholds = torch.full((30,), 0.5)
    together = masker(maps, thresholds)
    alone = torch.cat([masker(maps[i:i + 1], thresholds[i:i + 1]) for i in range(30)])
    assert torch.equal(together, alone) and together.any()


def test_tiles_partition_the_label_grid() -> None:
    for geometry in GEOMETRIES:
        dense, masker = _pair(geometry)
        for tiles, matrix in ((masker.rows, dense.rows), (masker.cols, dense.cols)):
            label = tiles.start[:, None] + torch.arange(tiles.valid.shape[1])[None, :]
            covered = torch.bincount(label[tiles.valid], minlength=matrix.shape[0])
            assert torch.equal(covered, torch.ones(matrix.shape[0], dtype=torch.int64))
            # Every pixel of a tile uses only the tile's cells, with the dense weights.
            for t in range(len(tiles.start)):
                rows = label[t][tiles.valid[t]]
                cells = {int(tiles.first[t]), int(tiles.second[t])}
                others = [c for c in range(matrix.shape[1]) if c not in cells]
                assert not matrix[rows][:, others].any()
                assert torch.equal(tiles.weights[t, : len(rows), 0], matrix[rows, tiles.first[t]])


def test_refuses_what_is_no_interpolation() -> None:
    with pytest.raises(ValueError, match="adjacent"):
        WindowedMasks.build(Upsampler(torch.tensor([[0.5, 0.0, 0.5]]), torch.eye(2)))
    masker = WindowedMasks.build(Upsampler.build("bilinear", (2, 2), (4, 4), (4, 4)))
    with pytest.raises(ValueError, match="do not fit"):
        masker(torch.zeros(1, 3, 3), torch.zeros(1))


def _labelled_batch() -> tuple[ConceptTable, list[ProbeSample]]:
    """4 images of 6x5 labels: stacked object maps (a repeat at one pixel), parts, a scene, one unannotated."""
    table = ConceptTable((Concept(1, "tree", "object"), Concept(2, "car", "object"), Concept(3, "wheel", "part"),
                          Concept(4, "street", "scene"), Concept(5, "park", "scene")), ("object", "part", "scene"))
    gen = np.random.default_rng(2)
    samples = []
    for i in range(4):
        objects = gen.integers(0, 3, size=(2, 6, 5)).astype(np.int32)
        objects[1, 0, 0] = objects[0, 0, 0] = 1  # the same label twice at one pixel counts once
        pixel = {"object": objects, "part": np.where(gen.random((6, 5)) < 0.3, 3, 0).astype(np.int32)}
        image = {"scene": (4, 5)} if i % 2 == 0 else {}
        samples.append(ProbeSample(i, np.zeros((12, 10, 3), np.uint8), pixel_labels=pixel, image_labels=image))
    samples[3] = ProbeSample(3, samples[3].image, pixel_labels={"object": samples[3].pixel_labels["object"]})
    return table, samples


def test_overlap_counts_from_on_pixels_equal_the_dense_update() -> None:
    table, samples = _labelled_batch()
    labels = LabelBatch.from_samples(samples, table, (6, 5))
    masker = WindowedMasks.build(Upsampler.build("bilinear", (3, 3), (6, 5), (12, 10)))
    gen = torch.Generator().manual_seed(4)
    acts = torch.rand(4, 7, 3, 3, generator=gen) ** 3
    thresholds = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 2.0])
    dense = ConceptOverlap(7, table)
    dense.update(masker.upsampler(acts) > thresholds[None, :, None, None], labels)
    image_of, unit_of = masker.active_pairs(acts, thresholds)
    order = torch.randperm(len(image_of), generator=gen)  # any order of the pairs
    image_of, unit_of = image_of[order], unit_of[order]
    pixels = masker.pixels(acts[image_of, unit_of], thresholds[unit_of])
    for masks in (pixels, pixels.dense()):
        sparse = ConceptOverlap(7, table)
        sparse.update_active(masks, image_of, unit_of, labels)
        for key in ("intersection", "label_area", "unit_area"):
            assert torch.equal(getattr(sparse, key), getattr(dense, key)), key
        assert sparse.num_images == 4
    assert int(dense.intersection[:, 4].sum()) > 0 and int(dense.intersection[:, 3].sum()) > 0


def test_nothing_on_and_no_pixel_maps() -> None:
    table, samples = _labelled_batch()
    bare = [ProbeSample(s.index, s.image, image_labels={"scene": (4,)}) for s in samples]  # no maps at all
    masker = WindowedMasks.build(Upsampler.build("rf", (3, 3), (6, 5), (12, 10), 4.0, 1.5))
    for batch in (samples, bare):
        labels = LabelBatch.from_samples(batch, table, (6, 5))
        acts = torch.full((4, 2, 3, 3), 0.25)
        acts[1, 1, 2, 2] = 1.0  # one map on, in the corner
        for thresholds in (torch.tensor([2.0, 2.0]), torch.tensor([0.5, 0.5])):
            image_of, unit_of = masker.active_pairs(acts, thresholds)
            pixels = masker.pixels(acts[image_of, unit_of], thresholds[unit_of])
            sparse, dense = ConceptOverlap(2, table), ConceptOverlap(2, table)
            sparse.update_active(pixels, image_of, unit_of, labels)
            dense.update(masker.upsampler(acts) > thresholds[None, :, None, None], labels)
            for key in ("intersection", "label_area", "unit_area"):
                assert torch.equal(getattr(sparse, key), getattr(dense, key)), key
            assert len(image_of) == (0 if thresholds[0] == 2.0 else 1)
