"""A run as named on the command line, and the refusal of a finished run named otherwise: no torch needed,
so ``dissect --out`` of another finished run fails before the model loads (``run.py`` adds the content)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from unitscope.dissection.record import SUMMARY, DataSpec, ModelSpec, RunSpec, read_record, spec_differences
from unitscope.dissection.settings import DissectSettings
from unitscope.errors import UsageError


def same_path(spec: str | None) -> str | None:
    """A spec naming an existing file or folder as its absolute path, so ``./d``, ``d`` and ``/abs/d`` agree."""
    if spec is None:
        return None
    file_part, sep, rest = spec.partition(":") if spec.split(":", 1)[0].endswith(".py") else (spec, "", "")
    path = Path(file_part)
    return str(path.resolve()) + sep + rest if path.exists() else spec


def named_identity(model: ModelSpec, data: DataSpec, layers: Sequence[str], settings: DissectSettings) -> RunSpec:
    """The run's spec as named, with paths absolute (so ``./d``, ``d`` and ``/abs/d`` are one run, reopenable
    anywhere); ``run._with_content`` adds what the model and probe set hold."""
    model = replace(model, spec=same_path(model.spec) or model.spec, weights=same_path(model.weights))
    data = replace(data, data=same_path(data.data) or data.data)
    return RunSpec(model, data, tuple(layers), dict(settings.identity()))


def named_only(spec: RunSpec) -> RunSpec:
    """``spec`` without what only loading the model and probe set tells (compared first, before loading)."""
    return replace(spec, model=replace(spec.model, digest=None, module_class=None),
                   data=replace(spec.data, digest=None, images=None), preprocessing={})


def different_run(out_path: Path, differences: list[str]) -> UsageError:
    """The refusal of ``out_path``'s finished run, naming the first setting that differs (and how many more)."""
    more = len(differences) - 1
    rest = f"; and {more} more difference{'s' if more > 1 else ''}" if more > 0 else ""
    return UsageError(f"{out_path} holds a different finished run: {differences[0]}{rest}; "
                      "choose another --out or pass --overwrite")


def refuse_other_finished(out_path: Path, identity: RunSpec, overwrite: bool) -> None:
    """Refuse ``out_path`` when it holds a finished run that differs from ``identity`` by name or setting
    (reads only its summary.json; a run that differs only in content is told apart after loading)."""
    if overwrite or not out_path.is_dir():
        return
    if not (out_path / SUMMARY).is_file():
        if any(out_path.iterdir()):
            raise UsageError(f"{out_path} exists and is not a dissection run; choose another --out")
        return
    named = spec_differences(named_only(read_record(out_path).spec), named_only(identity))
    if named:
        raise different_run(out_path, named)
