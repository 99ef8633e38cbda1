"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unitscope.errors import UsageError

if TYPE_CHECKING:
    from unitscope.dissection.reopen import Trust
    from unitscope.models.loading import LoadedModel

F = Callable[..., Any]


TRUST_KEY = "unitscope.trust_checkpoint"
TRUST_CODE_KEY = "unitscope.trust_model_code"
RUN_MODEL_KEY = "unitscope.run_model"
RUN_WEIGHTS_KEY = "unitscope.run_weights"
ARGS_KEY = "unitscope.args"

class AliasOption(click.Option):
    """An option whose old spellings (``old=``) still parse for one release but are hidden from --help.

    Using one prints a one-line note naming the new spelling (on stderr; the command runs as before).
    """

    def __init__(self, param_decls: Sequence[str], old: Sequence[str] = (), **attrs: Any) -> None:
        super().__init__([*param_decls, *old], **attrs)
        self.old = tuple(old)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.old]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown

    def handle_parse_result(self, ctx: click.Context, opts: Any, args: list[str]) -> tuple[Any, list[str]]:
        given = ctx.meta.get(ARGS_KEY, ())
        used = [o for o in self.old if any(a == o or a.startswith(o + "=") for a in given)]
        if used:
            click.echo(f"unitscope: note: {used[0]} is now {self.opts[0]}; the old spelling goes in the next "
                       "release", err=True)
        return super().handle_parse_result(ctx, opts, args)


class ArgsGroup(click.Group):
    """The top-level group: keeps the raw arguments in ``ctx.meta`` so options can tell old spellings."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGS_KEY] = tuple(args)
        return super().parse_args(ctx, args)


def require_run(path: Path, what: str = "RUN") -> None:
    """A finished dissection run directory, checked before anything heavy is imported."""
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist (no summary.json); give the --out directory of a "
                         "finished `unitscope dissect`")
    if not (path / "summary.json").is_file():
        raise UsageError(f"{what} {path} is not a finished dissection run (no summary.json); run "
                         "`unitscope dissect --out RUN` first")


def require_path(path: Path | None, what: str) -> None:
    """An input file or directory that must exist (checked before anything heavy is imported)."""
    if path is not None and not Path(path).exists():
        raise UsageError(f"{what} {path} does not exist")


def trusted_checkpoints() -> bool:
    """Whether this command was given --trust-checkpoint (False outside a click command)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx.meta.get(TRUST_KEY, False)) if ctx is not None else False


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta[key] = value
        return value

    return callback


def run_model_options(func: F) -> F:
    """For commands that reopen a finished run's model: --model/--weights (the user's own choice instead of
    the run's record), --trust-checkpoint and --trust-model-code (what a run folder may make us do)."""
    func = click.option("--trust-model-code", is_flag=True, expose_value=False, callback=_remember(TRUST_CODE_KEY),
                        help="Import the run's model file (file.py:callable) named in its summary.json. A run "
                             "folder is untrusted input: without this, its Python code never runs.")(func)
    func = click.option("--trust-checkpoint", is_flag=True, expose_value=False, callback=_remember(TRUST_KEY),
                        help="Fully unpickle the run's --weights file if it is not tensor-only (can run code "
                             "from it).")(func)
    func = click.option("--weights", "run_weights", default=None, expose_value=False,
                        callback=_remember(RUN_WEIGHTS_KEY), help="Weights for --model.")(func)
    func = click.option("--model", "run_model", default=None, expose_value=False, callback=_remember(RUN_MODEL_KEY),
                        help="The run's model, named by you instead of the run's record (checked against the "
                             "run's weights digest).")(func)
    return func


def run_trust() -> Trust:
    """What this command's options allow a run folder to make unitscope do (see ``dissection.reopen``)."""
    from unitscope.dissection.reopen import Trust

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return Trust(checkpoint=bool(meta.get(TRUST_KEY, False)), model_code=bool(meta.get(TRUST_CODE_KEY, False)),
                 model=meta.get(RUN_MODEL_KEY), weights=meta.get(RUN_WEIGHTS_KEY))


def model_options(func: F) -> F:
    """--model, --weights, --trust-checkpoint, --num-classes, --device."""
    func = click.option("--trust-checkpoint", is_flag=True, expose_value=False, callback=_remember(TRUST_KEY),
                        help="Fully unpickle a --weights file that is not tensor-only (legacy whole-model "
                             "pickles). Unpickling can run code from the file: only for files you trust.")(func)
    func = click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")(func)
    func = click.option("--num-classes", type=int, default=None,
                        help="Classifier size for architectures built from scratch (365 for Places365).")(func)
    func = click.option("--weights", default=None,
                        help="torchvision weights name, or a checkpoint path (state_dict or {'state_dict': …}).")(func)
    func = click.option("--model", "model_spec", required=True,
                        help="torchvision name, sceneworld-scene, sceneworld-object, or path/file.py:callable "
                             "(a model file is Python code and runs as you: use only files you trust; the network "
                             "it returns may carry its classes as a class_names attribute).")(func)
    return func


def _read_class_names_early(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Read --class-names while the options are parsed, so a bad file fails before torch is imported."""
    if value is not None:
        from unitscope.data.class_names import read_class_names

        read_class_names(value)
    return value


def class_names_option(func: F) -> F:
    """--class-names FILE, for commands that show or need the model's classes (dest ``class_names``)."""
    return click.option(
        "--class-names", "class_names", default=None, metavar="FILE", callback=_read_class_names_early,
        help="The model's class names, in output order: Places365's categories_places365.txt (/a/airfield 0), "
             "one name per line, or ImageNet's class-index JSON ({\"0\": [\"n01440764\", \"tench\"], …}); "
             "as many as the model's outputs. Needed for a checkpoint without names (torchvision weights by "
             "name and the SceneWorld nets have theirs; a file.py:callable model may set a class_names "
             "attribute on the network it returns).")(func)


def open_model(model_spec: str, weights: str | None, num_classes: int | None, device: str,
               class_names: str | None = None) -> LoadedModel:
    """Load the model named on the command line, with the classes of ``--class-names`` when given."""
    if num_classes is not None and num_classes <= 0:
        raise UsageError(f"--num-classes must be positive, got {num_classes}")
    names = None
    if class_names is not None:
        from unitscope.data.class_names import read_class_names  # no torch: a bad file fails at once

        names = read_class_names(class_names)
    from unitscope.models.loading import load_model  # torch loads only when a command needs a model

    model = load_model(model_spec, weights=weights, num_classes=num_classes, device=device,
                       trust_checkpoint=trusted_checkpoints())
    if names is None:
        return model
    from unitscope.models.classes import with_class_names

    return with_class_names(model, names, file=class_names)


MAX_IMAGES = 10_000_000  # SceneWorld renders ~100 images/s per core: 10**7 is already days of work
MAX_SIDE = 4096
COUNT_OPTIONS = ("n", "n_eval", "train_n")
SIDE_OPTIONS = ("size", "input_size")


def check_positive(**values: int | None) -> None:
    """Refuse zero or negative counts with the option's name, and counts or sides that cannot fit,
    with an estimate of what they would take (before any work starts)."""
    side = next((v for k, v in values.items() if k in SIDE_OPTIONS and v), 112)
    for name, value in values.items():
        option = f"--{name.replace('_', '-')}"
        if value is not None and value <= 0:
            raise UsageError(f"{option} must be positive, got {value}")
        if value is None:
            continue
        if name in COUNT_OPTIONS and value > MAX_IMAGES:
            raise UsageError(f"{option} {value} would make {value:.2g} images, about "
                             f"{_size(value * min(side, MAX_SIDE) ** 2 * 3)} of pixels at side {side}; "
                             f"give at most {MAX_IMAGES:,}")
        if name in SIDE_OPTIONS and value > MAX_SIDE:
            raise UsageError(f"{option} {value} makes each image {value}×{value} pixels, about "
                             f"{_size(value * value * 3 * 4)} in float32 before any network; "
                             f"give at most {MAX_SIDE}")


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} PB"


def check_output_dir(path: Path, overwrite: bool, *, reusable: bool = False) -> None:
    """Check the output path and hold its one-writer lock for the rest of the command (see ``staging``)."""
    from unitscope.staging import claim_output

    claim_output(path, overwrite, reusable=reusable)
