"""ConceptOverlap and LabelBatch: hand-computed IoU, the annotation rule, batching, merging, state."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import torch

from unitscope.data.probe import Concept, ConceptTable, ProbeSample
from unitscope.stats import ConceptOverlap, LabelBatch, StatsError
from unitscope.stats.iou import count_overlaps

CATEGORIES = ("object", "part", "scene")
TABLE = ConceptTable(
    (Concept(1, "tree", "object"), Concept(2, "wheel", "part"), Concept(3, "street", "scene")), CATEGORIES
)
IMAGE = np.zeros((4, 4, 3), dtype=np.uint8)


def grid(rows: list[str]) -> np.ndarray:
    """A 4x4 int32 map from strings of digits."""
    return np.array([[int(c) for c in row] for row in rows], dtype=np.int32)


def hand_fixture() -> tuple[list[ProbeSample], torch.Tensor]:
    """2 images, 2 units, 4x4. Image 1 annotates objects only (no part, no scene)."""
    samples = [
        ProbeSample(
            0,
            IMAGE,
            pixel_labels={
                "object": grid(["1100", "1100", "0000", "0000"])[None],  # tree: 4 px
                "part": grid(["0000", "0000", "0022", "0000"])[None],  # wheel: 2 px
            },
            image_labels={"scene": (3,)},  # street: whole image, 16 px
        ),
        ProbeSample(1, IMAGE, pixel_labels={"object": grid(["0000", "0110", "0110", "0000"])[None]}),
    ]
    masks = torch.tensor(
        np.stack(
            [
                [grid(["1110", "0000", "0010", "0000"]), grid(["0000"] * 4)],  # image 0: unit 0, unit 1
                [grid(["0000", "0100", "0000", "0001"]), grid(["1111", "1111", "0000", "0000"])],  # image 1
            ]
        ).astype(bool)
    )
    return samples, masks


def test_hand_computed_counts_and_iou() -> None:
    samples, masks = hand_fixture()
    overlap = ConceptOverlap(2, TABLE)
    overlap.update(masks, LabelBatch.from_samples(samples, TABLE, (4, 4)))
    # unit 0 active: 4 px in image 0 (2 on tree, 1 on wheel), 2 px in image 1 (1 on tree).
    # unit 1 active: 0 px in image 0, 8 px in image 1 (2 on tree).
    assert overlap.intersection.tolist() == [[0, 3, 1, 4], [0, 2, 0, 0]]
    assert overlap.label_area.tolist() == [0, 8, 2, 16]
    # unit_area per category: object annotated in both images, part and scene only in image 0.
    assert overlap.unit_area.tolist() == [[6, 4, 4], [8, 0, 0]]
    expected = [
        [0, Fraction(3, 6 + 8 - 3), Fraction(1, 4 + 2 - 1), Fraction(4, 4 + 16 - 4)],
        [0, Fraction(2, 8 + 8 - 2), 0, 0],
    ]
    iou = overlap.iou()
    assert iou.dtype == torch.float64
    assert iou.tolist() == [[float(v) for v in row] for row in expected]
    # Had image 1's activity counted against wheel, unit 0's IoU would be 1/7, not 1/5.
    assert iou[0, 2].item() != pytest.approx(1 / 7)


def test_label_encoding_unions_stacked_maps_and_skips_unknown_numbers() -> None:
    table = ConceptTable((Concept(1, "car", "object"), Concept(4, "door", "part")), ("object", "part"))
    sample = ProbeSample(
        0,
        IMAGE,
        pixel_labels={
            # two stacked object maps overlapping on one pixel of car; 2 and 9 are no concepts
            "object": np.stack([grid(["1100", "0000", "0002", "0000"]), grid(["0110", "0000", "0000", "9000"])]),
            "part": grid(["4000", "4000", "0000", "0000"])[None],
        },
    )
    labels = LabelBatch.from_samples([sample], table, (4, 4))
    assert labels.pixel_numbers.tolist() == [1, 4]
    assert labels.pixel_areas.tolist() == [3, 2]
    assert labels.regions[0][0].all()
    assert labels.regions[0][1].reshape(4, 4)[0].tolist() == [True, True, True, False]
    assert labels.annotated.tolist() == [[True, True]]
    assert labels.image_numbers.numel() == 0


def random_fixture(seed: int, n_images: int, units: int) -> tuple[ConceptTable, list[ProbeSample], torch.Tensor]:
    """Random maps over 6 concepts in 3 categories; each category missing from some images."""
    rng = np.random.default_rng(seed)
    table = ConceptTable(
        tuple(
            Concept(n, f"c{n}", cat)
            for n, cat in zip(range(1, 7), ["object", "object", "part", "part", "scene", "scene"], strict=True)
        ),
        ("object", "part", "scene"),
    )
    samples = []
    for i in range(n_images):
        pixel, image = {}, {}
        if rng.random() < 0.8:
            pixel["object"] = rng.choice([0, 1, 2], size=(2, 6, 5)).astype(np.int32)
        if rng.random() < 0.5:
            pixel["part"] = rng.choice([0, 3, 4], size=(1, 6, 5)).astype(np.int32)
        if rng.random() < 0.6:
            image["scene"] = (int(rng.choice([5, 6])),)
        samples.append(ProbeSample(i, IMAGE, pixel_labels=pixel, image_labels=image))
    masks = torch.from_numpy(rng.random((n_images, units, 6, 5)) < 0.3)
    return table, samples, masks


def naive_iou(table: ConceptTable, samples: list[ProbeSample], masks: torch.Tensor) -> np.ndarray:
    """The IoU rule written out pixel by pixel, unit by unit, label by label."""
    m = masks.numpy()
    inter = np.zeros((m.shape[1], table.max_number + 1))
    union = np.zeros_like(inter)
    for b, sample in enumerate(samples):
        for concept in table.concepts:
            if concept.category not in sample.annotated_categories:
                continue
            if concept.number in sample.image_labels.get(concept.category, ()):
                region = np.ones(m.shape[2:], dtype=bool)
            else:
                region = np.zeros(m.shape[2:], dtype=bool)
                for arr in sample.pixel_labels.values():
                    region |= (arr == concept.number).any(axis=0)
            for u in range(m.shape[1]):
                inter[u, concept.number] += (m[b, u] & region).sum()
                union[u, concept.number] += (m[b, u] | region).sum()
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def fed(table: ConceptTable, samples: list[ProbeSample], masks: torch.Tensor, batch: int) -> ConceptOverlap:
    overlap = ConceptOverlap(masks.shape[1], table)
    for start in range(0, len(samples), batch):
        part = samples[start : start + batch]
        overlap.update(masks[start : start + batch], LabelBatch.from_samples(part, table, (6, 5)))
    return overlap


def test_matches_naive_rule_for_batch_sizes_one_three_all() -> None:
    table, samples, masks = random_fixture(seed=3, n_images=7, units=3)
    expected = naive_iou(table, samples, masks)
    states = []
    for batch in (1, 3, 7):
        overlap = fed(table, samples, masks, batch)
        np.testing.assert_allclose(overlap.iou().numpy(), expected, rtol=1e-12, atol=0)
        states.append(overlap.state_dict())
    for state in states[1:]:
        for key in ("intersection", "label_area", "unit_area"):
            assert torch.equal(state[key], states[0][key]), key


def test_merged_halves_equal_whole_in_either_order() -> None:
    table, samples, masks = random_fixture(seed=4, n_images=6, units=2)
    whole = fed(table, samples, masks, 6).state_dict()
    for a, b in ((slice(0, 2), slice(2, 6)), (slice(2, 6), slice(0, 2))):
        first = fed(table, samples[a], masks[a], 2)
        first.merge(fed(table, samples[b], masks[b], 2))
        merged = first.state_dict()
        for key in ("intersection", "label_area", "unit_area"):
            assert torch.equal(merged[key], whole[key]), key
        assert merged["num_images"] == 6


def test_state_dict_round_trip_through_torch_save() -> None:
    table, samples, masks = random_fixture(seed=5, n_images=4, units=2)
    partial = fed(table, samples[:2], masks[:2], 2)
    buffer = io.BytesIO()
    torch.save(partial.state_dict(), buffer)
    buffer.seek(0)
    resumed = ConceptOverlap(2, table)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.update(masks[2:], LabelBatch.from_samples(samples[2:], table, (6, 5)))
    assert torch.equal(resumed.iou(), fed(table, samples, masks, 4).iou())


def test_mismatches_are_refused() -> None:
    other_table = ConceptTable((Concept(1, "tree", "object"), Concept(2, "door", "part")), ("object", "part"))
    overlap = ConceptOverlap(2, TABLE)
    with pytest.raises(StatsError, match="concepts_crc"):
        overlap.merge(ConceptOverlap(2, other_table))
    with pytest.raises(StatsError, match="num_units"):
        overlap.load_state_dict(ConceptOverlap(3, TABLE).state_dict())
    samples, masks = hand_fixture()
    with pytest.raises(StatsError, match="another concept table"):
        overlap.update(masks, LabelBatch.from_samples(samples, other_table, (4, 4)))
    with pytest.raises(StatsError, match="label size"):
        overlap.update(masks[:, :, :2], LabelBatch.from_samples(samples, TABLE, (4, 4)))
    with pytest.raises(StatsError, match="bool masks"):
        overlap.update(masks.float(), LabelBatch.from_samples(samples, TABLE, (4, 4)))
    with pytest.raises(StatsError, match="label_size"):
        LabelBatch.from_samples(samples, TABLE, (8, 8))
    assert overlap.num_images == 0
    assert int(overlap.intersection.sum()) == 0


@pytest.mark.parametrize("integer", [True, False])
def test_both_product_paths_count_exactly(integer: bool) -> None:
    # The int8 path (CPU) and the float32 path (CUDA) against numpy, on odd sizes.
    rng = np.random.default_rng(11)
    units, regions = rng.random((5, 37)) < 0.4, rng.random((3, 37)) < 0.5
    expected = (units[:, None, :] & regions[None, :, :]).sum(axis=2)
    got = count_overlaps(torch.from_numpy(units), torch.from_numpy(regions), integer=integer)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("batch", [1, 4, 9])
def test_update_active_with_only_non_empty_masks_equals_dense_update(batch: int) -> None:
    table, samples, masks = random_fixture(seed=11, n_images=9, units=5)
    masks[:, 1] = False  # a unit that never fires
    masks[2] = False  # an image where nothing fires
    dense = fed(table, samples, masks, batch)
    sparse = ConceptOverlap(masks.shape[1], table)
    for start in range(0, len(samples), batch):
        part = masks[start:start + batch]
        image_of, unit_of = torch.nonzero(part.flatten(2).any(dim=2), as_tuple=True)
        labels = LabelBatch.from_samples(samples[start:start + batch], table, (6, 5))
        sparse.update_active(part[image_of, unit_of], image_of, unit_of, labels)
    for key in ("intersection", "label_area", "unit_area"):
        assert torch.equal(getattr(sparse, key), getattr(dense, key)), key
    assert sparse.num_images == dense.num_images
    np.testing.assert_allclose(sparse.iou().numpy(), naive_iou(table, samples, masks), rtol=1e-12, atol=0)


@pytest.mark.parametrize("density", [0.5, 0.02])  # dense counting, and torch.unique for a mostly empty table
def test_mask_counts_match_brute_force(density: float) -> None:
    """Each mask's area and its on pixels per label, against a loop over masks and labels."""
    from unitscope.stats.iou import MaskCounts, MaskPixels

    rng = np.random.default_rng(5)
    names = ("object", "part")
    concepts = ConceptTable(tuple(Concept(n, f"c{n}", names[n % 2]) for n in range(1, 40)), names)
    size = (4, 5)
    samples = [ProbeSample(i, np.zeros((4, 5, 3), np.uint8),
                           {"object": rng.integers(0, 40, (2, *size)), "part": rng.integers(0, 40, (1, *size))}, {})
               for i in range(3)]
    labels = LabelBatch.from_samples(samples, concepts, size)
    image_of = torch.tensor([0, 0, 1, 2, 2, 2])
    on = rng.random((6, 20)) < density
    index, pixel = (torch.from_numpy(a) for a in np.nonzero(on))
    counts = MaskCounts.build(MaskPixels(index, pixel, 6, size), image_of, labels)
    assert torch.equal(counts.active, torch.from_numpy(on.sum(axis=1)))
    expected = []
    for m in range(6):
        sample = samples[int(image_of[m])]
        stacked = np.concatenate([v.reshape(len(v), 20) for v in sample.pixel_labels.values()])
        for label in range(1, 40):
            n = int((on[m] & (stacked == label).any(axis=0)).sum())
            if n:
                expected.append((m, label, n))
    got = list(zip(counts.mask.tolist(), counts.label.tolist(), counts.count.tolist(), strict=True))
    assert got == expected
    assert counts.mask.dtype == counts.label.dtype == torch.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_encoder_table_matches_a_pixel_by_pixel_reading(seed: int) -> None:
    """The run-wise encoder against the rule read pixel by pixel: a concept number once per pixel (a repeat in
    a later map is -1), whole-image labels and numbers outside the table never in the table."""
    from unitscope.stats.labels import LabelEncoder

    rng = np.random.default_rng(seed)
    names = ("object", "part", "scene")
    concepts = ConceptTable(tuple(Concept(n, f"c{n}", names[n % 3]) for n in range(1, 9) if n != 4), names)
    encoder = LabelEncoder(concepts, (4, 6))
    for index in range(12):
        blocky = np.repeat(rng.integers(-2, 11, (3, 4, 2)), 3, axis=2)  # runs, and labels shared between maps
        maps = {"object": blocky[:2], "part": blocky[2:] if index % 2 else rng.integers(0, 4, (1, 4, 6))}
        whole = {"scene": (3,)} if index % 3 == 0 else {}
        sample = ProbeSample(index, np.zeros((4, 6, 3), np.uint8), maps, whole)
        encoded = encoder.encode(sample)
        stacked = np.concatenate([m.reshape(len(m), 24) for m in maps.values()])
        expected = np.full(stacked.shape, -1)
        for p in range(24):
            seen: set[int] = set()
            for k, number in enumerate(stacked[:, p]):
                if number in (1, 2, 3, 5, 6, 7, 8) and number not in seen and not (whole and number == 3):
                    expected[k, p] = number
                    seen.add(int(number))
        assert np.array_equal(encoded.table, expected)
        present = {int(n) for n in expected[expected > 0]} | ({3} if whole else set())
        assert encoded.annotated.tolist() == [name in {names[n % 3] for n in present} for name in names]
