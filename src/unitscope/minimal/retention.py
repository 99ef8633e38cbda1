"""What survives in minimal images: the share of kept pixels on objects, and which objects survive.

Zhou et al. 2015 observed that minimal images of scenes keep a few objects (a bed in a bedroom). With
exact ground truth we measure it per true class:

* ``object_share_original``: of all pixels of the class's original images, the share on any object;
* ``object_share_kept``: of all pixels that minimal images of the class keep, the share on any object
  (pooled over images, so images that keep nothing do not need a special case);
* per object class: its share of all kept pixels (what the minimal images keep), in how many of the
  class's images it appears, in how many some of it is kept, in how many it *survives* (at least
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
class ObjectRetention:
    """How one object class fares in the minimal images of one true class."""

    name: str
    present: int  # images of the class that contain it
    touched: int  # ... whose minimal image keeps some of its pixels
    survived: int  # ... whose minimal image keeps at least SURVIVAL_SHARE of its pixels
    pixel_share_kept: float  # its kept pixels / its pixels, pooled
    share_of_kept: float  # its kept pixels / all kept pixels of the class's minimal images, pooled


@dataclass(frozen=True)
class ClassRetention:
    """One row of ``retention.csv``."""

    class_name: str
    images: int
    pixel_fraction_kept: float
    object_share_original: float
    object_share_kept: float
    objects: tuple[ObjectRetention, ...]  # largest share of the kept pixels first

    def kept_objects_text(self, top: int = TOP_OBJECTS) -> str:
        """The objects that most of the kept pixels lie on, e.g. ``bed 71% (6/7); lamp 9% (2/5)``."""
        shown = [o for o in self.objects if o.touched > 0][:top]
        return "; ".join(f"{o.name} {o.share_of_kept:.0%} ({o.touched}/{o.present})" for o in shown) or "none"


@dataclass(frozen=True)
class ImageCounts:
    """What retention needs to know about one processed image."""

    class_name: str
    pixels: int
    pixels_kept: int
    objects: ObjectCounts


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _objects(group: Sequence[ImageCounts], kept: int) -> tuple[ObjectRetention, ...]:
    present: dict[str, int] = defaultdict(int)
    touched: dict[str, int] = defaultdict(int)
    survived: dict[str, int] = defaultdict(int)
    pixels: dict[str, int] = defaultdict(int)
    kept_pixels: dict[str, int] = defaultdict(int)
    for image in group:
        for name, (n_pixels, n_kept) in image.objects.per_object.items():
            present[name] += 1
            touched[name] += int(n_kept > 0)
            survived[name] += int(n_kept >= SURVIVAL_SHARE * n_pixels)
            pixels[name] += n_pixels
            kept_pixels[name] += n_kept
    rows = [
        ObjectRetention(name, present[name], touched[name], survived[name], kept_pixels[name] / pixels[name],
                        _ratio(kept_pixels[name], kept))
        for name in present
    ]
    return tuple(sorted(rows, key=lambda o: (-kept_pixels[o.name], -o.present, o.name)))


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
        rows.append(
            ClassRetention(
                class_name=name,
                images=len(group),
                pixel_fraction_kept=_ratio(kept, pixels),
                object_share_original=_ratio(sum(g.objects.pixels for g in group), pixels),
                object_share_kept=_ratio(sum(g.objects.kept for g in group), kept),
                objects=_objects(group, kept),
            )
        )
    return rows


def retention_rows(rows: Sequence[ClassRetention]) -> list[dict[str, object]]:
    """Rows for ``retention.csv``."""
    return [
        {
            "class": r.class_name,
            "images": r.images,
            "pixel_fraction_kept": round(r.pixel_fraction_kept, 4),
            "object_share_original": round(r.object_share_original, 4),
            "object_share_kept": round(r.object_share_kept, 4),
            "kept_objects": r.kept_objects_text(),
        }
        for r in rows
    ]


def object_rows(rows: Sequence[ClassRetention]) -> list[dict[str, object]]:
    """Rows for ``retention_objects.csv``: one per (class, object)."""
    return [
        {"class": r.class_name, "object": o.name, "images_present": o.present, "images_touched": o.touched,
         "images_surviving": o.survived, "pixel_share_kept": round(o.pixel_share_kept, 4),
         "share_of_kept_pixels": round(o.share_of_kept, 4)}
        for r in rows
        for o in r.objects
    ]


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"  # NaN: no pixels to take a share of


def retention_markdown(rows: Sequence[ClassRetention], title: str) -> str:
    """A markdown table of ``retention.csv`` for people."""
    lines = [
        f"# {title}",
        "",
        "Object share = share of pixels lying on any ground-truth object (background regions such as sky,",
        "wall or floor are not objects); *kept* = within the pixels that the minimal images keep. Kept objects:",
        "the objects that the kept pixels lie on, as their share of all kept pixels, and (in how many images",
        "some of the object is kept / in how many it appears).",
        "",
        "| class | images | pixels kept | object share, original | object share, kept | kept objects |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        shares = " | ".join(_percent(v) for v in (r.pixel_fraction_kept, r.object_share_original, r.object_share_kept))
        lines.append(f"| {r.class_name} | {r.images} | {shares} | {r.kept_objects_text()} |")
    return "\n".join(lines) + "\n"
