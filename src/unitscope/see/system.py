"""``SeeSystem``: a finished run's network, reopened once, that sees images in one forward pass per batch.

Opening does the one-time work: the run's model through :mod:`unitscope.dissection.reopen` (never code
from the run folder), the concept vectors fitted on the run's probe set exactly as ``segment`` fits them
(:func:`unitscope.analysis.segment.vector_run.fit_for_run`), and the CAM site (plain CAM on a GAP + linear
head, else Grad-CAM at ``conv5`` or the last feature map: :func:`unitscope.analysis.cam.site.find_cam_site`).
``see(images)`` then costs one forward pass (and, for Grad-CAM, one backward through the head) per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unitscope.analysis.segment.vectors import ConceptVectors, FeatureMaps
from unitscope.batching import batch_ranges
from unitscope.defaults import FIT_N
from unitscope.dissection.reopen import Trust
from unitscope.dissection.result import DissectionResult
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.see.boxes import Region, batch_regions, scale_box, thing_numbers
from unitscope.see.onepass import CamPlan, OnePass, PassResult
from unitscope.see.sight import ObjectBox, SceneGuess, Sight, Support

TOP_CLASSES = 5
UNITS_PER_OBJECT = 3


@dataclass(frozen=True)
class SeeOptions:
    """What a system is built with: the vectors' layers (None: all the run's) and category, the images they
    are fitted on, the CAM layer and method, the batch size and the smallest region boxed."""

    layers: tuple[str, ...] | None = None
    category: str = "object"
    fit_n: int = FIT_N
    fit_data: str | None = None
    cam_layer: str | None = None
    cam_method: str = "auto"
    batch_size: int = 16
    min_pixels: int = 4

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {self.batch_size}")
        if self.fit_n <= 1:
            raise UsageError(f"--fit-n must be at least 2, got {self.fit_n}")


class SeeSystem:
    """The all-in-one system of one run: ``SeeSystem.open(run).see([image, ...]) -> [Sight, ...]``."""

    def __init__(self, run: DissectionResult, model: LoadedModel, features: FeatureMaps, vectors: ConceptVectors,
                 cam: CamPlan, options: SeeOptions) -> None:
        self.run = run
        self.model = model
        self.features = features
        self.vectors = vectors
        self.cam = cam
        self.options = options
        self.passes = 0  # forward passes made by see() so far
        self._pass = OnePass(model, features, vectors, cam)
        record = run.record
        self.image_size: tuple[int, int] = record.image_size
        self.label_size: tuple[int, int] = record.label_size
        names = model.class_names or (list(record.class_names) if record.class_names else None)
        self.class_names: list[str] | None = names
        objects = {c.name: c.number for c in run.concepts.in_category(options.category)}
        self.things = thing_numbers(objects, record.spec.data.data)
        self._numbers = torch.from_numpy(np.asarray(vectors.numbers, dtype=np.int64))
        self._units = _unit_labels(run, vectors)
        self._column = {int(number): k for k, number in enumerate(vectors.numbers)}  # concept → row of weights
        self._weights = torch.from_numpy(np.asarray(vectors.weights)).double()

    @classmethod
    def open(cls, run: str | Path, model: str | None = None, weights: str | None = None, device: str = "cpu",
             trust: Trust | None = None, options: SeeOptions | None = None) -> SeeSystem:
        """Reopen ``run``'s network (``model``/``weights``: the user's own, checked against the run's digest;
        default the run's recorded model) and fit its concept vectors."""
        from unitscope.analysis.segment.vector_run import fit_for_run
        from unitscope.dissection.reopen import reopen_model

        options = options or SeeOptions()
        result = DissectionResult.load(Path(run))
        trust = trust or Trust()
        if model is not None:
            trust = replace(trust, model=model, weights=weights)
        elif weights is not None:
            raise UsageError("--weights goes with --model; without --model the run's own weights are used")
        from unitscope.models.loading import resolve_device

        loaded = reopen_model(result, device=str(resolve_device(device)), trust=trust)
        features, vectors = fit_for_run(loaded, result, options.layers, options.category, options.fit_n,
                                        options.fit_data)
        return cls(result, features.model, features, vectors, _cam_plan(features.model, result, options), options)

    def twin(self, seed: int) -> SeeSystem:
        """The random-weights twin (:func:`~unitscope.dissection.baseline.random_baseline`): the same
        architecture re-initialised from ``seed``, its own vectors fitted the same way, the same CAM site."""
        from unitscope.analysis.segment.vector_run import fit_features
        from unitscope.dissection.baseline import random_baseline

        model = random_baseline(self.model, seed)
        features = FeatureMaps(model, self.features.paths, self.features.upsamplers)
        vectors = fit_features(features, self.run, self.vectors.layers, self.options.category, self.options.fit_n,
                               self.options.fit_data)
        return SeeSystem(self.run, model, features, vectors, self.cam, self.options)

    def prepare(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] at the size the run was dissected at (resized when it is not)."""
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        pil = pil.convert("RGB")
        h, w = self.image_size
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(pil, dtype=np.uint8)

    def see(self, images: Sequence[Image.Image | np.ndarray], names: Sequence[str] | None = None) -> list[Sight]:
        """One :class:`Sight` per image, in one forward pass per batch of ``options.batch_size``."""
        if names is not None and len(names) != len(images):
            raise UsageError(f"{len(names)} names for {len(images)} images; give one name per image")
        chosen = list(names) if names is not None else [f"{i:05d}" for i in range(len(images))]
        sights: list[Sight] = []
        for part in batch_ranges(len(images), self.options.batch_size):
            given = [images[i] for i in part]
            sizes = [_size_of(image) for image in given]
            arrays = [self.prepare(image) for image in given]
            sights.extend(self.see_arrays(arrays, [chosen[i] for i in part], sizes))
        return sights

    def see_arrays(self, arrays: list[np.ndarray], names: list[str], sizes: list[tuple[int, int]] | None = None,
                   targets: Sequence[int] | None = None) -> list[Sight]:
        """Images already at the run's size (uint8 [H, W, 3]) as one batch: one forward pass. ``targets``: the
        classes the maps explain (default each image's top-1)."""
        x = self.model.preprocess.batch(arrays, self.model.device)
        chosen = None if targets is None else torch.as_tensor(list(targets), dtype=torch.long)
        result = self._pass(x, self.label_size, chosen)
        self.passes += 1
        return self._sights(result, names, sizes or [self.image_size] * len(arrays))

    def _sights(self, result: PassResult, names: list[str], sizes: list[tuple[int, int]]) -> list[Sight]:
        """The batch's sights: everything per pixel or per region is computed for the whole batch at once."""
        probabilities = torch.softmax(result.logits.double(), dim=1)
        top = torch.topk(probabilities, min(TOP_CLASSES, probabilities.shape[1]), dim=1)
        tops = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        # the first best concept per pixel (as argmax), over the maps' own layout: max(dim) is the faster kernel
        best = result.scores.permute(0, 3, 1, 2).max(dim=1).indices
        labels = self._numbers[best.cpu()].numpy()  # [B, sh, sw]
        found = batch_regions(labels, self.things, self.options.min_pixels)
        objects = self._objects(result, found, sizes)
        sights = []
        for j, (values, indices) in enumerate(tops):
            scene = tuple(SceneGuess(int(k), self._class_name(int(k)), float(p))
                          for p, k in zip(values, indices, strict=True))
            present = {int(c) for c in np.unique(labels[j])} - {0}
            concepts = {c: self.run.concepts[c].name for c in sorted(present) if c in self.run.concepts}
            sights.append(Sight(names[j], sizes[j], scene, self.cam.method, self._layer_name(self.cam.layer),
                                result.heat[j], labels[j], concepts, tuple(objects[j])))
        return sights

    def _objects(self, result: PassResult, found: list[list[Region]],
                 sizes: list[tuple[int, int]]) -> list[list[ObjectBox]]:
        """Every region of the batch as a box, with its confidence (the concept's mean softmax probability over
        the region) and the units behind it (largest ``w_cu · x̄_u``, ``x̄`` the region's mean standardised
        feature), in a few batched products instead of a loop over units."""
        flat = [(j, region) for j, image in enumerate(found) for region in image]
        boxes: list[list[ObjectBox]] = [[] for _ in found]
        if not flat:
            return boxes
        device = result.scores.device
        images = torch.as_tensor([j for j, _ in flat], dtype=torch.long, device=device)
        columns = torch.as_tensor([self._column[r.number] for _, r in flat], dtype=torch.long, device=device)
        masks = torch.from_numpy(np.stack([r.mask for _, r in flat])).to(device)  # [R, sh, sw]
        confidence = _mean_probability(result.scores, images, masks, columns)
        means = self._pass.projection.region_means(result.activations, images, masks)  # [R, D]
        contribution = self._weights.to(device)[columns] * means
        top = torch.topk(contribution, min(UNITS_PER_OBJECT, contribution.shape[1]), dim=1)
        rows = zip(flat, confidence.tolist(), top.values.tolist(), top.indices.tolist(), strict=True)
        for (j, region), conf, values, features in rows:
            name = self.run.concepts[region.number].name
            support = tuple(self._support(d, v, name) for v, d in zip(values, features, strict=True) if v > 0)
            boxes[j].append(ObjectBox(name, region.number, scale_box(region.box, self.label_size, sizes[j]), conf,
                                      region.pixels, support))
        return boxes

    def _support(self, feature: int, contribution: float, concept: str) -> Support:
        layer, unit = _feature_unit(self.vectors, feature)
        label, iou, detector = self._units.get((layer, unit), ("", 0.0, False))
        return Support(layer, unit, contribution, label, iou, detector and label == concept)

    def _class_name(self, k: int) -> str:
        names = self.class_names
        return names[k] if names is not None and k < len(names) else str(k)

    def _layer_name(self, path: str) -> str:
        for name, layer in self.run.layers.items():
            if layer.path == path:
                return name
        return path


def _mean_probability(scores: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
                      columns: torch.Tensor) -> torch.Tensor:
    """[R] each region's mean softmax probability (over the concepts, float64) of its own concept, computed
    at the region's pixels only."""
    region, y, x = masks.nonzero(as_tuple=True)
    picked = scores[images[region], y, x].double()  # [P, C+1]: the scores at every region pixel
    mine = picked.gather(1, columns[region][:, None])[:, 0] - torch.logsumexp(picked, dim=1)
    total = torch.zeros(len(masks), dtype=torch.float64, device=scores.device).index_add_(0, region, mine.exp())
    return total / torch.bincount(region, minlength=len(masks)).double()


def _size_of(image: Image.Image | np.ndarray) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size[1], image.size[0]
    return int(np.asarray(image).shape[0]), int(np.asarray(image).shape[1])


def _feature_unit(vectors: ConceptVectors, feature: int) -> tuple[str, int]:
    """The (layer, unit) of one column of the concatenated features."""
    start = 0
    for layer, width in zip(vectors.layers, vectors.widths, strict=True):
        if feature < start + width:
            return layer, feature - start
        start += width
    raise ValueError(f"feature {feature} is past the vectors' {start} units")


def _unit_labels(run: DissectionResult, vectors: ConceptVectors) -> dict[tuple[str, int], tuple[str, float, bool]]:
    """Each unit's dissection label, IoU and whether it is a detector, for the layers the vectors read."""
    found: dict[tuple[str, int], tuple[str, float, bool]] = {}
    for layer in vectors.layers:
        table = run.layers[layer].units
        for unit, label, iou, detector in zip(table["unit"], table["label"], table["iou"], table["detector"],
                                              strict=True):
            found[(layer, int(unit))] = ("" if label is None or label != label else str(label), float(iou),
                                         bool(detector))
    return found


def _cam_plan(model: LoadedModel, run: DissectionResult, options: SeeOptions) -> CamPlan:
    """The CAM site for the run's input size: plain CAM where the head allows it, else Grad-CAM."""
    from unitscope.analysis.cam.site import find_cam_site

    h, w = run.record.image_size
    example = model.preprocess.batch([np.zeros((h, w, 3), np.uint8)], model.device)
    site = find_cam_site(model.module, example, options.cam_layer, options.cam_method)
    classifier = None
    if site.classifier is not None:
        classifier = next(name for name, sub in model.module.named_modules() if sub is site.classifier)
    return CamPlan(site.layer, classifier)
