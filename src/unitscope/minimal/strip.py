"""A strip PNG of one greedy run: the segmented original, a few steps, the minimal image, the step too far.

Frames are enlarged with nearest-neighbour sampling to at least ``MIN_TILE`` pixels so small probe
images stay readable, and each carries a caption: step, regions and pixels kept, probability of the true
class. The minimal image is framed in green; the first misclassified image in red, with its prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from unitscope.minimal.greedy import MISCLASSIFIED, MinimalResult

MIN_TILE = 176
MAX_FRAMES = 7
CAPTION_HEIGHT = 40
BORDER = 4
GAP = 6
FONT_SIZE = 13
GREEN = (40, 160, 60)
RED = (200, 40, 40)
GREY = (235, 235, 235)
BOUNDARY = (255, 255, 0)


def chosen_steps(num_applied: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """Numbers of removals to show: evenly spaced from 0 to ``num_applied``, both ends included."""
    count = min(num_applied + 1, max(2, max_frames))
    return sorted({round(float(t)) for t in np.linspace(0, num_applied, count)})


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _class_name(index: int, class_names: Sequence[str] | None) -> str:
    return class_names[index] if class_names is not None and 0 <= index < len(class_names) else str(index)


def result_strip(result: MinimalResult, class_names: Sequence[str] | None = None) -> Image.Image:
    """The strip for one result (see the module notes)."""
    applied = len(result.removed)
    shown = chosen_steps(applied)
    counts = list(shown) + ([applied + 1] if result.stopped == MISCLASSIFIED else [])
    frames = result.images_at(counts)
    labels = result.segmentation.labels
    sizes = result.segmentation.sizes()
    total = labels.size
    scale = max(1, -(-MIN_TILE // max(labels.shape)))
    tile_h, tile_w = labels.shape[0] * scale, labels.shape[1] * scale
    font = ImageFont.load_default(size=FONT_SIZE)
    cell_w = tile_w + 2 * BORDER
    canvas = Image.new("RGB", (len(counts) * (cell_w + GAP) - GAP, tile_h + 2 * BORDER + CAPTION_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    target = _class_name(result.target, class_names)
    for slot, (t, frame) in enumerate(zip(counts, frames, strict=True)):
        tile = _enlarge(frame, scale)
        if t == 0:
            tile = tile.copy()
            tile[find_boundaries(_enlarge(labels, scale), mode="inner")] = BOUNDARY  # type: ignore[no-untyped-call]
        removed = [s.region for s in result.steps[:t]]
        regions_kept = result.segmentation.num_regions - len(removed)
        pixels_kept = 1.0 - sizes[removed].sum() / total if removed else 1.0
        score = result.initial_score if t == 0 else result.steps[t - 1].score
        if t > applied:
            colour, line1 = RED, f"next step: {_class_name(result.steps[-1].predicted, class_names)}"
        elif t == applied:
            colour, line1 = GREEN, f"minimal (step {t})"
        else:
            colour, line1 = GREY, f"original: {target}" if t == 0 else f"step {t}"
        line2 = f"{regions_kept} reg {pixels_kept:.0%} px p={score:.3f}"
        x = slot * (cell_w + GAP)
        draw.rectangle([x, 0, x + cell_w - 1, tile_h + 2 * BORDER - 1], fill=colour)
        canvas.paste(Image.fromarray(tile), (x + BORDER, BORDER))
        draw.text((x + 2, tile_h + 2 * BORDER + 3), line1, fill="black", font=font)
        draw.text((x + 2, tile_h + 2 * BORDER + 3 + FONT_SIZE + 4), line2, fill="black", font=font)
    return canvas
