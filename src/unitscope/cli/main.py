"""The ``unitscope`` command: a click group whose commands live one per module.

Bad input raises :class:`~unitscope.errors.UsageError`; here it becomes one line on stderr and exit
status 2, with no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

import click

from unitscope.cli.options import ArgsGroup
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
    "unitscope.cli.layers",
    "unitscope.cli.report",
    "unitscope.cli.explain",
    "unitscope.cli.annotate",
    "unitscope.cli.serve",
    "unitscope.cli.annotations",
    "unitscope.cli.ablate",
    "unitscope.cli.see",
    "unitscope.cli.study",
)

OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
RESUMABLE = frozenset({"dissect", "explain", "minimal", "demo"})  # commands that continue from a checkpoint


def _resumes(args: list[str]) -> bool:
    """Whether the command in ``args`` resumes when run again (the group's own options take no values)."""
    return next((arg for arg in args if not arg.startswith("-")), "") in RESUMABLE


@click.group(cls=ArgsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="unitscope", prog_name="unitscope")
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
    except OSError as err:  # a full disk, a read-only file system, a permission revoked mid-run
        if debug or err.errno not in OUTPUT_ERRNOS:
            raise
        where = f": {err.filename}" if err.filename else ""
        resume = " (an interrupted run resumes when rerun)" if _resumes(args) else ""
        mend = ("check its permissions" if err.errno in (errno.EACCES, errno.EPERM)
                else f"free space or choose a writable output path{resume}")
        click.echo(f"unitscope: error: {err.strerror}{where}; {mend}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _interrupted(standalone=argv is None, resumes=_resumes(args))
    except click.ClickException as err:
        click.echo(f"unitscope: error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)


def _interrupted(standalone: bool, resumes: bool = True) -> None:
    """Ctrl-C: say how to resume (a command that can) and exit at once (status 130).

    Checkpoints are written atomically, the output lock is the kernel's and workers die with their
    parent, so a process of its own skips the interpreter's teardown (seconds with torch loaded).
    """
    click.echo("unitscope: interrupted; run the same command again to " + ("resume" if resumes else "start over"),
               err=True)
    if standalone:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(130)
