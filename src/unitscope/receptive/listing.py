"""Every capturable layer of a model: its module path, type, output shape (as dissected) and field.

One forward pass with a hook on every module records what each returns, through the same adapter the
dissection uses (:func:`unitscope.capture.spatial_output`: tokens become a grid, Swin's channels-last maps
are permuted). Modules that never run in ``forward`` (e.g. ``nn.MultiheadAttention.out_proj``, called
functionally) or return no tensor are left out: they cannot be captured.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass

import torch
from torch import nn

from unitscope.capture import channels_last_layers, spatial_output


@dataclass(frozen=True)
class LayerRow:
    path: str
    kind: str
    shape: tuple[int, ...]  # without the batch dimension, after the spatial adapter
    field: int | None  # theoretical receptive field side in input pixels; None where undefined


def list_layers(module: nn.Module, input_size: tuple[int, int], device: str | torch.device = "cpu") -> list[LayerRow]:
    """Capturable layers of ``module`` in the order they run, for one ``input_size`` image."""
    from unitscope.receptive.theory import theoretical_fields

    last = channels_last_layers(module)
    shapes: dict[str, tuple[int, ...]] = {}
    kinds: dict[str, str] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(_m: nn.Module, _i: object, output: object, name: str = name, sub: nn.Module = sub) -> None:
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(spatial_output(output, name in last).shape[1:])
                kinds[name] = type(sub).__name__

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    try:
        with redirect_stdout(io.StringIO()):  # the tracer reports layers it cannot follow; "-" says it here
            fields = {path: int(f.size) for path, f in theoretical_fields(module, input_size).items()}
    except Exception:
        fields = {}
    return [LayerRow(name, kinds[name], shape, fields.get(name)) for name, shape in shapes.items()]
