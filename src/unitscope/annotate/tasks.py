"""Tasks from a dissection run: per unit its top images with the unit's region, plus hidden catch images.

As in Zhou et al. (2015) a task shows 57 top images with the region the unit fires on and 3 top images of
other units (drawn with *their* region, so nothing marks them out). The region is drawn as in the paper's
figures: the unit's map upsampled to the image and cut at its threshold (:mod:`unitscope.report.regions`
``activation`` rule), everything outside it dimmed (:data:`TASK_STYLE`), no outline. The choice of images is
a pure function of the run and a seed (:func:`plan_unit`), separate from drawing them (:func:`build_tasks`);
each annotator then sees them in an order of their own (:func:`unitscope.annotate.protocol.order_seed`).
A run that kept fewer than 57 top images per unit is refused unless smaller tasks are asked for
(:func:`task_size`).
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

from unitscope.annotate.protocol import MIN_MARKED, N_CATCH, N_REAL, TASK_IMAGES
from unitscope.annotate.runview import RunView, model_loader, open_probe
from unitscope.annotate.security import new_opaque_id
from unitscope.annotate.store import Store
from unitscope.errors import UsageError
from unitscope.report.outlines import OutlineStyle

if TYPE_CHECKING:
    from unitscope.data.probe import ProbeSet
    from unitscope.dissection.reopen import Trust

LOG = logging.getLogger(__name__)
# The paper's masked region: outside it, 30 % of the pixel blended with a dark shade; large enough to zoom.
TASK_STYLE = OutlineStyle(dim=0.7, max_side=224, outline=False)


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


def kept_top_images(top_images: pd.DataFrame) -> int:
    """How many top images the run kept per unit (its ``--topk``, or fewer on a small probe set)."""
    if not {"unit", "rank", "image"} <= set(top_images.columns):
        raise UsageError("the run's top_images.csv lacks unit, rank, image; rerun dissect with this version")
    return int(top_images.groupby("unit").size().max()) if len(top_images) else 0


def task_size(top_images: pd.DataFrame, allow_small: bool = False) -> int:
    """The top images per task: the protocol's 57, or with ``allow_small`` all the run kept when fewer.

    A run that kept fewer is refused otherwise: its tasks would not be the paper's 60-image tasks.
    """
    kept = kept_top_images(top_images)
    if kept >= N_REAL:
        return N_REAL
    if not allow_small:
        raise UsageError(f"the run kept {kept} top images per unit; the paper's tasks show {N_REAL} plus "
                         f"{N_CATCH} catch images: dissect again with --topk {TASK_IMAGES}, or pass "
                         f"--allow-small-tasks to serve {kept + N_CATCH}-image tasks")
    if kept < MIN_MARKED:
        raise UsageError(f"the run kept {kept} top images per unit; a task needs at least {MIN_MARKED}: "
                         f"dissect again with --topk {TASK_IMAGES}")
    return kept


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
                device: str = "cpu", trust: Trust | None = None, allow_small: bool = False,
                data: str | ProbeSet | None = None) -> int:
    """Render and store the tasks of ``layer`` (units already stored are kept); the number added.

    Refuses a run with fewer than 57 top images per unit unless ``allow_small`` (:func:`task_size`).
    ``seed`` draws the catch images and salts each annotator's image order (kept in the store's meta).
    """
    from unitscope.report.unit_images import layer_request, renderer_for

    if layer not in view.layers:
        raise UsageError(f"no layer {layer!r} in {view.directory}; choose one of {', '.join(view.layers)}")
    n_real = task_size(view.top_images[layer], allow_small)
    tops = top_lists(view.top_images[layer], n_real)
    store.set_meta("seed", str(seed))
    store.set_meta("task_images", str(n_real + N_CATCH))
    stored = set(store.units())
    candidates = sorted(tops) if max_units is None else sorted(tops)[:max_units]
    plans: dict[int, list[PlannedImage]] = {}
    for unit in candidates:
        if (layer, unit) in stored:
            continue
        try:
            plans[unit] = plan_unit(unit, tops, seed)
        except UsageError as err:
            LOG.warning("skipping: %s", err)
    if not plans:
        return 0
    owners = sorted({p.owner for plan in plans.values() for p in plan})
    renderer = renderer_for(view.result, model_loader(view, device, trust), open_probe(view, data),
                            style=TASK_STYLE, regions="activation")
    request = layer_request(view.result, layer, owners, n_real)
    tiles = renderer.render({layer: request})
    for unit, plan in plans.items():
        images = [(new_opaque_id(), p.probe_index, p.is_catch,
                   png_bytes(tiles[(layer, p.owner)][list(request.images[p.owner]).index(p.probe_index)]))
                  for p in plan]
        store.add_unit(layer, unit, images)
    return len(plans)
