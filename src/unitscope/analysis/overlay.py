"""Pictures for segment and cam: label maps and heatmaps blended over the image, saved as PNG panels.

Built on ``matplotlib.figure.Figure`` (no pyplot, no global state). Concept colours come from a
palette sized to the concepts (``unitscope.palette``) in the order the caller lists them, so a concept
keeps its colour across all images of one command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from unitscope.palette import RGB, colours_for


def concept_colours(numbers: Sequence[int]) -> dict[int, RGB]:
    """A distinct colour per label number, assigned in the given order (0 = unlabeled gets none).

    The palette is sized to the concepts shown (``unitscope.palette``: farthest-point colours in OKLab,
    no greys), so the worst pair stays tellable apart however many concepts a picture shows.
    """
    return colours_for(numbers)


def resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer map [h, w] to ``size`` (each output pixel's centre)."""
    h, w = labels.shape
    rows = ((np.arange(size[0]) + 0.5) * h / size[0]).astype(int).clip(0, h - 1)
    cols = ((np.arange(size[1]) + 0.5) * w / size[1]).astype(int).clip(0, w - 1)
    resized: np.ndarray = labels[rows[:, None], cols[None, :]]
    return resized


def blend_labels(image: np.ndarray, labels: np.ndarray, colours: dict[int, RGB], alpha: float = 0.7) -> np.ndarray:
    """The image in grey, each labelled pixel tinted by its concept's colour; unlabeled pixels are dimmed.

    Tinting the grey image (not the colour one) keeps each concept's hue true while showing the picture.
    """
    labels = resize_nearest(labels, image.shape[:2]) if labels.shape != image.shape[:2] else labels
    grey = (image.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])
    base = np.repeat(grey[..., None], 3, axis=2)
    out = base * 0.45
    for number, colour in colours.items():
        where = labels == number
        if where.any():
            out[where] = (1 - alpha) * base[where] + alpha * np.array(colour)
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


def colour_labels(labels: np.ndarray, colours: dict[int, RGB], size: tuple[int, int]) -> np.ndarray:
    """A label map [h, w] as a picture at ``size``: each concept in its colour, everything else black.

    What a person opens instead of a Broden-encoded label PNG (label = R + 256·G looks black).
    """
    resized = resize_nearest(labels, size) if labels.shape != size else labels
    out = np.zeros((*size, 3), dtype=np.uint8)
    for number, colour in colours.items():
        out[resized == number] = np.round(np.array(colour) * 255).astype(np.uint8)
    return out


def foreground_panel(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with its foreground ``mask`` (any resolution) in colour and the rest dimmed to grey.

    What a heatmap is scored against, shown on the picture: a bare black-and-white mask read as an empty panel
    wherever an image had no foreground object (all black) or little of it.
    """
    inside = resize_nearest(mask.astype(np.int64), image.shape[:2]).astype(bool) if mask.shape != image.shape[:2] \
        else mask.astype(bool)
    grey = (image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[..., None].repeat(3, axis=2)
    out = np.where(inside[..., None], image.astype(np.float64), 0.3 * grey + 40.0)
    return out.clip(0, 255).round().astype(np.uint8)


def blend_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image under a jet-coloured heatmap in [0, 1] (resized bilinearly by the caller)."""
    coloured: np.ndarray = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    out = (1 - alpha) * image.astype(np.float64) / 255.0 + alpha * coloured
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


def save_panels(
    path: Path,
    panels: Sequence[tuple[str, np.ndarray]],
    title: str = "",
    legend: Sequence[tuple[str, RGB]] = (),
) -> None:
    """Side-by-side images with captions, an optional title and a colour legend, as one PNG."""
    width = 2.6 * len(panels) + (1.4 if legend else 0)
    fig = Figure(figsize=(width, 3.0 + 0.25 * bool(title)), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (caption, picture) in zip(axes, panels, strict=True):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    if legend:
        handles = [Patch(facecolor=colour, label=name) for name, colour in legend]
        fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    fig.savefig(path)
