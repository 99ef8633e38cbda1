"""Every check that needs no model, made before torch is imported, so a typo costs a blink, not seconds.

Commands call these first (paths, output directory, checkpoint existence, option ranges, the model and layer
names of built-in and torchvision architectures from ``models.catalog``'s shipped lists); the loaders keep
their own checks, with the same messages, for the Python API and what only the model can tell.
``tests/test_fast_errors.py`` holds each command to this: its errors leave ``torch`` out of ``sys.modules``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unitscope.errors import UsageError
from unitscope.models.catalog import check_layer_names, check_model_files, check_model_name


def check_model_args(model_spec: str, weights: str | None, num_classes: int | None,
                     layers: Sequence[str | None] = ()) -> None:
    """--model, --weights, --num-classes and the --layer names, as far as they are known without the model."""
    if num_classes is not None and num_classes <= 0:
        raise UsageError(f"--num-classes must be positive, got {num_classes}")
    check_model_name(model_spec)
    check_model_files(model_spec, weights)
    check_layer_names(model_spec, [name for name in layers if name])


def check_range(option: str, value: float | None, low: float, high: float, *, open_low: bool = False,
                open_high: bool = False) -> None:
    """Refuse ``value`` outside ``[low, high]`` (an open end excludes it), naming the option."""
    if value is None:
        return
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise UsageError(f"{option} must be in {interval}, got {value:g}")


def check_at_least(option: str, value: int | None, low: int) -> None:
    """Refuse a count below ``low`` (0: "0 or more"), naming the option."""
    if value is not None and value < low:
        floor = "0 or more" if low == 0 else f"at least {low}"
        raise UsageError(f"{option} must be {floor}, got {value}")


def check_inputs(image: str | None, data: str | None, n: int | None) -> None:
    """``--image PATH`` or ``--data D`` (exactly one), as ``analysis.inputs.open_inputs`` takes them."""
    from unitscope.data import check_probe_spec

    if (image is None) == (data is None):
        raise UsageError("give exactly one of --image PATH or --data D (with --n N)")
    if image is not None:
        if n is not None:
            raise UsageError("--n goes with --data, not with --image")
        if not Path(image).is_file():
            raise UsageError(f"--image {image} does not exist; give the path of a PNG or JPEG file")
    else:
        check_probe_spec(str(data))


def check_run_layers(run_dir: Path, layers: Sequence[str]) -> None:
    """Layers named by their run names, as ``segment`` takes them (from summary.json alone)."""
    from unitscope.dissection.record import read_record

    names = [layer.name for layer in read_record(run_dir).layers] if layers else []
    for name in layers:
        if name not in names:
            raise UsageError(f"the run has no layer {name!r}; its layers are {', '.join(names)}")


def check_run_layer(run_dir: Path, layer: str) -> None:
    """A layer named by its run name or module path, as ``explain`` takes it (from summary.json alone)."""
    from unitscope.dissection.record import read_record

    held = read_record(run_dir).layers
    if not any(layer in (record.name, record.path) for record in held):
        raise UsageError(f"{run_dir} has no layer {layer!r}; it holds {', '.join(record.name for record in held)}")
