"""The only files the server reads from disk: an allow-list of each run's pages and pictures, built once.

A client's path is a key into that list, never joined to a directory. A file enters the list only when its
real path (symlinks resolved) lies inside the run; when served it is opened without following a final
symlink and its real path is checked again, so a link swapped in later is refused too.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

TYPES = {".html": "text/html; charset=utf-8", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".svg": "image/svg+xml", ".css": "text/css; charset=utf-8", ".csv": "text/csv; charset=utf-8"}
MAX_FILES = 500_000
MAX_FILE_BYTES = 64 * 1024 * 1024
SLUG = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FileList:
    """A directory's servable files: relative POSIX path (as a client names it) → real path inside ``root``."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    refused: int = 0  # links that point outside the root, not listed

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def read(self, key: str) -> tuple[bytes, str] | None:
        """The bytes and media type of listed file ``key``; None when it is not listed or no longer safe."""
        real = self.files.get(key)
        if real is None:
            return None
        try:
            return read_inside(real, self.root), TYPES[real.suffix.lower()]
        except Unsafe:
            return None


def list_files(directory: Path) -> FileList:
    """Every servable file under ``directory`` (not following linked directories), links out of it refused."""
    root = directory.resolve(strict=True)
    files: dict[str, Path] = {}
    refused = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.endswith(".partial"))
        for name in sorted(names):
            path = Path(folder) / name
            if path.suffix.lower() not in TYPES:
                continue
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                refused += 1
                continue
            if not real.is_relative_to(root) or not real.is_file() or real.suffix.lower() not in TYPES:
                refused += 1
                continue
            files[path.relative_to(root).as_posix()] = real
            if len(files) > MAX_FILES:
                raise OSError(f"{directory} holds more than {MAX_FILES} pages and pictures")
    return FileList(root, files, refused)


class Unsafe(Exception):
    """A listed file that is no longer a plain file inside its root (replaced by a link, a device, ...)."""


def read_inside(real: Path, root: Path) -> bytes:
    """The bytes of ``real``, opened without following a final link and checked to still lie inside ``root``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        raise Unsafe(str(real)) from None
    try:
        info = os.fstat(fd)
        proc = Path(f"/proc/self/fd/{fd}")
        now = Path(os.path.realpath(proc if proc.exists() else real))
        if not stat.S_ISREG(info.st_mode) or not now.is_relative_to(root) or info.st_size > MAX_FILE_BYTES:
            raise Unsafe(str(real))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    finally:
        os.close(fd)


def run_slugs(directories: list[Path]) -> list[str]:
    """A short URL name per run: its folder name made safe, numbered when two agree."""
    slugs: list[str] = []
    for k, directory in enumerate(directories):
        base = SLUG.sub("-", directory.resolve().name).strip(".-")[:48] or f"run{k + 1}"
        slug, n = base, 2
        while slug in slugs:
            slug, n = f"{base}-{n}", n + 1
        slugs.append(slug)
    return slugs
