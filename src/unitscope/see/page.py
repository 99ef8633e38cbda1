"""The pages of ``see``: one per image (scene, boxes, segmentation, CAM, the units behind each object) and an
index, all on the shared base template (``report/templates/see.html``, ``see_index.html``).

A sight page is self-contained (its pictures embedded as ``data:`` URIs) so a server can hand it out alone.
Boxes are drawn as SVG over the image; each links to the page of its strongest unit when the run's report is
known (``run_url``: the URL or relative path of the folder holding the run's ``report.html``), else to its
row in the objects table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unitscope.analysis.overlay import blend_heatmap, blend_labels, concept_colours
from unitscope.palette import RGB
from unitscope.report.html import image_data_uri, render_template, write_html
from unitscope.see.sight import Sight

DISPLAY = 448  # CSS pixels of a picture's longer side


@dataclass(frozen=True)
class BoxView:
    """One box as drawn: position in image pixels, colour, caption, link, and its units' links."""

    index: int
    x: int
    y: int
    width: int
    height: int
    colour: str
    caption: str
    href: str
    units: list[tuple[str, str, str]]  # (text, title, href or "")


def _hex(colour: RGB) -> str:
    return "#" + "".join(f"{min(255, max(0, round(float(c) * 255))):02x}" for c in colour)


def unit_href(run_url: str | None, layer: str, unit: int) -> str:
    """The unit's page under the run's report folder ("" when the report's place is not known)."""
    if run_url is None:
        return ""
    base = run_url.rstrip("/")
    return f"{base}/units/{layer}/{unit}.html" if base else f"units/{layer}/{unit}.html"


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.asarray(image, dtype=np.uint8)


def sight_context(sight: Sight, image: Image.Image | np.ndarray, run_url: str | None) -> dict[str, Any]:
    """What ``see.html`` shows of one sight."""
    picture = _as_array(image)
    h, w = picture.shape[:2]
    numbers = sorted(sight.concepts)
    colours = concept_colours(numbers)
    heat = np.asarray(Image.fromarray((np.asarray(sight.heatmap) * 255).astype(np.uint8)).resize(
        (w, h), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    boxes = []
    for i, found in enumerate(sight.objects):
        y0, x0, y1, x1 = (round(v * h / sight.image_size[0]) if k % 2 == 0 else round(v * w / sight.image_size[1])
                          for k, v in enumerate(found.box))
        units = [(f"{s.layer} {s.unit}", f"{s.label or 'no label'} (IoU {s.iou:.2f}"
                  f"{', detector of ' + found.concept if s.detector else ''}); contribution {s.contribution:.2f}",
                  unit_href(run_url, s.layer, s.unit)) for s in found.units]
        first = next((u[2] for u in units if u[2]), "")
        colour = _hex(colours.get(found.number, (1.0, 0.0, 0.0)))
        boxes.append(BoxView(i, x0, y0, max(1, x1 - x0), max(1, y1 - y0), colour,
                             f"{found.concept} {found.confidence:.2f}", first or f"#object-{i}", units))
    scale = DISPLAY / max(h, w)
    return {
        "sight": sight,
        "width": w, "height": h, "css_width": round(w * scale), "css_height": round(h * scale),
        "image_uri": image_data_uri(picture, "png"),
        "segmentation_uri": image_data_uri(blend_labels(picture, np.asarray(sight.segmentation), colours), "png"),
        "cam_uri": image_data_uri(blend_heatmap(picture, heat), "png"),
        "legend": [(sight.concepts[n], _hex(colours[n])) for n in numbers if n in colours],
        "boxes": boxes,
        "run_url": run_url,
    }


def write_sight_page(sight: Sight, image: Image.Image | np.ndarray, out_dir: Path,
                     run_url: str | None = None) -> Path:
    """``out_dir/<sight.name>.html``: the sight on the shared base template; ``run_url`` is where the run's
    ``report.html`` lives (relative to the page, or a URL), for the links ``units/<layer>/<unit>.html``."""
    return write_html(render_template("see.html", **sight_context(sight, image, run_url)),
                      Path(out_dir) / f"{sight.name}.html")


def write_index_page(sights: Sequence[Sight], out_dir: Path, title: str, facts: Sequence[tuple[str, str]] = (),
                     score: dict[str, Any] | None = None) -> Path:
    """``out_dir/index.html``: one row per image (top class, objects), linked to its page; the score table
    (trained beside its random twin, with intervals) when ``score`` is given."""
    rows = [{"name": s.name, "scene": s.top.name, "probability": s.top.probability, "objects": len(s.objects),
             "concepts": ", ".join(sorted({o.concept for o in s.objects}))} for s in sights]
    return write_html(render_template("see_index.html", title=title, facts=list(facts), rows=rows, score=score),
                      Path(out_dir) / "index.html")
