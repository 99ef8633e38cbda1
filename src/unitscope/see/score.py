"""``see --score``: the system measured against exact truth, beside its random-weights twin.

Per image, for the trained network and its twin (the same architecture re-initialised, its own concept
vectors fitted the same way, its map made for the trained network's class): scene top-1 (images with a scene
label), detection AP at IoU 0.5 per thing class and their mean (:mod:`unitscope.see.ap`), segmentation mean
IoU over the object classes present in the truth (``segment``'s confusion-matrix scores) and the pointing
game on the foreground objects (``cam``'s rule and meter). Each trained − random difference gets a 95 %
paired bootstrap interval over the images (``stats/paired.py``); AP and mean IoU re-sum per-image counts
with image weights, so every resample is exact.

Ground-truth instances: SceneWorld renders every placed object's exact visible mask (``item_map``), so an
instance is one placed object, its box the extent of its visible pixels at the label resolution. A Broden
directory has per-pixel class masks only: an instance is then a connected region (8-connected) of one thing
class's mask — the same rule the predictions follow, said so in ``score.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitscope.analysis.cam.foreground import ForegroundRule
from unitscope.analysis.cam.localisation import LocalisationMeter
from unitscope.analysis.segment.scores import ConfusionMeter
from unitscope.data.probe import ProbeSample, ProbeSet
from unitscope.see.ap import Box, Detections, average_precision, collect, mean_ap
from unitscope.see.boxes import regions, scale_box
from unitscope.see.sight import Sight
from unitscope.stats.paired import PairedDifference, mean_of, paired_bootstrap, paired_bootstrap_weighted, verdict

RESAMPLES = 2000
SEED = 0
INSTANCES_SCENEWORLD = "SceneWorld's placed objects (exact visible masks), boxed at the label resolution"
INSTANCES_COMPONENTS = ("connected regions (8-connected) of each thing class's mask: the probe set has per-pixel "
                        "class masks only")


def truth_instances(probe: ProbeSet, index: int, sample: ProbeSample, things: set[int],
                    image_size: tuple[int, int]) -> dict[int, list[Box]]:
    """The ground-truth instances of one sample per thing class, as boxes in image pixels."""
    from unitscope.data.sceneworld import SceneWorldProbe

    maps = sample.pixel_labels.get("object")
    if maps is None:
        return {}
    maps = maps[None] if maps.ndim == 2 else maps
    label_size = (int(maps.shape[1]), int(maps.shape[2]))
    found: dict[int, list[Box]] = {}
    if isinstance(probe, SceneWorldProbe):
        rendered = probe.render(sample.index)
        if rendered.item_map is not None:
            s = probe.label_scale
            items = rendered.item_map[s // 2::s, s // 2::s]
            labels = rendered.object_map[s // 2::s, s // 2::s]
            for item in np.unique(items):
                where = items == item
                number = int(labels[where][0])
                if number not in things:
                    continue
                ys, xs = np.nonzero(where)
                box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
                found.setdefault(number, []).append(scale_box(box, label_size, image_size))
            return found
    for number in sorted({int(c) for c in np.unique(maps)} & things):
        mask = (maps == number).any(axis=0)
        for region in regions(np.where(mask, number, 0), {number}, min_pixels=1):
            found.setdefault(number, []).append(scale_box(region.box, label_size, image_size))
    return found


@dataclass
class NetworkScore:
    """One network's per-image records."""

    classes: Sequence[int]
    top1: list[float] = field(default_factory=list)
    pointing: list[float | None] = field(default_factory=list)
    boxes: list[dict[int, list[tuple[Box, float]]]] = field(default_factory=list)
    meter: ConfusionMeter = field(init=False)
    localisation: LocalisationMeter = field(default_factory=LocalisationMeter)

    def __post_init__(self) -> None:
        self.meter = ConfusionMeter(self.classes)

    def update(self, sight: Sight, truth_scene: str | None, truth: np.ndarray | None, mask: np.ndarray | None) -> None:
        self.top1.append(float("nan") if truth_scene is None else float(sight.top.name == truth_scene))
        if truth is not None:
            self.meter.update(np.asarray(sight.segmentation), truth)
        if mask is not None:
            score = self.localisation.update(np.asarray(sight.heatmap), mask)
            self.pointing.append(score.pointing if score.scored else None)
        else:
            self.pointing.append(None)
        mine: dict[int, list[tuple[Box, float]]] = {}
        for found in sight.objects:
            mine.setdefault(found.number, []).append((found.box, found.confidence))
        self.boxes.append(mine)


class SeeScorer:
    """Scores the trained network's sights and its twin's on the same labelled images."""

    def __init__(self, probe: ProbeSet, things: set[int], classes: Sequence[int], rule: ForegroundRule,
                 concepts: dict[int, str], image_size: tuple[int, int]) -> None:
        self.probe = probe
        self.things = things
        self.rule = rule
        self.concepts = concepts
        self.image_size = image_size
        self.trained = NetworkScore(classes)
        self.random = NetworkScore(classes)
        self.truth: list[dict[int, list[Box]]] = []

    def update(self, sample: ProbeSample, trained: Sight, random: Sight) -> None:
        scene = sample.image_labels.get("scene")
        truth_scene = self.concepts.get(int(scene[0])) if scene else None
        truth = sample.pixel_labels.get("object")
        mask = self.rule.mask(sample, trained.top.name) if truth is not None else None
        self.trained.update(trained, truth_scene, truth, mask)
        self.random.update(random, truth_scene, truth, mask)
        self.truth.append(truth_instances(self.probe, sample.index, sample, self.things, self.image_size))

    def detections(self, network: NetworkScore) -> dict[int, Detections]:
        classes = sorted({c for image in self.truth for c in image} | {c for image in network.boxes for c in image})
        return {c: collect([image.get(c, []) for image in network.boxes], [image.get(c, []) for image in self.truth])
                for c in classes if c in self.things}

    def result(self, resamples: int = RESAMPLES) -> dict[str, Any]:
        """The table (rows: measure, trained, random, difference, interval), per-class AP and verdicts."""
        n = len(self.truth)
        ones = np.ones((1, n))
        rows: list[dict[str, object]] = []
        top = [np.asarray(net.top1) for net in (self.trained, self.random)]
        keep = np.isfinite(top[0])
        rows.append(_row("scene top-1", [float(np.mean(t[keep])) if keep.any() else None for t in top],
                         paired_bootstrap([top[0][keep]], [top[1][keep]], mean_of, resamples, SEED)))
        mine, theirs = self.detections(self.trained), self.detections(self.random)
        present = [c for c in mine if int(mine[c].instances.sum()) > 0]
        ours = [mine[c] for c in present]
        twin = [theirs.get(c, _empty(mine[c])) for c in present]
        rows.append(_row("detection mAP@0.5", [_first(mean_ap(ours, ones)), _first(mean_ap(twin, ones))],
                         paired_bootstrap_weighted(lambda w: mean_ap(ours, w), lambda w: mean_ap(twin, w), n,
                                                   resamples, SEED)))
        a, b = self.trained.meter.image_counts(), self.random.meter.image_counts()
        rows.append(_row("segmentation mean IoU", [_first(a.mean_iou(ones)), _first(b.mean_iou(ones))],
                         paired_bootstrap_weighted(a.mean_iou, b.mean_iou, n, resamples, SEED)))
        pairs = [(p, q) for p, q in zip(self.trained.pointing, self.random.pointing, strict=True)
                 if p is not None and q is not None]
        points = [np.asarray([pair[k] for pair in pairs], np.float64) for k in (0, 1)]
        rows.append(_row("CAM pointing game", [float(p.mean()) if p.size else None for p in points],
                         paired_bootstrap([points[0]], [points[1]], mean_of, resamples, SEED)))
        classes = [{"name": self.concepts.get(c, str(c)), "number": c, "instances": int(mine[c].instances.sum()),
                    "trained": float(average_precision(mine[c], ones)[0]),
                    "random": float(average_precision(theirs.get(c, _empty(mine[c])), ones)[0])} for c in present]
        return {"images": n, "rows": rows, "classes": classes,
                "instances": INSTANCES_SCENEWORLD if _is_world(self.probe) else INSTANCES_COMPONENTS,
                "foreground": self.rule.describe(), "resamples": resamples,
                "verdicts": [str(r["verdict"]) for r in rows]}


def _is_world(probe: ProbeSet) -> bool:
    from unitscope.data.sceneworld import SceneWorldProbe

    return isinstance(probe, SceneWorldProbe)


def _empty(like: Detections) -> Detections:
    return Detections(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), like.instances)


def _first(values: np.ndarray) -> float | None:
    value = float(np.asarray(values).reshape(-1)[0])
    return None if np.isnan(value) else value


def _row(measure: str, values: Sequence[float | None], diff: PairedDifference) -> dict[str, object]:
    shown = diff.to_dict()
    return {"measure": measure, "trained": values[0], "random": values[1], "difference": shown["difference"],
            "low": shown["low"], "high": shown["high"], "n": diff.n,
            "beats_random": diff.beats_baseline if not np.isnan(diff.low) else None,
            "verdict": verdict(diff, measure)}
