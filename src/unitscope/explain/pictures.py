"""Thumbnails for the page: where a unit fires (yellow) beside where its formula holds (cyan).

For each unit, the probe images where it fires most; each image twice, outlined with the unit's mask
and with its formula's mask, both at the label resolution that the IoU used (shown at image size).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from unitscope.data.probe import ProbeSet
from unitscope.explain.bank import UnitMask
from unitscope.explain.bitmasks import WORD_BITS, unpack
from unitscope.explain.formulas import Leaf, from_chain
from unitscope.explain.masks import LayerMasks
from unitscope.explain.source import RunLayer

FORMULA_COLOUR: tuple[int, int, int] = (40, 220, 255)


def _to_image_size(mask: np.ndarray, label_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    pil = Image.fromarray(mask.reshape(label_size).astype(np.uint8) * 255)
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.NEAREST)) > 127


def unit_pictures(run: RunLayer, masks: LayerMasks, formulas: pd.DataFrame, per_unit: int = 3,
                  max_side: int = 80, probe: ProbeSet | None = None) -> dict[int, str]:
    """unit → a JPEG data URI: its ``per_unit`` most active images, unit mask and formula mask side by side
    (``probe``: the run's probe set when the caller has it open already)."""
    from unitscope.dissection.reopen import reopen_probe
    from unitscope.report.html import image_data_uri
    from unitscope.report.outlines import OutlineStyle, display_size, outline_region, tile_images

    probe = probe if probe is not None else reopen_probe(run.result)
    bank = masks.bank
    leaves = {int(bank.numbers[k]): bank.leaf(k) for k in range(len(bank))}

    def leaf(number: int) -> Leaf:
        return leaves[number]

    unit_style, formula_style = OutlineStyle(max_side=max_side), OutlineStyle(color=FORMULA_COLOUR, max_side=max_side)
    per_image_bits = bank.words_per_image * WORD_BITS
    out: dict[int, str] = {}
    for row in formulas.itertuples():
        unit = int(row.unit)
        bits = masks.unit_bits(unit)
        active = UnitMask.from_bits(bits, bank).per_image
        chosen = [int(r) for r in np.argsort(-active, kind="stable")[:per_unit] if active[r] > 0]
        if not chosen:
            continue
        formula_words = bank.bits(from_chain(str(row.chain), leaf)).reshape(bank.num_images, -1)
        tiles = []
        for r in chosen:
            image = probe[int(masks.images[r])].image
            size = display_size(image.shape[:2], max_side)
            small = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))
            mine = bits[(bits >= r * per_image_bits) & (bits < (r + 1) * per_image_bits)] - r * per_image_bits
            unit_mask = np.zeros(bank.pixels, dtype=bool)
            unit_mask[mine] = True
            formula_mask = unpack(formula_words[r][None], bank.pixels)[0]
            tiles.append(outline_region(small, _to_image_size(unit_mask, run.label_size, size), unit_style))
            tiles.append(outline_region(small, _to_image_size(formula_mask, run.label_size, size), formula_style))
        out[unit] = image_data_uri(tile_images(tiles, gap=2))
    return out
