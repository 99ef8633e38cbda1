"""The one way into a finished run: its model, probe set, preprocessing and precision, checked by content.

Every consumer of a finished run (report, explain, annotate, compare, segment, ablate, the API) gets what
the run was made from here, so a received run folder is treated the same way everywhere:

- **No code from a run folder.** A run whose model is ``file.py:callable`` is never imported unless the user
  opts in for that command (``Trust.model_code``, ``--trust-model-code``) or names the model again
  themselves (``model=``, ``--model``). A checkpoint that is not tensor-only is unpickled only with
  ``Trust.checkpoint`` (``--trust-checkpoint``).
- **Paths resolve against the run, never the current directory.** A relative path in a record is taken
  relative to the directory the run recorded as its own (``RunRecord.location``), else where it is now.
- **Content is checked.** The model reopened must have the state digest and class the run recorded, and the
  probe set the digest and length: a checkpoint changed on disk since the run, or another network given
  under the same name, is one line naming what differs, never a silent mix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from unitscope.errors import UsageError

if TYPE_CHECKING:  # this module is imported by the CLI before torch: nothing heavy at import time
    from unitscope.data.probe import ProbeSet
    from unitscope.dissection.result import DissectionResult
    from unitscope.models.loading import LoadedModel


@dataclass(frozen=True)
class Trust:
    """What the user allows a run folder to make unitscope do, for one command (nothing by default), and
    the model they name themselves instead of the run's record (their own choice, so trusted as theirs)."""

    checkpoint: bool = False  # fully unpickle the run's weights file (a pickle can run code)
    model_code: bool = False  # import the run's ``file.py:callable`` model (Python code)
    model: str | None = None  # --model given again: loaded instead of the spec the run recorded
    weights: str | None = None  # --weights with it


def _base(run: DissectionResult) -> Path:
    """Where a run's relative paths resolve: the directory it recorded as its own, else where it is now."""
    location = run.record.location
    if location:
        return Path(location)
    if run.run_dir is not None:
        return Path(run.run_dir).resolve()
    raise UsageError("the run has no directory to resolve its paths against; pass the model and probe set")


def _anchored(run: DissectionResult, path: str) -> Path:
    given = Path(path)
    return given if given.is_absolute() else _base(run) / given


def is_model_code(spec: str) -> bool:
    """Whether a model spec names Python code (``file.py:callable``)."""
    return ":" in spec and spec.split(":", 1)[0].endswith(".py")


def recorded_model_spec(run: DissectionResult) -> tuple[str, str | None]:
    """The run's model spec and weights, with relative file paths anchored at the run (never the cwd)."""
    spec = run.record.spec.model
    name = spec.spec
    if is_model_code(name):
        file_part, _, func = name.rpartition(":")
        name = f"{_anchored(run, file_part)}:{func}"
    elif name.endswith(".pt") and not Path(name).is_absolute():
        name = str(_anchored(run, name))
    weights = spec.weights
    if weights is not None and ("/" in weights or weights.endswith((".pth", ".pt", ".tar"))):
        weights = str(_anchored(run, weights))
    return name, weights


def reopen_model(run: DissectionResult, *, device: str = "cpu", trust: Trust | None = None,
                 model: LoadedModel | None = None) -> LoadedModel:
    """The model a run dissected, with the run's preprocessing and precision, checked against its digest.

    ``model``, or ``trust.model`` (``--model`` again): the user's own choice of network; otherwise the run's
    recorded spec, under the rules of the module docstring.
    """
    from unitscope.models.loading import load_model

    trust = trust or Trust()
    spec = run.record.spec.model
    if model is not None:
        loaded = replace(model)
    else:
        own = trust.model
        name, recorded_weights = (own, trust.weights) if own is not None else recorded_model_spec(run)
        if own is None and is_model_code(name) and not trust.model_code:
            raise UsageError(f"the run {run.run_dir} names model code {name}; unitscope does not run code named "
                             "in a run folder. Pass --trust-model-code if you trust that file, or name the "
                             "model yourself with --model")
        if own is None and spec.module_class and spec.spec.split(".")[-1] == spec.module_class.split(".")[-1] \
                and not is_model_code(spec.spec):
            raise UsageError(f"the run {run.run_dir} was made from a Python object ({spec.module_class}), which "
                             "cannot be rebuilt from its record; pass the model (--model, or model= in the API)")
        loaded = load_model(name, recorded_weights, spec.num_classes, device, trust.checkpoint)
    loaded.preprocess = loaded.preprocess.with_overrides(spec.input_size, spec.mean, spec.std)
    loaded.amp = str(run.record.setting("amp", "off"))  # the maps are those the run measured
    check_model(run, loaded)
    return loaded


def check_model(run: DissectionResult, loaded: LoadedModel) -> None:
    """Refuse a model that is not the one the run dissected (state digest and class, where recorded)."""
    from unitscope.models.digest import module_class, state_digest

    spec = run.record.spec.model
    if spec.module_class is not None and module_class(loaded.module) != spec.module_class:
        raise UsageError(f"the run {run.run_dir} dissected a {spec.module_class}, not a "
                         f"{module_class(loaded.module)}; pass the model the run was made with")
    if spec.digest is not None and (found := state_digest(loaded.module)) != spec.digest:
        raise UsageError(f"the model differs from the one the run {run.run_dir} dissected: model weights differ "
                         f"(digest {found[:8]}… vs {spec.digest[:8]}…); pass the model and weights the run "
                         "was made with")


def recorded_data_spec(run: DissectionResult) -> str:
    """The run's ``--data``: a SceneWorld name as it is, a directory anchored at the run (never the cwd)."""
    from unitscope.data import SCENEWORLD_SPECS

    name = run.record.spec.data.data
    return name if name in SCENEWORLD_SPECS else str(_anchored(run, name))


def reopen_probe(run: DissectionResult, data: str | ProbeSet | None = None) -> ProbeSet:
    """The probe set a run was dissected on (or ``data`` in its place, e.g. moved), checked against its digest."""
    from unitscope.data import open_probe

    spec = run.record.spec.data
    if data is None or isinstance(data, str):
        name = data or recorded_data_spec(run)
        try:
            probe = open_probe(name, n=spec.images or spec.n, seed=spec.seed, size=spec.size)
        except UsageError as err:
            raise UsageError(f"cannot reopen the probe set {name!r} of run {run.run_dir} ({err}); "
                             "pass its location (--data)") from err
    else:
        probe = data
    check_probe(run, probe)
    return probe


def check_probe(run: DissectionResult, probe: ProbeSet) -> None:
    """Refuse a probe set that is not the one the run was dissected on (its length and digest, where recorded)."""
    from unitscope.data.identity import probe_identity

    spec = run.record.spec.data
    if spec.digest is None:
        if len(probe) != run.record.n_images:
            raise UsageError(f"probe set differs: {len(probe)} images vs the run's {run.record.n_images}; "
                             "pass the probe set the run was dissected on")
        return
    found = probe_identity(probe)
    if spec.images is not None and found.images != spec.images:
        raise UsageError(f"probe set differs: {found.images} images vs the run's {spec.images}; pass the probe "
                         "set the run was dissected on")
    if found.digest != spec.digest:
        raise UsageError(f"probe set content differs from the run's (digest {found.digest[:8]}… vs "
                         f"{spec.digest[:8]}…); pass the probe set the run was dissected on")
