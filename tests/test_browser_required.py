"""Under ``make test`` a machine without Chromium fails the browser tests instead of skipping them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _run_browser_test(tmp_path: Path, require: bool) -> str:
    """Run one test that uses the ``browser`` fixture with a PATH that holds no Chromium."""
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_page.py").write_text("def test_page(browser):\n    assert browser is not None\n")
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "UNITSCOPE_REQUIRE_BROWSER"}
    env["PATH"] = str(bare)
    if require:
        env["UNITSCOPE_REQUIRE_BROWSER"] = "1"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


@pytest.mark.parametrize(("require", "outcome"), [(True, "1 error"), (False, "1 skipped")])
def test_missing_chromium_fails_only_when_required(tmp_path: Path, require: bool, outcome: str) -> None:
    output = _run_browser_test(tmp_path, require)  # a fixture that fails is an error, never a pass
    assert outcome in output and "apt-get install -y chromium" in output


def test_make_test_requires_the_browser() -> None:
    makefile = (HERE.parent / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/ensure-chromium" in test_recipe and "UNITSCOPE_REQUIRE_BROWSER=1" in test_recipe
