"""Output directories that are never half-written and have one writer.

Work happens in ``OUT.partial`` and is swapped into place when complete (:func:`publish`). While a process
works on ``OUT`` it holds an OS lock (``fcntl.flock``) on ``OUT.lock`` beside it (:func:`lock_output`); the
kernel drops the lock on any exit, kill -9 included, so a stale lock never blocks a later run, and a second
process on the same output is refused at once instead of racing the first. Every directory-writing command
checks its output path the same way before any work (:func:`check_output`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from unitscope.errors import UsageError


def staging_path(out: Path) -> Path:
    """Where the work for ``out`` happens until it is complete."""
    return out.with_name(out.name + ".partial")


def lock_path(out: Path) -> Path:
    """The lock file of ``out``: a sibling, so it outlives ``out`` being swapped or removed."""
    return out.with_name(out.name + ".lock")


def publish(stage: Path, out: Path) -> Path:
    """Move a complete ``stage`` to ``out``; an existing ``out`` is replaced only after the new one is in place."""
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old)
    else:
        os.replace(stage, out)
    return out


def check_output(path: Path, overwrite: bool, *, reusable: bool = False) -> None:
    """Refuse an output path no command could finish writing: a file, a missing or unwritable parent,
    or a non-empty directory without ``--overwrite`` (``reusable``: the command itself decides whether a
    non-empty directory is its own finished or interrupted run)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a directory; choose another output path")
    if path.is_dir() and not reusable and any(path.iterdir()) and not overwrite:
        raise UsageError(f"{path} is not empty; choose another path or pass --overwrite")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"cannot create {path}: {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write to {parent}; choose a writable output path")


@contextlib.contextmanager
def lock_output(out: Path) -> Iterator[None]:
    """Hold the one-writer lock of ``out``; refuse at once (UsageError) when another process holds it.

    Re-entrant within a process (the CLI and the Python API both take it): the holder's pid is written in
    the lock file. The file is removed on a normal release; one left by kill -9 is unlocked and reused.
    """
    path = lock_path(out.absolute())
    with contextlib.suppress(OSError):  # a fresh nested output (runs/scene) needs its parent; errors surface below
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise UsageError(f"cannot create the lock file {path} ({err.strerror}); choose a writable output path") \
                from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if holder == str(os.getpid()):
                yield  # this process already holds it (an outer caller releases it)
                return
            who = f"process {holder}" if holder else "another process"
            raise UsageError(
                f"{out} is being written by {who}; wait for it to finish or choose another output path"
            ) from None
        # The file may have been unlinked by a holder that released it between our open and flock: retry.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def claim_output(out: Path, overwrite: bool, *, reusable: bool = False) -> None:
    """For a CLI command: check ``out`` and hold its lock until the command ends (any way it ends)."""
    import click

    check_output(out, overwrite, reusable=reusable)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes, so only rank 0 locks
        click.get_current_context().with_resource(lock_output(out))


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """Write a fresh ``OUT.partial``; published as ``out`` on success, removed on any error."""
    stage = staging_path(out)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, out)


@contextlib.contextmanager
def staged_into(directory: Path, name: str) -> Iterator[Path]:
    """Write some entries of a folder that holds other things too (a report inside its run) in
    ``directory/NAME.partial``; on success each entry there replaces its namesake in ``directory`` (folders
    first, files last, so a page goes in after what it links); on any error the stage is removed and
    ``directory`` is as it was. A ``directory`` that does not exist yet is staged whole (:func:`staged`)."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory; choose another output path")
    if not directory.is_dir():
        with staged(directory) as whole:
            yield whole
        return
    stage = staging_path(directory / name)
    if stage.exists():
        shutil.rmtree(stage)  # left by a killed writer: nothing in it was published
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    for entry in sorted(stage.iterdir(), key=lambda path: (not path.is_dir(), path.name)):
        if entry.is_dir():
            publish(entry, directory / entry.name)
        else:
            os.replace(entry, directory / entry.name)
    stage.rmdir()
