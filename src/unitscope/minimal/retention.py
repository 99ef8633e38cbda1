"""What survives in minimal images: the share of kept pixels on objects, and which objects survive.

Zhou et al. 2015 observed that minimal images of scenes keep a few objects (a bed in a bedroom). With
exact ground truth we measure it per true class:

* ``object_share_original``: of all pixels of the class's original images, the share on any object;
* ``object_share_kept``: of all pixels that minimal images of the class keep, the share on any object
  (pooled over images, so images that keep nothing do not need a special case);
* per object class: in how many of the class's images it appears, in how many it *survives* (at least
  ``SURVIVAL_SHARE`` of its pixels kept), and the pooled share of its pixels kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SURVIVAL_SHARE = 0.5
TOP_OBJECTS = 4


@dataclass(frozen=True)
class ObjectCounts:
    """Ground-truth object pixels of one image, and how many of them the minimal image keeps."""

    pixels: int  # pixels on any object
    kept: int  # of those, kept
    per_object: Mapping[str, tuple[int, int]]  # object name -> (pixels, kept)


def count_objects(object_maps: np.ndarray, kept_pixels: np.ndarray, names: Mapping[int, str]) -> ObjectCounts:
    """Counts for label maps int [k, H, W] (0 = no object; several maps may overlap) and kept bool [H, W]."""
    on_object = (object_maps > 0).any(axis=0)
    per_object: dict[str, tuple[int, int]] = {}
    for number in np.unique(object_maps[object_maps > 0]):
        mask = (object_maps == number).any(axis=0)
        name = names.get(int(number), str(int(number)))
        pixels, kept = per_object.get(name, (0, 0))
        per_object[name] = (pixels + int(mask.sum()), kept + int((mask & kept_pixels).sum()))
    return ObjectCounts(int(on_object.sum()), int((on_object & kept_pixels).sum()), per_object)


@dataclass(frozen=True)
class ClassRetention:
    """One row of ``retention.csv``."""

    class_name: str
    images: int
    pixel_fraction_kept: float
    object_share_original: float
    object_share_kept: float
    objects: tuple[tuple[str, int, int, float], ...]  # (object, images present, images surviving, pixel share kept)

    def surviving_text(self, top: int = TOP_OBJECTS) -> str:
        """The most often surviving objects, e.g. ``bed 9/10; lamp 4/8``."""
        shown = [o for o in self.objects if o[2] > 0][:top]
        return "; ".join(f"{name} {survived}/{present}" for name, present, survived, _ in shown) or "none"


@dataclass(frozen=True)
class ImageCounts:
    """What retention needs to know about one processed image."""

    class_name: str
    pixels: int
    pixels_kept: int
    objects: ObjectCounts


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def class_retention(images: Sequence[ImageCounts]) -> list[ClassRetention]:
    """Per true class, in order of class name."""
    by_class: dict[str, list[ImageCounts]] = defaultdict(list)
    for image in images:
        by_class[image.class_name].append(image)
    rows = []
    for name in sorted(by_class):
        group = by_class[name]
        pixels = sum(g.pixels for g in group)
        kept = sum(g.pixels_kept for g in group)
        present: dict[str, int] = defaultdict(int)
        survived: dict[str, int] = defaultdict(int)
        object_pixels: dict[str, int] = defaultdict(int)
        object_kept: dict[str, int] = defaultdict(int)
        for g in group:
            for obj, (n_pixels, n_kept) in g.objects.per_object.items():
                present[obj] += 1
                survived[obj] += int(n_kept >= SURVIVAL_SHARE * n_pixels)
                object_pixels[obj] += n_pixels
                object_kept[obj] += n_kept
        objects = sorted(
            ((o, present[o], survived[o], object_kept[o] / object_pixels[o]) for o in present),
            key=lambda row: (-row[2], -row[2] / row[1], row[0]),
        )
        rows.append(
            ClassRetention(
                class_name=name,
                images=len(group),
                pixel_fraction_kept=_ratio(kept, pixels),
                object_share_original=_ratio(sum(g.objects.pixels for g in group), pixels),
                object_share_kept=_ratio(sum(g.objects.kept for g in group), kept),
                objects=tuple(objects),
            )
        )
    return rows


RETENTION_COLUMNS: tuple[str, ...] = (
    "class", "images", "pixel_fraction_kept", "object_share_original", "object_share_kept", "surviving_objects",
)
OBJECT_COLUMNS: tuple[str, ...] = ("class", "object", "images_present", "images_surviving", "pixel_share_kept")


def retention_rows(rows: Sequence[ClassRetention]) -> list[dict[str, object]]:
    """Rows for ``retention.csv``."""
    return [
        {
            "class": r.class_name,
            "images": r.images,
            "pixel_fraction_kept": round(r.pixel_fraction_kept, 4),
            "object_share_original": round(r.object_share_original, 4),
            "object_share_kept": round(r.object_share_kept, 4),
            "surviving_objects": r.surviving_text(),
        }
        for r in rows
    ]


def object_rows(rows: Sequence[ClassRetention]) -> list[dict[str, object]]:
    """Rows for ``retention_objects.csv``: one per (class, object)."""
    return [
        {"class": r.class_name, "object": o, "images_present": p, "images_surviving": s,
         "pixel_share_kept": round(k, 4)}
        for r in rows
        for o, p, s, k in r.objects
    ]


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"  # NaN: no pixels to take a share of


def retention_markdown(rows: Sequence[ClassRetention], title: str) -> str:
    """A markdown table of ``retention.csv`` for people."""
    lines = [
        f"# {title}",
        "",
        "Object share = share of pixels lying on any ground-truth object; *kept* = within the pixels that the",
        f"minimal images keep. An object survives in an image when at least {SURVIVAL_SHARE:.0%} of its pixels",
        "are kept (survived/present images).",
        "",
        "| class | images | pixels kept | object share, original | object share, kept | surviving objects |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        shares = " | ".join(_percent(v) for v in (r.pixel_fraction_kept, r.object_share_original, r.object_share_kept))
        lines.append(f"| {r.class_name} | {r.images} | {shares} | {r.surviving_text()} |")
    return "\n".join(lines) + "\n"
