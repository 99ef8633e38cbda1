"""``see``: one forward pass per batch, batch-size independence, the JSON schema, boxes, AP, errors, pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from planted import PlantedProbe
from sklearn.metrics import average_precision_score
from test_analysis_planted import dissect_planted

from unitscope.analysis.segment.vectors import ConceptVectors
from unitscope.data.broden_export import write_broden
from unitscope.errors import UsageError
from unitscope.see import SeeOptions, SeeSystem, Sight, write_sight_page
from unitscope.see.ap import average_precision, collect, mean_ap
from unitscope.see.boxes import batch_regions, regions, scale_box


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """The planted GAP network's run, a Broden export to fit the vectors on, and a labelled test export."""
    root = tmp_path_factory.mktemp("see")
    spec, run_dir = dissect_planted(root, n=6)
    write_broden(root / "fit", PlantedProbe(16, seed=4, blue_noise=False), progress=False)
    test = write_broden(root / "test", PlantedProbe(5, seed=9, blue_noise=False), progress=False)
    return spec, run_dir, test


def _system(planted: tuple[str, Path, Path], **options: object) -> SeeSystem:
    spec, run_dir, test = planted
    chosen = SeeOptions(fit_n=16, fit_data=str(test.parent / "fit"), min_pixels=1, **options)  # type: ignore[arg-type]
    return SeeSystem.open(run_dir, model=spec, options=chosen)


def _images(n: int, seed: int = 9) -> list[np.ndarray]:
    probe = PlantedProbe(n, seed=seed, blue_noise=False)
    return [probe[i].image for i in range(n)]


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_one_forward_pass_per_batch(planted: tuple[str, Path, Path], method: str) -> None:
    system = _system(planted, batch_size=2, cam_method=method)
    calls: list[int] = []
    handle = system.model.module.register_forward_pre_hook(lambda _m, _i: calls.append(1))
    try:
        sights = system.see(_images(5))
    finally:
        handle.remove()
    assert len(sights) == 5 and len(calls) == 3 == system.passes  # batches of 2, 2 and 1
    assert sights[0].cam_method == method


def test_results_do_not_depend_on_batch_size(planted: tuple[str, Path, Path]) -> None:
    one = _system(planted, batch_size=1, cam_method="gradcam").see(_images(4))
    four = _system(planted, batch_size=4, cam_method="gradcam").see(_images(4))
    for a, b in zip(one, four, strict=True):
        assert np.array_equal(a.segmentation, b.segmentation)
        assert np.allclose(a.heatmap, b.heatmap, atol=1e-6)
        assert [o.box for o in a.objects] == [o.box for o in b.objects]
        assert [g.index for g in a.scene] == [g.index for g in b.scene]
        assert a.scene[0].probability == pytest.approx(b.scene[0].probability, abs=1e-6)


def test_planted_objects_are_found_where_they_are(planted: tuple[str, Path, Path]) -> None:
    """The square is a 4x4 red block: its box is exactly that block, and the red unit stands behind it."""
    probe = PlantedProbe(3, seed=9, blue_noise=False)
    sights = _system(planted).see([probe[i].image for i in range(3)])
    for i, sight in enumerate(sights):
        ys, xs = np.nonzero(probe[i].pixel_labels["object"][0] == 1)
        squares = [o for o in sight.objects if o.concept == "square"]
        assert [o.box for o in squares] == [(ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)]
        assert squares[0].units[0].unit == 0 and squares[0].units[0].layer == "features"


def test_json_schema_round_trip(planted: tuple[str, Path, Path]) -> None:
    sight = _system(planted).see(_images(1), names=["one"])[0]
    data = json.loads(json.dumps(sight.to_json()))
    assert data["schema"] == "unitscope.see/sight" and data["version"] == 1
    back = Sight.from_json(data)
    assert back.to_json() == data
    assert back.objects == sight.objects and back.scene == sight.scene
    assert np.array_equal(back.segmentation, sight.segmentation)
    assert np.allclose(back.heatmap, sight.heatmap, atol=0.5 / 255)
    with pytest.raises(UsageError, match="version"):
        Sight.from_json({**data, "version": 99})


def test_boxes_from_a_hand_made_segmentation() -> None:
    labels = np.zeros((8, 8), np.int64)
    labels[0:2, 0:3] = 1  # one instance of 1
    labels[2, 3] = 1  # touches it diagonally: the same instance (8-connected)
    labels[5:8, 5:7] = 1  # a second instance of 1
    labels[6, 0] = 1  # one pixel: below min_pixels, dropped
    labels[4:6, 0:3] = 2  # class 2 is stuff here: never boxed
    found = regions(labels, things={1}, min_pixels=2)
    assert [(r.number, r.box, r.pixels) for r in found] == [(1, (0, 0, 3, 4), 7), (1, (5, 5, 8, 7), 6)]
    assert scale_box((0, 0, 3, 4), (8, 8), (16, 32)) == (0, 0, 6, 16)


def test_average_precision_by_hand_and_against_sklearn() -> None:
    # image 0: two instances; detections 0.9 (hit), 0.6 (miss), 0.5 (hit). image 1: one instance, never found;
    # one detection 0.8 far away. Ranked: 0.9 T, 0.8 F, 0.6 F, 0.5 T over 3 instances:
    # AP = 1/3 * 1 + 1/3 * 2/4 = 0.5
    predicted = [[((0, 0, 4, 4), 0.9), ((10, 10, 12, 12), 0.6), ((6, 6, 9, 9), 0.5)], [((20, 20, 22, 22), 0.8)]]
    truth = [[(0, 0, 4, 4), (6, 6, 10, 9)], [(0, 0, 2, 2)]]
    found = collect(predicted, truth)
    assert list(found.true) == [True, False, True, False]
    assert average_precision(found, np.ones((1, 2)))[0] == pytest.approx(0.5)
    sk = average_precision_score(found.true, found.confidence)  # recall over the detections found only
    assert average_precision(found, np.ones((1, 2)))[0] == pytest.approx(sk * found.true.sum() / 3)
    # an image drawn twice counts twice: the same as listing it twice
    twice = collect([predicted[0], predicted[0], predicted[1]], [truth[0], truth[0], truth[1]])
    assert average_precision(found, np.array([[2.0, 1.0]]))[0] == pytest.approx(
        average_precision(twice, np.ones((1, 3)))[0])
    assert np.isnan(mean_ap([collect([[]], [[]])], np.ones((1, 1)))[0])  # no instance: no AP


def test_the_sight_page_stands_on_the_base_and_links_units(planted: tuple[str, Path, Path], tmp_path: Path) -> None:
    from test_one_look import assert_on_base

    images = _images(1)
    sight = _system(planted).see(images, names=["pic"])[0]
    page = write_sight_page(sight, images[0], tmp_path, run_url="../run")
    html = page.read_text()
    assert_on_base(html)
    assert page.name == "pic.html" and 'data-role="box"' in html
    assert 'href="../run/units/features/0.html"' in html  # the square's box leads to the red unit's page


def test_cli_scores_and_writes_the_table(planted: tuple[str, Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir, test = planted
    out = tmp_path / "out"
    result = run_cli(capsys, "see", "--model", spec, "--run", str(run_dir), "--data", str(test), "--n", "5",
                     "--fit-n", "16", "--fit-data", str(test.parent / "fit"), "--out", str(out), "--score", "--json",
                     "--batch-size", "2")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    assert len(lines) == 5 and all(line["schema"] == "unitscope.see/sight" for line in lines)
    table = json.loads((out / "score.json").read_text())
    assert [r["measure"] for r in table["rows"]] == ["scene top-1", "detection mAP@0.5", "segmentation mean IoU",
                                                      "CAM pointing game"]
    assert (out / "score.csv").read_text().startswith("measure,trained,random")
    assert 'data-role="score"' in (out / "index.html").read_text()
    assert sorted(p.name for p in out.glob("*.json")) == sorted([*(f"{i:05d}.json" for i in range(5)),
                                                                 "score.json"])


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "sceneworld", "--image", "x.png"], "not both"),
    ([], "not both and not neither"),
    (["--image", "missing.png"], "does not exist"),
    (["--data", "sceneworld", "--batch-size", "0"], "--batch-size must be positive"),
])
def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                 message: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    result = run_cli(capsys, "see", "--run", str(run), "--out", str(tmp_path / "out"), *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_cli_refuses_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "see", "--run", str(tmp_path / "nope"), "--data", "sceneworld", "--out",
                     str(tmp_path / "out"))
    assert result.code == 2 and "does not exist" in result.err


def test_gradcam_backward_stops_at_the_cam_layer(planted: tuple[str, Path, Path]) -> None:
    """No parameter gets a gradient and the parameters' requires_grad flags are restored after the pass."""
    system = _system(planted, cam_method="gradcam")
    system.see(_images(2))
    assert all(p.grad is None and p.requires_grad for p in system.model.module.parameters())
    assert torch.is_grad_enabled()


def _random_vectors(widths: tuple[int, ...], classes: int, seed: int = 0) -> ConceptVectors:
    rng = np.random.default_rng(seed)
    d = sum(widths)
    return ConceptVectors(tuple(f"l{i}" for i in range(len(widths))), tuple(f"p{i}" for i in range(len(widths))),
                          widths, np.arange(classes, dtype=np.int64), tuple(f"c{i}" for i in range(classes)),
                          rng.normal(size=(classes, d)).astype(np.float32), rng.normal(size=classes).astype(np.float32),
                          rng.normal(size=d).astype(np.float32), rng.uniform(0.5, 2, size=d).astype(np.float32), {})


@pytest.mark.parametrize("mode", ["rf", "bilinear"])
def test_projected_scores_equal_segments_upsample_then_score(mode: str) -> None:
    """Projecting onto the concepts before upsampling gives segment's scores (upsample every unit, standardise,
    w·x + b), its argmax, and each region's mean standardised feature, on two layers of different sizes."""
    from unitscope.analysis.segment.vector_run import concept_scores, standardised
    from unitscope.dissection.upsample import Upsampler
    from unitscope.see.projection import ConceptProjection

    label, image = (20, 24), (40, 48)
    ups = [Upsampler.build(mode, (5, 6), label, image, 8.0, 3.5),
           Upsampler.build(mode, (3, 3), label, image, 16.0, 7.5)]
    vectors = _random_vectors((4, 3), 6)
    generator = torch.Generator().manual_seed(1)
    activations = [torch.rand(3, 4, 5, 6, generator=generator), torch.rand(3, 3, 3, 3, generator=generator)]
    full = torch.cat([u(a) for u, a in zip(ups, activations, strict=True)], dim=1)  # segment's [B, D, sh, sw]
    reference = concept_scores(vectors, standardised(vectors, full))
    projection = ConceptProjection(vectors, ups, torch.device("cpu"))
    scores = projection.scores(activations)
    assert scores.shape == reference.shape == (3, *label, 6)
    assert torch.allclose(scores, reference, atol=1e-4)
    assert torch.equal(scores.permute(0, 3, 1, 2).max(dim=1).indices, reference.argmax(dim=-1))
    masks = torch.zeros(2, *label, dtype=torch.bool)
    masks[0, 2:9, 3:7] = True
    masks[1, 10:20, 0:24:3] = True
    images = torch.tensor([2, 0])
    means = projection.region_means(activations, images, masks)
    standard = standardised(vectors, full).double()
    expected = torch.stack([standard[b][:, m].mean(dim=1) for b, m in zip(images.tolist(), masks, strict=True)])
    assert torch.allclose(means, expected, atol=1e-5)


def test_batched_regions_equal_each_images_regions() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(5, 12, 12))
    labels[1, :, :] = 2  # the same pixels as image 2's: never one region across images
    labels[2, :, :] = 2
    batched = batch_regions(labels, things={1, 2, 3}, min_pixels=2)
    for image, found in zip(labels, batched, strict=True):
        alone = regions(image, things={1, 2, 3}, min_pixels=2)
        assert [(r.number, r.box, r.pixels) for r in found] == [(r.number, r.box, r.pixels) for r in alone]
        assert all(np.array_equal(a.mask, b.mask) for a, b in zip(found, alone, strict=True))
    assert [(r.number, r.box) for r in batched[1]] == [(2, (0, 0, 12, 12))]


def test_see_equals_the_reference_computation(planted: tuple[str, Path, Path]) -> None:
    """The optimised pass gives what segment's route gives: upsample every unit, standardise, score, argmax, one
    region at a time, softmax over the whole map, the region's mean standardised feature."""
    from unitscope.analysis.segment.vector_run import concept_scores, standardised

    system = _system(planted, batch_size=4)
    images = _images(4)
    sights = system.see(images)
    logits, maps = system.features(images)
    standard = standardised(system.vectors, maps)
    scores = concept_scores(system.vectors, standard)
    for j, sight in enumerate(sights):
        labels = system.vectors.numbers[scores[j].argmax(dim=-1).numpy()]
        assert np.array_equal(sight.segmentation, labels)
        probability = torch.softmax(scores[j].double(), dim=-1)
        found = regions(labels, system.things, 1)
        assert [o.box for o in sight.objects] == [r.box for r in found]  # image and label sizes are equal here
        for box, region in zip(sight.objects, found, strict=True):
            k = int(np.flatnonzero(system.vectors.numbers == region.number)[0])
            mask = torch.from_numpy(region.mask)
            assert box.confidence == pytest.approx(float(probability[..., k][mask].mean()), abs=1e-6)
            contribution = torch.from_numpy(system.vectors.weights[k]).double() * standard[j][:, mask].mean(1).double()
            top = [int(d) for d in torch.argsort(contribution, descending=True)[:3] if contribution[d] > 0]
            assert [s.unit for s in box.units] == top
            assert [s.contribution for s in box.units] == pytest.approx([float(contribution[d]) for d in top], abs=1e-6)
        assert sight.top.index == int(logits[j].argmax())


def test_batched_regions_equal_each_images_regions_on_random_maps() -> None:
    """Many concepts touching each other (8-connectivity between equal values only), thin and diagonal runs."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 6, size=(6, 8, 8))
    labels = np.kron(coarse, np.ones((2, 2), dtype=np.int64))[:, :15, :15] * (rng.random((6, 15, 15)) > 0.15)
    for things, smallest in (({1, 2, 3, 4, 5}, 1), ({2, 5}, 3)):
        batched = batch_regions(labels, things, smallest)
        for image, found in zip(labels, batched, strict=True):
            alone = regions(image, things, smallest)
            assert [(r.number, r.box) for r in found] == [(r.number, r.box) for r in alone]
            assert all(np.array_equal(a.mask, b.mask) for a, b in zip(found, alone, strict=True))
