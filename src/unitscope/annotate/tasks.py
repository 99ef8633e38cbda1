"""Tasks from a dissection run: per unit its top images with the unit's region, plus hidden catch images.

As in Zhou et al. (2015) a task shows 57 top images with the region the unit fires on (the receptive-field
segmentation, :mod:`unitscope.report.regions` ``field`` rule) and 3 top images of other units (drawn with
*their* region, so nothing marks them out), shuffled. The choice of images is a pure function of the
run and a seed (:func:`plan_unit`), separate from drawing them (:func:`build_tasks`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from unitscope.annotate.protocol import MIN_MARKED, N_CATCH, N_REAL
from unitscope.annotate.runview import RunView, open_inputs
from unitscope.annotate.security import new_opaque_id
from unitscope.annotate.store import Store
from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedImage:
    """One image of a task: whose region is drawn (``owner``), which probe image, and if it is a catch."""

    owner: int
    probe_index: int
    is_catch: bool


def top_lists(top_images: pd.DataFrame, n_real: int = N_REAL) -> dict[int, list[int]]:
    """Each unit's first ``n_real`` top images (probe indices), best first."""
    if not {"unit", "rank", "image"} <= set(top_images.columns):
        raise UsageError("the run's top_images.csv lacks unit, rank, image; rerun dissect with this version")
    top = top_images[top_images["rank"] < n_real].sort_values(["unit", "rank"])
    return {int(u): [int(i) for i in g["image"]] for u, g in top.groupby("unit")}


def plan_unit(unit: int, tops: Mapping[int, Sequence[int]], seed: int = 0,
              n_catch: int = N_CATCH) -> list[PlannedImage]:
    """The unit's images in display order: its top images and ``n_catch`` top images of distinct other units.

    A catch image is never one of the unit's own top images. Raises UsageError when the run has too few.
    """
    own = list(tops.get(unit, []))
    if len(own) < MIN_MARKED:
        raise UsageError(f"unit {unit} has {len(own)} top images; a task needs at least {MIN_MARKED} "
                         f"(rerun dissect with --topk {N_REAL + N_CATCH})")
    rng = np.random.default_rng([seed, unit])
    mine = set(own)
    others = [u for u in sorted(tops) if u != unit]
    rng.shuffle(others)
    catches: list[PlannedImage] = []
    used: set[int] = set()
    for other in others:
        candidates = [i for i in tops[other] if i not in mine and i not in used]
        if candidates:
            pick = int(candidates[int(rng.integers(len(candidates)))])
            catches.append(PlannedImage(other, pick, True))
            used.add(pick)
        if len(catches) == n_catch:
            break
    if len(catches) < n_catch:
        raise UsageError(f"unit {unit}: the other units' top images hold fewer than {n_catch} images outside its own")
    planned = [PlannedImage(unit, i, False) for i in own] + catches
    order = rng.permutation(len(planned))
    return [planned[int(k)] for k in order]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def build_tasks(view: RunView, store: Store, layer: str, max_units: int | None = None, seed: int = 0,
                device: str = "cpu", trust: Trust | None = None) -> int:
    """Render and store the tasks of ``layer`` (units already stored are kept); the number added."""
    from unitscope.report.unit_images import LayerRequest, renderer_for

    if layer not in view.layers:
        raise UsageError(f"no layer {layer!r} in {view.directory}; choose one of {', '.join(view.layers)}")
    tops = top_lists(view.top_images[layer])
    units_table = view.units[layer].set_index("unit")
    stored = set(store.units())
    wanted = [u for u in sorted(tops) if (layer, u) not in stored]
    if max_units is not None:
        wanted = [u for u in sorted(tops)[:max_units] if (layer, u) not in stored]
    plans: dict[int, list[PlannedImage]] = {}
    for unit in wanted:
        try:
            plans[unit] = plan_unit(unit, tops, seed)
        except UsageError as err:
            LOG.warning("skipping: %s", err)
    if not plans:
        return 0
    owners = sorted({p.owner for plan in plans.values() for p in plan})
    model, probe = open_inputs(view, device, trust)
    renderer = renderer_for(view.result, model, probe, regions="field")
    request = LayerRequest(path=view.result.layers[layer].path,
                           thresholds={u: float(units_table.at[u, "threshold"]) for u in owners},
                           images={u: tops[u] for u in owners})
    tiles = renderer.render({layer: request})
    for unit, plan in plans.items():
        images = [(new_opaque_id(), p.probe_index, p.is_catch,
                   png_bytes(tiles[(layer, p.owner)][tops[p.owner].index(p.probe_index)])) for p in plan]
        store.add_unit(layer, unit, images)
    return len(plans)
