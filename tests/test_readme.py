"""The README is a guide a newcomer can follow, and what it says runs.

- its first lines are the two commands, it is at most 350 lines, and neither it nor docs/ reads like a diary;
- its command table names exactly the CLI's commands, and every docs/ page it links exists;
- its Python API examples (the ```python blocks under "## Python API") run;
- its Quick start (the ```sh blocks under "## Quick start") runs, command by command, in a fresh directory,
  with ``--n 500`` shrunk to ``--n 40`` to keep the test short.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_HEADING = "## Python API"
QUICK_HEADING = "## Quick start"
MAX_LINES = 350
# Words of a development log, not of a guide (matched case-insensitively).
DIARY = re.compile(r"this stop|this wave|colleague|\bstop \d|\bwave \d|\(this stop\)|before \(commit", re.I)
SMALL_N = ("--n 500", "--n 40")


def readme_text() -> str:
    return (ROOT / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """The text between ``heading`` and the next level-2 heading (a shell comment looks like level 1)."""
    return text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def api_blocks(text: str) -> list[str]:
    """The ```python blocks between the "## Python API" heading and the next heading of any level."""
    part = text.split(API_HEADING, 1)[1]
    part = re.split(r"\n#{1,3} ", part, maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


def table_commands(text: str) -> set[str]:
    """Command names in the first cell of each row of the "## Commands" table."""
    part = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `unitscope ([a-z]+)", part, flags=re.M))


def quick_start_commands(text: str) -> list[str]:
    """Shell commands of the ```sh/```bash blocks under "## Quick start": continuations joined, comments dropped."""
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", section(text, QUICK_HEADING), flags=re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    commands = [re.sub(r"\s+#[^'\"]*$", "", line).strip() for line in joined.splitlines()]
    return [c for c in commands if c and not c.startswith("#")]


def docs_links(text: str) -> list[str]:
    return re.findall(r"\]\((docs/[^)#\s]+)", text)


def test_the_parsers_read_the_formats() -> None:
    text = ("## Commands\n| `unitscope dissect --x` | a |\n## Quick start\n```sh\nunitscope a \\\n  --b  # note\n"
            "# comment\n```\n```text\nunitscope real\n```\n## Python API\n```python\nx = 1\n```\n## End\n"
            "[d](docs/d.md#part) [e](docs/e.png)\n")
    assert table_commands(text) == {"dissect"} and api_blocks(text) == ["x = 1\n"]
    assert quick_start_commands(text) == ["unitscope a    --b"]
    assert docs_links(text) == ["docs/d.md", "docs/e.png"]
    assert DIARY.search("At the start of This Stop") and DIARY.search("Before (commit 1)")
    assert DIARY.search("a colleague") and DIARY.search("in wave 1") and not DIARY.search("a stopwatch")


def test_readme_starts_with_the_two_commands_and_is_short() -> None:
    lines = readme_text().splitlines()
    first = [line.split()[:2] for line in lines if line.strip()][:2]
    assert first == [["make", "demo"], ["make", "test"]]
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; a guide keeps to {MAX_LINES}"


def test_no_development_log_language() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in pages
             for n, line in enumerate(p.read_text().splitlines(), 1) if DIARY.search(line)]
    assert not found, "development-log words:\n" + "\n".join(found)


def test_every_docs_link_exists_and_every_docs_page_is_linked() -> None:
    links = docs_links(readme_text())
    missing = [link for link in links if not (ROOT / link).exists()]
    assert links and not missing, f"README links to missing files: {missing}"
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages - set(links) == set(), f"docs pages the README does not link: {sorted(pages - set(links))}"


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


def _shims(bin_dir: Path) -> None:
    """``python`` and ``unitscope`` on PATH run this interpreter on this checkout's sources."""
    bin_dir.mkdir()
    for name, tail in (("python", '"$@"'), ("unitscope", '-m unitscope "$@"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {tail}\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)


def test_quick_start_runs(tmp_path: Path) -> None:
    commands = [c.replace(*SMALL_N) for c in quick_start_commands(readme_text())]
    assert len(commands) >= 6 and not any(c.startswith("make ") for c in commands)
    _shims(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README Quick start: {command}\n{done.stderr[-2000:]}"
    for page in ("run-r18/report.html", "run-scene/report.html", "cmp/report.html", "abl-r18/report.html"):
        assert (work / page).is_file(), page
    names = (work / "scenes.txt").read_text().split()
    with (work / "abl-r18" / "ablation.csv").open() as f:
        scenes = {row["scene"] for row in csv.DictReader(f)}
    assert set(names) <= scenes, "ablate did not name the classes from --class-names"
