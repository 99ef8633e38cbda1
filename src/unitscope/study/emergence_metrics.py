"""The numbers ``study emergence`` keeps per network, depth and category, and the scene − object test.

Every interval is a 95 % percentile interval over the bootstrap resamples of the probe images that
``dissect`` draws (``--bootstrap`` resamples, seed 0: the same N image indices drawn with replacement for
every network dissected on the same probe set; ``stats.bootstrap.draws_digest`` checks it). In each resample
a unit keeps its full-data threshold and significance and takes, among its five best concepts, the one with
the best IoU on the resampled images; it counts as a detector when that IoU reaches the rule's threshold
(``stats/bootstrap.py``). The colour control's survivors are resampled the same way on the recoloured
images, the tested units (the full-data object and part detectors) and their concepts held fixed.

The paper's claim, a scene network develops more object detectors than an object network of the same
architecture, is tested at each depth with the *paired* difference: both networks were dissected on the same
images, so resample r of the scene net and resample r of the object net drew the very same images; the
interval is the 2.5th–97.5th percentile of (scene's object detectors in r) − (object net's in r) over the
resamples, the difference itself the full-data counts'. Likewise for the detectors surviving the colour
control, and for each network against its random twin (``dissection/baseline.py`` records that one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unitscope.dissection.baseline import paired_difference, recorded_resamples
from unitscope.dissection.colour_control import CONTROLLED
from unitscope.dissection.result import DissectionResult, ResampledCounts

NAN2 = [math.nan, math.nan]
ARCH_NAMES = {"alexnet": "AlexNet", "resnet": "ResNet", "vgg": "VGG", "convnext": "ConvNeXt", "vit": "ViT",
              "swin": "Swin"}


def arch_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def _interval(values: np.ndarray | None) -> list[float]:
    if values is None or len(values) == 0:
        return list(NAN2)
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def _counts(table: Any) -> tuple[dict[str, int], dict[str, int]]:
    """(detectors, unique concepts) per category and ``total`` of a detector table's rows."""
    rows = list(table)
    return ({str(r["category"]): int(r["detectors"]) for r in rows},
            {str(r["category"]): int(r["unique"]) for r in rows})


def _survivors(control: Any, layer: str) -> tuple[dict[str, int], ResampledCounts | None]:
    """Detectors surviving the colour control per tested category and ``total``, and their resamples."""
    entry = ((control or {}).get("layers") or {}).get(layer)
    if not isinstance(entry, dict):
        return {}, None
    found = {c: int(v.get("survive_control", 0)) for c, v in (entry.get("categories") or {}).items()}
    found["total"] = int(entry.get("survive_control", 0))
    return found, ResampledCounts.from_record(entry.get("resampled"))


def _resampled(counts: ResampledCounts | None, category: str) -> np.ndarray | None:
    return None if counts is None else counts.counts.get(category)


def layer_metrics(result: DissectionResult, layer: str) -> dict[str, Any]:
    """One dissected layer as the study keeps it: per category the run's detectors and unique concepts with
    their intervals, its random twin's, the paired run − twin difference, and the colour control's survivors
    (object, part and total) of both, with intervals; and the run's and survivors' resampled counts (kept so
    that two networks pair, see :func:`scene_minus_object`)."""
    mine = result.layers[layer]
    detectors, unique = _counts(mine.table.to_dict(orient="records"))
    baseline = (result.record.baseline or {}).get("layers", {}).get(layer) or {}
    twin_detectors, twin_unique = _counts(baseline.get("table") or [])
    twin_resampled = recorded_resamples(baseline)
    survive, survive_resampled = _survivors(result.record.control, layer)
    twin_survive, twin_survive_resampled = _survivors((result.record.baseline or {}).get("control"), layer)
    survive_vs_twin: dict[str, list[float]] = {}
    if survive_resampled is not None and twin_survive_resampled is not None:
        survive_vs_twin = paired_difference(survive_resampled, twin_survive_resampled, survive, twin_survive)
    difference = baseline.get("difference") or {}
    categories: dict[str, dict[str, Any]] = {}
    for category in [*result.concepts.categories, "total"]:
        entry: dict[str, Any] = {
            "detectors": detectors.get(category, 0),
            "detectors_ci": _interval(_resampled(mine.resampled, category)),
            "unique": unique.get(category, 0),
            "twin_detectors": twin_detectors.get(category) if baseline else None,
            "twin_detectors_ci": _interval(_resampled(twin_resampled, category)),
            "twin_unique": twin_unique.get(category) if baseline else None,
            "vs_twin": list(difference.get(category, [math.nan, *NAN2])),
        }
        if category in (*CONTROLLED, "total"):
            entry.update({
                "survive": survive.get(category),
                "survive_ci": _interval(_resampled(survive_resampled, category)),
                "twin_survive": twin_survive.get(category),
                "twin_survive_ci": _interval(_resampled(twin_survive_resampled, category)),
                "survive_vs_twin": list(survive_vs_twin.get(category, [math.nan, *NAN2])),
            })
        categories[category] = entry
    unique_ci = mine.intervals.get("unique_ci")
    categories["total"]["unique_ci"] = list(unique_ci) if isinstance(unique_ci, list | tuple) else list(NAN2)
    return {"units": int(mine.shape[0]), "categories": categories,
            "resampled": mine.resampled.to_record() if mine.resampled is not None else {},
            "survive_resampled": survive_resampled.to_record() if survive_resampled is not None else {}}


def scene_minus_object(scene: dict[str, Any], objects: dict[str, Any], category: str = "object"
                       ) -> dict[str, list[float]]:
    """The paired scene − object difference of one depth (two :func:`layer_metrics`): detectors of
    ``category``, and those surviving the colour control, each [difference, low, high]; NaN bounds where the
    two runs' resamples do not pair (another probe set, seed or resample count) or were not recorded."""
    found = {}
    for key, kept in (("detectors", "resampled"), ("survive", "survive_resampled")):
        a, b = ResampledCounts.from_record(scene.get(kept)), ResampledCounts.from_record(objects.get(kept))
        observed_a = {category: scene["categories"][category].get(key)}
        observed_b = {category: objects["categories"][category].get(key)}
        paired = {}
        if a is not None and b is not None and None not in (observed_a[category], observed_b[category]):
            paired = paired_difference(a, b, observed_a, observed_b)
        if category in paired:
            found[key] = paired[category]
        elif None in (observed_a[category], observed_b[category]):
            found[key] = [math.nan, *NAN2]
        else:
            found[key] = [float(observed_a[category] - observed_b[category]), *NAN2]
    return found


def verdict(difference: list[float]) -> str:
    """``holds`` (the interval lies above 0), ``reversed`` (below 0), ``unresolved`` (it includes 0), or
    ``not measured``."""
    _, low, high = difference
    if math.isnan(low) or math.isnan(high):
        return "not measured"
    if low > 0:
        return "holds"
    if high < 0:
        return "reversed"
    return "unresolved"
