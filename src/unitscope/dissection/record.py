"""The run contract: what a finished dissection was (``RunSpec``) and recorded (``RunRecord``), typed.

``summary.json`` is written by :func:`write_record` and read by :func:`read_record` only; every consumer
(report, segment, compare, the demo, the API) reads a run through these dataclasses. Adding a field is one
line with a default: older files lacking it read as the default, and the schema version says which
writer made a file (a file from before the contract, or a corrupt one, is one clear ``UsageError``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from unitscope.dissection.run_files import record_problem, type_problem
from unitscope.errors import UsageError

RUN_FORMAT = "unitscope-dissection/1"
SCHEMA_VERSION = 2
SUMMARY = "summary.json"

Setting = bool | int | float | str


@dataclass(frozen=True)
class ModelSpec:
    """How the model was named: spec (torchvision name, ``sceneworld-*``, ``file.py:fn``), weights, preprocessing."""

    spec: str = "sceneworld-scene"
    weights: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    digest: str | None = None  # models.digest.state_digest of the network dissected (None: an older run)
    module_class: str | None = None  # its class's qualified name


@dataclass(frozen=True)
class DataSpec:
    """How the probe set was named (``open_probe(data, n=…, seed=…, size=…)`` opens it again) and what it held.

    ``n``: SceneWorld's image count; for a directory its first n rows, None for all of them.
    """

    data: str = "sceneworld"
    n: int | None = 500
    seed: int = 0
    size: int = 112
    digest: str | None = None  # data.identity.probe_identity: what defines the images and labels
    images: int | None = None  # how many images it held


@dataclass(frozen=True)
class RunSpec:
    """The identity of a run: a finished run is reused only for an equal spec (not batch size or workers).

    Known by content: the model's state digest and class, the probe set's digest and length, and the
    preprocessing actually used, besides the names and settings (``spec_differences`` names what differs).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    layers: tuple[str, ...] = ()
    settings: dict[str, Setting] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # input_size, mean, std, resize as used


def _short(value: object) -> str:
    """A digest as its first 8 characters; None (a run written before digests) said in words."""
    if value is None:
        return "not recorded"
    return f"{value[:8]}…" if isinstance(value, str) and len(value) > 8 else repr(value)


def spec_differences(have: RunSpec, want: RunSpec) -> list[str]:
    """What differs between a recorded spec (``have``) and a wanted one, each as a short phrase (empty: same run).

    The order of the layers is display only. Content first: a different network or probe set is named by
    its digest or size, whatever its name says.
    """
    found: list[str] = []
    a, b = have.model, want.model
    if a.module_class != b.module_class:
        found.append(f"model class differs ({a.module_class} vs {b.module_class})")
    if a.digest != b.digest:
        found.append(f"model weights differ (digest {_short(a.digest)} vs {_short(b.digest)})")
    for name in ("spec", "weights", "num_classes", "input_size", "mean", "std"):
        if getattr(a, name) != getattr(b, name):
            found.append(f"model {name} differs ({getattr(a, name)!r} vs {getattr(b, name)!r})")
    c, d = have.data, want.data
    if c.images != d.images or c.n != d.n:
        found.append(f"probe set differs: {c.images or c.n} images vs {d.images or d.n}")
    elif c.digest != d.digest:
        found.append(f"probe set content differs (digest {_short(c.digest)} vs {_short(d.digest)})")
    for name in ("data", "seed", "size"):
        if getattr(c, name) != getattr(d, name):
            found.append(f"probe {name} differs ({getattr(c, name)!r} vs {getattr(d, name)!r})")
    if sorted(set(have.layers)) != sorted(set(want.layers)):
        found.append(f"layers differ ({', '.join(sorted(set(have.layers)))} vs {', '.join(sorted(set(want.layers)))})")
    for key in sorted(set(have.settings) | set(want.settings)):
        if have.settings.get(key) != want.settings.get(key):
            found.append(f"setting {key} differs ({have.settings.get(key)!r} vs {want.settings.get(key)!r})")
    for key in sorted(set(have.preprocessing) | set(want.preprocessing)):
        if have.preprocessing.get(key) != want.preprocessing.get(key):
            found.append(f"preprocessing {key} differs ({have.preprocessing.get(key)!r} vs "
                         f"{want.preprocessing.get(key)!r})")
    return found


@dataclass(frozen=True)
class LayerRecord:
    """One dissected layer: its name, module path, output shape and receptive-field alignment."""

    name: str
    path: str
    units: int
    map_size: tuple[int, int]
    directory: str
    table: tuple[dict[str, Setting], ...] = ()
    stride: float | None = None
    start: float | None = None
    intervals: dict[str, Any] = field(default_factory=dict)  # bootstrap intervals of the counts (issue 12)
    top_maps: str | None = None  # file in ``directory``: float32 [U, k, h, w] maps of the top images
    histogram: str | None = None  # file in ``directory``: int64 [U, bins] activation counts and the bin edges
    depth: dict[str, int] = field(default_factory=dict)  # models.depth.layer_depth ({}: an older run)
    resampled: dict[str, Any] = field(default_factory=dict)  # ResampledCounts.to_record: detectors per resample


@dataclass(frozen=True)
class RunRecord:
    """Everything ``summary.json`` holds about a finished run."""

    spec: RunSpec
    model: str
    data: str
    n_images: int
    image_size: tuple[int, int]
    label_size: tuple[int, int]
    input_size: tuple[int, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    layers: tuple[LayerRecord, ...] = ()
    class_names: tuple[str, ...] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, Any] = field(default_factory=dict)  # {phase: {"wall": s, "cpu": s}} (dissection/phases.py)
    versions: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # e.g. a probe set too small for a layer (issue 12)
    baseline: dict[str, Any] | None = None  # detector counts of the random-weight baseline (issue 12)
    control: dict[str, Any] | None = None  # object/part detectors surviving the colour control (colour_control.py)
    location: str | None = None  # the run directory's absolute path when written: relative paths resolve here
    format: str = RUN_FORMAT
    schema: int = SCHEMA_VERSION

    @property
    def settings(self) -> dict[str, Setting]:
        return self.spec.settings

    def setting(self, name: str, default: Setting) -> Setting:
        """One result-changing setting (the writer's value; ``default`` only for an absent key)."""
        return self.spec.settings.get(name, default)

    def layer(self, name: str) -> LayerRecord:
        for layer in self.layers:
            if name in (layer.name, layer.path):
                return layer
        raise UsageError(f"the run has no layer {name!r}; it has {', '.join(lay.name for lay in self.layers)}")


def settings_record(settings: dict[str, Setting]) -> RunRecord:
    """A record holding only ``settings`` (for runs built in memory, e.g. by tests of the renderers)."""
    return RunRecord(RunSpec(settings=dict(settings)), "model", "data", 0, (0, 0), (0, 0), (0, 0))


def versions() -> dict[str, str]:
    """Versions of the code that wrote a run (unitscope, torch, python)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        ours = version("unitscope")
    except PackageNotFoundError:
        ours = "unknown"
    return {"unitscope": ours, "torch": str(torch.__version__), "python": sys.version.split()[0]}


def _plain(value: Any) -> Any:
    """numpy scalars (pandas tables hand them out) as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def write_record(record: RunRecord, directory: Path) -> Path:
    """Write ``directory/summary.json`` (through a temporary file)."""
    path = Path(directory) / SUMMARY
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, default=_plain))
    tmp.replace(path)
    return path


def _convert(kind: Any, value: Any) -> Any:
    """JSON value → the annotated type (dataclasses, tuples, optionals); unknown shapes pass through."""
    origin = get_origin(kind)
    args = get_args(kind)
    if value is None:
        return None
    if isinstance(kind, type) and is_dataclass(kind):
        return _build(kind, value)
    if origin is tuple:
        items = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in items)
        return tuple(_convert(a, v) for a, v in zip(args, items, strict=False))
    if origin is dict:
        return dict(value)
    if args and type(None) in args:  # X | None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def _build(cls: Any, data: Any) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values = {name: _convert(hints[name], data[name]) for name in known if name in data}
    return cls(**values)


def read_record(directory: str | Path) -> RunRecord:
    """Read ``directory/summary.json``; a missing, corrupt or older file is one ``UsageError``."""
    path = Path(directory) / SUMMARY
    if not path.is_file():
        raise UsageError(f"{directory} is not a finished dissection run (no {SUMMARY}); run dissect first")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is corrupt ({err}); run dissect again with --overwrite") from err
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise UsageError(f"{directory} was not written by unitscope dissect ({RUN_FORMAT}); run dissect on it")
    schema = data.get("schema")
    if schema != SCHEMA_VERSION:
        raise UsageError(f"{path} has run schema {schema}, this unitscope reads schema {SCHEMA_VERSION}; "
                         "run dissect again with --overwrite")
    try:
        record = _build(RunRecord, data)
    except (TypeError, ValueError, KeyError) as err:
        raise UsageError(f"{path} is corrupt ({err}); run dissect again with --overwrite") from err
    problem = type_problem(record, RunRecord, "") or record_problem(record)  # every field of its type, sizes sane
    if problem is not None or not isinstance(record, RunRecord):
        raise UsageError(f"{path} is corrupt ({problem}); run dissect again with --overwrite")
    return record


def spec_from_json(data: object) -> RunSpec:
    """A ``RunSpec`` from its JSON form (an interrupted run's ``config.json``); malformed is a ``UsageError``."""
    try:
        spec = _build(RunSpec, data)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise UsageError(f"a run spec is malformed ({err}); pass --overwrite to discard it") from err
    if not isinstance(spec, RunSpec):
        raise UsageError("a run spec is malformed; pass --overwrite to discard it")
    return spec

