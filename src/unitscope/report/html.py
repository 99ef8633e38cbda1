"""Self-contained HTML: the jinja environment and images as ``data:`` URIs (no external files, no network).

Reports are e-mailed, archived and opened years later; a page that embeds every image and style still
shows the same thing then, so nothing here ever writes a link to a file or a URL.
"""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path

import jinja2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from unitscope.errors import UsageError

IMAGE_FORMATS: tuple[str, ...] = ("jpeg", "png")


@functools.cache
def report_environment() -> jinja2.Environment:
    """A jinja environment over the packaged templates, autoescaping HTML (labels come from data files).

    One per process: its settings never change, and it keeps each template compiled (compiling the unit
    page's template again for every unit cost ~80 ms a page, a third of a report's time outside images).
    """
    return jinja2.Environment(
        loader=jinja2.PackageLoader("unitscope.report", "templates"),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(name: str, environment: jinja2.Environment | None = None, **context: object) -> str:
    """Render one packaged template with ``context``; pass one ``environment`` to render many pages (jinja
    compiles a template once per environment: ~60 ms, more than a unit page costs to fill)."""
    return (environment or report_environment()).get_template(name).render(**context)


def write_html(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def image_data_uri(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> str:
    """uint8 [H, W, 3] (or [H, W]) → ``data:image/...;base64,…``; JPEG keeps photo galleries small."""
    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    if image.dtype != np.uint8:
        raise UsageError(f"images to embed must be uint8, got {image.dtype}; convert with .astype(np.uint8)")
    buffer = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image))
    if fmt == "jpeg":
        pil.save(buffer, format="JPEG", quality=quality, subsampling=0)
    else:
        pil.save(buffer, format="PNG", optimize=False)
    return _data_uri(buffer.getvalue(), f"image/{fmt}")


def figure_data_uri(figure: Figure, dpi: int = 144) -> str:
    """A matplotlib figure as an embedded PNG (rendered at ``dpi`` so it stays sharp on dense screens)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return _data_uri(buffer.getvalue(), "image/png")


def figure_css_width(figure: Figure) -> int:
    """The width in CSS pixels at which a figure shows at its designed size (96 px per inch)."""
    return round(figure.get_figwidth() * 96)


def _data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
