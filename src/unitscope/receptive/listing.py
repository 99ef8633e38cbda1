"""Every capturable layer of a model: its module path, type, output shape (as dissected), units and field.

One probe forward pass (:func:`unitscope.layout.probe_layers`, the one the captures use) records what each
module returns at its last call and which axis holds its units; shapes are shown as the dissection reads
them (:func:`unitscope.layout.read_units`: tokens become a grid, channels-last maps are permuted), so the
``units`` column is the number of units unitscope dissects, explains or ablates there. Modules that never
run in ``forward`` (e.g. ``nn.MultiheadAttention.out_proj``, called functionally) or return no tensor are
left out: they cannot be captured.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass

import torch
from torch import nn

from unitscope.layout import FAILED_RECORD, probe_layers


@dataclass(frozen=True)
class LayerRow:
    path: str
    kind: str
    shape: tuple[int, ...]  # without the batch dimension, after the spatial adapter (raw when undecided)
    field: int | None  # theoretical receptive field side in input pixels; None where undefined
    units: int | None = None  # along the unit axis; None where the output is no map, grid or vector
    layout: str = "channels_first"  # unitscope.layout.Layout; "unknown" is refused by every capture


def list_layers(module: nn.Module, input_size: tuple[int, int], device: str | torch.device = "cpu") -> list[LayerRow]:
    """Capturable layers of ``module`` in the order they first run, for one ``input_size`` image."""
    from unitscope.receptive.theory import theoretical_fields

    layers = probe_layers(module, torch.zeros(1, 3, *input_size, device=device))
    try:
        with redirect_stdout(io.StringIO()):  # the tracer reports layers it cannot follow; "-" says it here
            fields = {path: int(f.size) for path, f in theoretical_fields(module, input_size).items()}
    except Exception:
        fields = {}
    return [LayerRow(path, layer.kind, layer.read_shape, fields.get(path), layer.units, layer.layout)
            for path, layer in layers.items() if path and path != FAILED_RECORD]
