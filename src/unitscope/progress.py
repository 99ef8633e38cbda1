"""Progress bars that get out of the way of an error message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(**options: object) -> Iterator[tqdm]:
    """A tqdm bar that is erased (not left half-drawn) when the work inside fails.

    Without this, an error message printed by the CLI would land on the same terminal line as the bar.
    """
    bar = tqdm(**options)  # type: ignore[arg-type]
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()
