"""The README's command table names exactly the CLI's commands, and its Python API examples run.

The examples are the ```python blocks under the README's "### Python API" heading.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "### Python API"


def readme_text() -> str:
    return (ROOT / "README.md").read_text()


def api_blocks(text: str) -> list[str]:
    """The ```python blocks between the "### Python API" heading and the next heading of any level."""
    section = text.split(HEADING, 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def table_commands(text: str) -> set[str]:
    """Command names in the first cell of each row of the "## Commands" table."""
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `unitscope ([a-z]+)", section, flags=re.M))


def test_the_parsers_read_the_formats() -> None:
    text = "## Commands\n| `unitscope dissect --x` | a |\n## Next\n### Python API\n```python\nx = 1\n```\n## End\n"
    assert table_commands(text) == {"dissect"} and api_blocks(text) == ["x = 1\n"]


def test_command_table_matches_the_registered_commands() -> None:
    from unitscope.cli.main import cli, register_commands

    register_commands(cli)
    assert table_commands(readme_text()) == set(cli.commands)


@pytest.mark.parametrize("index", range(len(api_blocks(readme_text()))))
def test_api_example_runs(index: int, tmp_path: Path) -> None:
    code = api_blocks(readme_text())[index]
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, f"README.md Python API example {index + 1}", "exec"), {})
    finally:
        os.chdir(here)
