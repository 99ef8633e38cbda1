"""Human previews of Broden label PNGs, which encode label = R + 256·G and so look black.

Each label PNG ``images/<name>/<stem>_<category>.png`` gets ``preview/<name>/<stem>_<category>.png``: the
image beside its label map in colour (at the image's size, unlabeled black), one palette per category
sized to that category's concepts (``unitscope.palette``), and ``preview/legend_<category>.png`` naming
every colour. A separate tree, so readers of ``images/`` (and image-folder globs) never see them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unitscope.data.probe import ConceptTable
from unitscope.palette import colours_for

SWATCH = 14
COLUMN = 190
ROWS = 30
MIN_SIDE = 224


class LabelPreviews:
    """Colour tables per category, fixed for the whole export so a concept keeps its colour."""

    def __init__(self, root: Path, concepts: ConceptTable) -> None:
        self.root = root
        self.concepts = concepts
        self.numbers: dict[str, list[int]] = {
            category: sorted(c.number for c in concepts.in_category(category)) for category in concepts.categories}
        self.tables = {category: self._table(numbers) for category, numbers in self.numbers.items()}
        self.shown: dict[str, None] = {}  # categories previewed so far, in order

    @staticmethod
    def _table(numbers: list[int]) -> np.ndarray:
        """uint8 [largest label + 1, 3]: each label's colour, 0 black."""
        table = np.zeros((max(numbers, default=0) + 1, 3), dtype=np.uint8)
        for number, rgb in colours_for(numbers).items():
            table[number] = np.round(np.array(rgb) * 255)
        return table

    def write(self, name: str, image: np.ndarray, labels: np.ndarray, category: str) -> None:
        """``preview/<name>``: the image and the label map [sh, sw] in colour, side by side."""
        known = self.numbers.setdefault(category, [])
        extra = sorted(set(np.unique(labels).tolist()) - set(known) - {0})
        if extra or category not in self.tables:  # labels of another primary category: appended, so the
            known.extend(int(n) for n in extra)  # palette's first colours (and the export's so far) stay
            self.tables[category] = self._table(known)
        table = self.tables[category]
        self.shown[category] = None
        scale = max(1, -(-MIN_SIDE // min(image.shape[:2])))  # small probe images are shown larger
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        h, w = image.shape[:2]
        rows = np.minimum((np.arange(h) * labels.shape[0]) // h, labels.shape[0] - 1)
        cols = np.minimum((np.arange(w) * labels.shape[1]) // w, labels.shape[1] - 1)
        resized = labels[rows[:, None], cols[None, :]]
        coloured = table[resized]
        gap = np.full((h, 4, 3), 255, dtype=np.uint8)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([image, gap, coloured], axis=1)).save(path, "PNG", compress_level=1)

    def write_legends(self) -> None:
        """``preview/legend_<category>.png`` per category previewed: a swatch and a name per concept."""
        font = ImageFont.load_default(size=12)
        for category in self.shown:
            numbers = self.numbers[category]
            columns = -(-len(numbers) // ROWS)
            height = min(len(numbers), ROWS) * (SWATCH + 4) + 30
            sheet = Image.new("RGB", (columns * COLUMN + 10, height), "white")
            draw = ImageDraw.Draw(sheet)
            draw.text((6, 6), f"{category} labels", fill="black", font=font)
            for k, number in enumerate(numbers):
                x, y = 6 + (k // ROWS) * COLUMN, 26 + (k % ROWS) * (SWATCH + 4)
                colour = tuple(int(c) for c in self.tables[category][number])
                draw.rectangle((x, y, x + SWATCH, y + SWATCH), fill=colour, outline="black")
                label = self.concepts[number].name if number in self.concepts else str(number)
                draw.text((x + SWATCH + 6, y), label[:24], fill="black", font=font)
            self.root.mkdir(parents=True, exist_ok=True)
            sheet.save(self.root / f"legend_{category}.png", "PNG")
