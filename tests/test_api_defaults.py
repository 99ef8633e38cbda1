"""The API and the CLI default the same way (issue 23): every keyword the API shares with its command has
the command's default, so a notebook and a shell give the same numbers for the same call."""

from __future__ import annotations

import inspect

import click
import pytest

from unitscope import api
from unitscope.cli.main import cli, register_commands
from unitscope.defaults import PICTURE_N

# API function -> (command, API keyword -> option name where they are spelled differently)
PAIRS: dict[str, tuple[str, dict[str, str]]] = {
    "dissect": ("dissect", {}),
    "minimal_images": ("minimal", {}),
    "segment": ("segment", {"layer": "layers"}),
    "cam": ("cam", {"class_name": "class_"}),
    "explain": ("explain", {}),
    "ablate": ("ablate", {}),
}
NOT_SHARED = {"page", "unit_batch", "model", "data", "out", "run", "layers", "progress", "class_names",
              "preprocessing", "trust", "weights", "num_classes", "device", "overwrite", "report", "settings"}


def _command(name: str) -> click.Command:
    register_commands(cli)
    command = cli.commands[name]
    assert isinstance(command, click.Command)
    return command


@pytest.mark.parametrize("function", sorted(PAIRS))
def test_every_shared_default_is_the_commands(function: str) -> None:
    name, renamed = PAIRS[function]
    options = {p.name: p for p in _command(name).params if p.name}
    compared = 0
    for keyword, parameter in inspect.signature(getattr(api, function)).parameters.items():
        if parameter.default is inspect.Parameter.empty or keyword in NOT_SHARED:
            continue
        option = options.get(renamed.get(keyword, keyword))
        if option is None:
            continue
        default = option.default
        if (isinstance(default, tuple) and not default) or "UNSET" in repr(default):  # click's "not given"
            default = None
        if keyword == "n" and default is None and name in ("segment", "cam"):
            default = PICTURE_N  # the command's None is "PICTURE_N images of --data" (analysis/inputs.py)
        if keyword == "ops":
            default = tuple(op.strip() for op in str(default).split(","))
        assert parameter.default == default, f"{function}({keyword}={parameter.default!r}): {name} has {default!r}"
        compared += 1
    assert compared >= 2, f"{function}: too few shared keywords compared ({compared})"


def test_explain_and_ablate_are_in_the_namespace() -> None:
    import unitscope.explain  # the subpackage, imported: unitscope.explain stays callable as the API's

    assert callable(unitscope.explain) and unitscope.ablate is api.ablate
    assert {"explain", "ablate"} <= set(unitscope.__all__)


def test_segment_defaults_to_the_commands_method() -> None:
    assert inspect.signature(api.segment).parameters["method"].default == "vectors"
