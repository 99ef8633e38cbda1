"""One CLI shape: the same idea has one name and one default in every command; old spellings still
parse for one release (hidden from --help, with a note); a missing input is reported before torch loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.cli_helpers import run_cli
from unitscope.cli.main import cli, register_commands
from unitscope.defaults import FRESH_SEED, PICTURE_N, PROBE_N, PROBE_SEED


def commands() -> dict[str, click.Command]:
    register_commands(cli)
    found: dict[str, click.Command] = {}
    for name, command in cli.commands.items():
        subs = command.commands if isinstance(command, click.Group) else {"": command}
        for sub, leaf in subs.items():
            found[f"{name} {sub}".strip()] = leaf
    return found


def option(command: click.Command, flag: str) -> click.Option | None:
    return next((p for p in command.params if isinstance(p, click.Option) and flag in p.opts), None)


def test_one_name_per_idea_in_every_help() -> None:
    for name, command in commands().items():
        help_text = command.get_help(click.Context(command, info_name=name))
        for old in ("--output", "--label", "--kind", "--out-dir"):
            assert f"{old} " not in help_text and f"{old}," not in help_text, (name, old)


@pytest.mark.parametrize(("names", "flag", "default"), [
    (("world", "evaluate", "ablate"), "--n", PROBE_N),
    (("dissect", "rf", "world"), "--seed", PROBE_SEED),
    (("evaluate", "ablate", "minimal", "cam", "segment"), "--seed", FRESH_SEED),
    (("minimal",), "--n", PICTURE_N),
])
def test_n_and_seed_default_the_same_where_they_mean_the_same(names: tuple[str, ...], flag: str,
                                                                default: int) -> None:
    found = commands()
    assert {name: option(found[name], flag).default for name in names} == dict.fromkeys(names, default)  # type: ignore[union-attr]


def test_dissect_and_rf_render_probe_n_sceneworld_images_and_read_a_directory_whole() -> None:
    from unitscope.data import probe_count

    for name in ("dissect", "rf"):
        n = option(commands()[name], "--n")
        assert n is not None and n.default is None  # "not given": SceneWorld's PROBE_N, a directory's every row
        assert f"(default {PROBE_N})" in (n.help or "") and "(default: all)" in (n.help or "")
    assert probe_count("sceneworld", None) == PROBE_N and probe_count("/a/broden/dir", None) is None


def test_cam_and_segment_take_picture_n_images_by_default() -> None:
    from unitscope.analysis.inputs import open_inputs

    assert len(open_inputs(None, "sceneworld", None, FRESH_SEED, 32)) == PICTURE_N
    for name in ("cam", "segment"):
        assert f"(default {PICTURE_N})" in option(commands()[name], "--n").help  # type: ignore[union-attr,operator]


def test_old_spellings_parse_hidden_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    minimal = commands()["minimal"]
    help_text = minimal.get_help(click.Context(minimal))
    assert "--class" in help_text and "--label" not in help_text
    # --label still reaches the same parameter: the error is about the class value, not an unknown option
    result = run_cli(capsys, "minimal", "--model", "sceneworld-scene", "--image", "nope.png", "--data",
                     "sceneworld", "--label", "kitchen", "--out", "x")
    assert result.code == 2 and "No such option" not in result.err
    assert "--label is now --class" in result.err
    world = commands()["world"]
    assert "--kind" not in world.get_help(click.Context(world))


def test_world_kind_alias_writes_the_same_as_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = run_cli(capsys, "world", str(tmp_path / "a"), "--kind", "objects", "--n", "2", "--size", "32",
                  "--previews", "1")
    new = run_cli(capsys, "world", "--out", str(tmp_path / "b"), "--data", "sceneworld-objects", "--n", "2",
                  "--size", "32", "--previews", "1")
    assert old.code == new.code == 0, old.err + new.err
    assert "--kind objects is now --data sceneworld-objects" in old.err and "note" not in new.err
    assert (tmp_path / "a" / "index.csv").read_text() == (tmp_path / "b" / "index.csv").read_text()
    assert len(list((tmp_path / "b" / "preview").glob("*/*_object.png"))) == 1  # --previews 1 of 2 images


MISSING = [
    ["report", "{gone}"],
    ["compare", "{gone}", "{gone}", "--out", "{tmp}/c"],
    ["segment", "--model", "sceneworld-scene", "--run", "{gone}", "--data", "sceneworld", "--out", "{tmp}/s"],
    ["explain", "--run", "{gone}", "--layer", "conv5", "--out", "{tmp}/e"],
    ["ablate", "--model", "sceneworld-scene", "--run", "{gone}", "--layer", "conv5", "--out", "{tmp}/a"],
    ["annotate", "{gone}"],
    ["annotations", "agree", "{gone}", "{gone}"],
    ["annotations", "summary", "{gone}"],
    ["dissect", "--model", "sceneworld-scene", "--layer", "conv5", "--field-sizes", "{gone}", "--out", "{tmp}/d"],
    ["report", "{run}", "--field-sizes", "{gone}"],
]


def test_a_missing_input_is_one_line_before_torch_loads(tmp_path: Path) -> None:
    code = (
        "import json, sys\nfrom unitscope.cli.main import main\nout = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n        main(args)\n"
        "    except SystemExit as e:\n        out.append([e.code, 'torch' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")  # only looked at after the checks
    cases = [[a.format(gone=tmp_path / "gone", tmp=tmp_path, run=run) for a in case] for case in MISSING]
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True,
                          timeout=120)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == [[2, False]] * len(MISSING), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(MISSING) and all("does not exist" in line for line in lines), done.stderr
