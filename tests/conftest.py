"""Shared fixtures: keep torch to one thread so the suite behaves the same on any machine; one browser.

``browser`` launches Debian's Chromium through Playwright. Outside ``make test`` a machine without
Chromium skips the browser tests with a reason; under ``make test`` (``UNITSCOPE_REQUIRE_BROWSER=1``)
a missing browser fails them, so the README's two commands always test the web pages.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import torch

REQUIRE_BROWSER = "UNITSCOPE_REQUIRE_BROWSER"


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    torch.set_num_threads(1)


def chromium_path() -> str | None:
    """Debian's Chromium on PATH (under either of its names), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture()
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright; fails instead of skipping under ``make test``."""
    required = os.environ.get(REQUIRE_BROWSER) == "1"
    executable = chromium_path()
    if executable is None:
        message = "no chromium on PATH: `apt-get install -y chromium` (make test installs it)"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError:
        if required:
            pytest.fail("playwright is not installed: pip install -e '.[dev]'")
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()
