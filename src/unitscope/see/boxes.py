"""Object instances from a segmentation: each connected region of one concept is one instance.

Regions are 8-connected (``scipy.ndimage.label`` with a 3×3 structure): a diagonal step joins an object's
pixels, as it does in the label maps' own rasterisation. A region smaller than ``min_pixels`` is noise at
the label resolution and is dropped. Only *thing* concepts get boxes; the scene's layout ("stuff": walls,
floors, sky, the world's background regions) is segmented but never boxed (:func:`thing_numbers`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_PIXELS = 4
EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Region:
    """One instance at the segmentation's resolution: its concept, box (y0, x0, y1, x1; end-exclusive) and mask."""

    number: int
    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool [h, w]

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


def regions(labels: np.ndarray, things: Collection[int], min_pixels: int = MIN_PIXELS) -> list[Region]:
    """Every connected region of every concept of ``things`` present in ``labels`` [h, w], in concept then
    scan order (deterministic)."""
    found: list[Region] = []
    present = sorted(int(c) for c in np.unique(labels) if int(c) in set(things) and int(c) != 0)
    for number in present:
        components, _ = ndimage.label(labels == number, structure=EIGHT)
        for k, where in enumerate(ndimage.find_objects(components), start=1):
            if where is None:
                continue
            mask = components == k
            if int(mask.sum()) < min_pixels:
                continue
            ys, xs = where
            found.append(Region(number, (ys.start, xs.start, ys.stop, xs.stop), mask))
    return found


def batch_regions(labels: np.ndarray, things: Collection[int], min_pixels: int = MIN_PIXELS) -> list[list[Region]]:
    """:func:`regions` of every image of a batch ``labels`` [B, h, w], in the same order, from one labelling of
    the whole batch: the images are stacked with a row of background between them (so no region crosses
    from one image to the next) and ``skimage.measure.label`` joins 8-connected pixels of equal value, every
    concept at once, instead of one ``ndimage.label`` per concept."""
    from skimage.measure import label

    count, h, w = labels.shape
    wanted = np.asarray(sorted(set(things) - {0}), dtype=np.int64)
    kept = np.where(np.isin(labels, wanted), labels, 0)
    tiled = np.zeros((count, h + 1, w), dtype=np.int64)
    tiled[:, :h] = kept
    components = label(tiled.reshape(count * (h + 1), w), background=0, connectivity=2)  # type: ignore[no-untyped-call]
    found: list[list[tuple[int, int, Region]]] = [[] for _ in range(count)]
    for k, where in enumerate(ndimage.find_objects(components), start=1):
        if where is None:
            continue
        ys, xs = where
        inside = components[ys, xs] == k
        pixels = int(inside.sum())
        if pixels < min_pixels:
            continue
        b, top = divmod(ys.start, h + 1)
        first = int(np.argmax(inside.reshape(-1)))  # the region's first pixel in scan order
        y0, x0 = top, xs.start
        number = int(tiled.reshape(count * (h + 1), w)[ys.start + first // inside.shape[1],
                                                          xs.start + first % inside.shape[1]])
        mask = np.zeros((h, w), dtype=bool)
        mask[y0:y0 + inside.shape[0], xs] = inside
        scan = (y0 + first // inside.shape[1]) * w + xs.start + first % inside.shape[1]
        found[b].append((number, scan, Region(number, (y0, x0, y0 + inside.shape[0], xs.stop), mask)))
    return [[region for _, _, region in sorted(image, key=lambda t: (t[0], t[1]))] for image in found]


def scale_box(box: tuple[int, int, int, int], label_size: tuple[int, int],
              image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box in label pixels as the image pixels it covers (label pixel i spans [i·s, (i+1)·s))."""
    sy, sx = image_size[0] / label_size[0], image_size[1] / label_size[1]
    y0, x0, y1, x1 = box
    return (int(np.floor(y0 * sy)), int(np.floor(x0 * sx)), min(image_size[0], int(np.ceil(y1 * sy))),
            min(image_size[1], int(np.ceil(x1 * sx))))


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two end-exclusive boxes (y0, x0, y1, x1)."""
    h = min(a[2], b[2]) - max(a[0], b[0])
    w = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(h, 0) * max(w, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def thing_numbers(concepts: Mapping[str, int], probe: str) -> set[int]:
    """The object concepts that are things, not stuff: a SceneWorld probe's objects minus its background
    regions, any other probe's minus ``cam``'s list of layout labels (``BACKGROUND_OBJECTS``), the same split
    ``cam`` scores its pointing game on."""
    from unitscope.analysis.cam.foreground import BACKGROUND_OBJECTS
    from unitscope.data.sceneworld import REGION_CLASSES

    stuff = set(REGION_CLASSES) if probe.startswith("sceneworld") else set(BACKGROUND_OBJECTS)
    return {number for name, number in concepts.items() if name not in stuff}
