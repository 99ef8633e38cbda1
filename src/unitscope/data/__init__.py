"""Probe sets: the images (and, where known, per-pixel concept labels) that units are shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from unitscope.defaults import PROBE_N
from unitscope.errors import UsageError

if TYPE_CHECKING:  # numpy stays out of the checks made before torch loads
    from unitscope.data.probe import ProbeSet

SCENEWORLD_SPECS: dict[str, dict[str, object]] = {
    "sceneworld": {"kind": "scenes"},
    "sceneworld-objects": {"kind": "objects"},
    "sceneworld-background": {"kind": "scenes", "remove_objects": True},
    "sceneworld-recolored": {"kind": "scenes", "recolor": True},  # the colour control (sceneworld/recolor.py)
    "sceneworld-objects-recolored": {"kind": "objects", "recolor": True},
}


def probe_count(spec: str, n: int | None) -> int | None:
    """The ``n`` that names a probe set: SceneWorld's image count (``PROBE_N`` unless given), or a
    directory's row limit (its first n rows; None: every row)."""
    return (PROBE_N if n is None else n) if spec in SCENEWORLD_SPECS else n


def check_probe_spec(spec: str) -> None:
    """``--data`` of a probe set: a SceneWorld name or an existing directory (cheap: checked before torch loads)."""
    if spec in SCENEWORLD_SPECS:
        return
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"--data {spec!r} is neither {', '.join(SCENEWORLD_SPECS)} nor an existing directory")
    if not path.is_dir():
        raise UsageError(f"--data {spec} is a file; give a Broden directory or an image folder")


def check_class_folder(spec: str) -> None:
    """``--data`` of labelled images: a SceneWorld name or a folder of class sub-folders (before torch loads)."""
    if spec not in SCENEWORLD_SPECS and not Path(spec).is_dir():
        raise UsageError(f"--data {spec!r} is neither {', '.join(SCENEWORLD_SPECS)} nor a folder of class sub-folders")


def open_probe(spec: str, n: int | None = None, seed: int = 0, size: int = 112) -> ProbeSet:
    """Resolve ``--data``: a SceneWorld name, a Broden-format directory or a plain image folder.

    ``n``: images SceneWorld renders (default ``PROBE_N``); for a directory, its first n images in
    index.csv or path order (default: all of them).
    """
    if n is not None and n <= 0:
        raise UsageError(f"--n must be positive, got {n}")
    if spec in SCENEWORLD_SPECS:
        from unitscope.data.sceneworld import SceneWorldProbe

        count = PROBE_N if n is None else n
        return SceneWorldProbe(n=count, seed=seed, size=size, **SCENEWORLD_SPECS[spec])  # type: ignore[arg-type]
    check_probe_spec(spec)
    path = Path(spec)
    from unitscope.data.broden import BrodenProbe, is_broden_dir

    if is_broden_dir(path):
        return BrodenProbe(path, max_images=n)
    broden_files = [name for name in ("label.csv", "category.csv") if (path / name).is_file()]
    if broden_files:
        raise UsageError(
            f"--data {spec} has {' and '.join(broden_files)} but no index.csv, so it looks like an incomplete "
            "Broden export, not an image folder; restore index.csv"
        )
    from unitscope.data.image_folder import ImageFolderProbe

    return ImageFolderProbe(path, max_images=n)
