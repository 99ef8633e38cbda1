"""Progress bars that get out of the way of an error message."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


@contextmanager
def progress_bar(**options: object) -> Iterator[tqdm]:
    """A tqdm bar that is erased (not left half-drawn) when the work inside fails.

    Without this, an error message printed by the CLI would land on the same terminal line as the bar.
    """
    bar = tqdm(**options)
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


def progress_iter(iterable: Iterable[T], **options: object) -> Iterator[T]:
    """Iterate with a progress bar that is erased if the loop ends in an error (see ``progress_bar``)."""
    items = list(iterable) if not hasattr(iterable, "__len__") else iterable
    with progress_bar(total=len(items), **options) as bar:  # type: ignore[arg-type]
        for item in items:
            yield item
            bar.update(1)
