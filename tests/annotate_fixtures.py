"""A tiny annotation store written by the tests: units whose images are 8x8 single-colour PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitscope.annotate.protocol import N_CATCH, N_REAL
from unitscope.annotate.security import new_opaque_id, new_token, token_hash
from unitscope.annotate.store import Store
from unitscope.annotate.tasks import png_bytes


def tiny_png(value: int) -> bytes:
    return png_bytes(np.full((8, 8, 3), value % 256, dtype=np.uint8))


def make_store(path: Path, n_units: int = 4, layer: str = "conv5", per_unit: int = 3,
               n_real: int = N_REAL, n_catch: int = N_CATCH) -> Store:
    """A store with ``n_units`` units of ``n_real`` real images then ``n_catch`` catch images each."""
    store = Store(path)
    store.set_meta("per_unit", str(per_unit))
    png = tiny_png(128)
    for unit in range(n_units):
        images = [(new_opaque_id(), i, i >= n_real, png) for i in range(n_real + n_catch)]
        store.add_unit(layer, unit, images)
    return store


def add_annotator(store: Store, name: str) -> str:
    token = new_token()
    store.add_annotator(name, token_hash(token))
    return token
