"""The ``unitscope`` command: a click group whose commands live one per module.

Bad input raises :class:`~unitscope.errors.UsageError`; here it becomes one line on stderr and exit
status 2, with no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import importlib
import sys

import click

from unitscope.errors import UsageError

COMMAND_MODULES: tuple[str, ...] = (
    "unitscope.cli.world",
    "unitscope.cli.train",
    "unitscope.cli.evaluate",
    "unitscope.cli.dissect",
    "unitscope.cli.demo",
    "unitscope.cli.minimal",
    "unitscope.cli.compare",
    "unitscope.cli.segment",
    "unitscope.cli.cam",
    "unitscope.cli.rf",
    "unitscope.cli.ablate",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """unitscope: find out what every unit of a convolutional network detects."""
    ctx.obj = {"debug": debug}


def register_commands(group: click.Group) -> None:
    """Import each command module and add its ``command`` to the group."""
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        group.add_command(module.command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning usage errors into one line and exit status 2."""
    register_commands(cli)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="unitscope", standalone_mode=False)
    except UsageError as err:
        if debug:
            raise
        click.echo(f"unitscope: error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("unitscope: interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    except click.ClickException as err:
        click.echo(f"unitscope: error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("unitscope: interrupted; run the same command again to resume", err=True)
        sys.exit(130)
