"""What defines a probe set, as a digest: a run records it, and reuse, resume and reopening compare it.

A probe set given by name (``sceneworld``, a Broden directory) and one given as an object must both be
known by what they hold, not by a name plus defaults: ``sceneworld`` with 8 images is not ``sceneworld``
with 500, and a Broden directory whose ``index.csv`` or label tables changed is another probe set.

- A probe with an ``identity()`` method (SceneWorld) is known by what that returns (n, seed, size, world
  version, …).
- A Broden directory by the bytes of ``index.csv``, ``label.csv``, ``category.csv`` and every ``c_*.csv``,
  and the rows taken (their image paths, in order: split and ``--n`` included).
- An image folder by its files' relative paths and sizes, in order.
- Any other ``ProbeSet`` by its length, sizes, concepts, and the pixels and labels of up to
  ``SAMPLED_ITEMS`` items spread evenly over it (first and last included): an object defines no files
  to hash, and reading all of a large one twice would double a run's decoding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from unitscope.data.probe import ProbeSet

SAMPLED_ITEMS = 64
DIGEST_BYTES = 8
BRODEN_TABLES = ("index.csv", "label.csv", "category.csv")


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True)
class ProbeIdentity:
    """A probe set's digest and its number of images."""

    digest: str
    images: int


def probe_identity(probe: ProbeSet) -> ProbeIdentity:
    """The identity of ``probe`` (see the module docstring for what each kind of probe is known by)."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    digest.update(json.dumps([type(probe).__name__, probe.name, len(probe), list(probe.image_size),
                              list(probe.label_size), [list(map(str, (c.number, c.name, c.category)))
                                                       for c in probe.concepts.concepts]]).encode())
    own = getattr(probe, "identity", None)
    if callable(own):
        digest.update(json.dumps(own(), sort_keys=True, default=str).encode())
    elif _is_broden(probe):
        _broden(probe, digest)
    elif callable(getattr(probe, "image_path", None)) and isinstance(getattr(probe, "root", None), Path):
        _files(probe, digest)
    else:
        _sampled(probe, digest)
    return ProbeIdentity(digest.hexdigest(), len(probe))


def _is_broden(probe: ProbeSet) -> bool:
    root = getattr(probe, "root", None)
    return isinstance(root, Path) and all((root / name).is_file() for name in BRODEN_TABLES[:2])


def _broden(probe: ProbeSet, digest: _Digest) -> None:
    root: Path = probe.root  # type: ignore[attr-defined]
    tables = [root / name for name in BRODEN_TABLES] + sorted(root.glob("c_*.csv"))
    for path in tables:
        if path.is_file():
            digest.update(f"{path.name}\n".encode())
            digest.update(path.read_bytes())
    _files(probe, digest, with_sizes=False)


def _files(probe: ProbeSet, digest: _Digest, with_sizes: bool = True) -> None:
    root: Path = probe.root  # type: ignore[attr-defined]
    for i in range(len(probe)):
        path: Path = probe.image_path(i)  # type: ignore[attr-defined]
        try:
            where = str(path.relative_to(root))
        except ValueError:
            where = str(path)
        size = path.stat().st_size if with_sizes and path.is_file() else -1
        digest.update(f"{where}|{size}\n".encode())


def _sampled(probe: ProbeSet, digest: _Digest) -> None:
    count = len(probe)
    picks = sorted({round(k * (count - 1) / max(SAMPLED_ITEMS - 1, 1)) for k in range(min(SAMPLED_ITEMS, count))})
    for i in picks:
        sample = probe[i]
        digest.update(f"{i}|{sample.image.shape}\n".encode())
        digest.update(np.ascontiguousarray(sample.image).tobytes())
        for category in sorted(sample.pixel_labels):
            digest.update(category.encode() + np.ascontiguousarray(sample.pixel_labels[category]).tobytes())
        for category in sorted(sample.image_labels):
            digest.update(f"{category}={list(sample.image_labels[category])}".encode())
