"""Regenerate ``layer_names.json.gz``, the shipped layer names of ``models/catalog.py`` (after a torchvision
upgrade: ``python -m unitscope.models.layer_table``, then update ``catalog.TORCHVISION_VERSION`` and its list)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
import torchvision
from torch import nn

from unitscope.models.catalog import BUILTIN_NAMES, LAYER_TABLE, LayerNames
from unitscope.models.layers import paper_names
from unitscope.models.loading import load_model


def layer_names_of(module: nn.Module) -> LayerNames:
    """What ``resolve_layer`` accepts for ``module``: its module paths and its paper names."""
    return LayerNames(tuple(p for p, _ in module.named_modules() if p), paper_names(module))


def architecture(spec: str) -> nn.Module:
    """torchvision's ``spec`` without weights, on the meta device (nothing allocated); RegNet computes its
    widths with tensors, which the meta device cannot, so it is built on the CPU."""
    try:
        with torch.device("meta"):
            net: nn.Module = torchvision.models.get_model(spec, weights=None)
    except NotImplementedError:
        net = torchvision.models.get_model(spec, weights=None)
    return net


def build_layer_table() -> dict[str, object]:
    """The table: every torchvision classification model and the built-in nets, by name."""
    models = {spec: layer_names_of(architecture(spec)).to_json()
              for spec in torchvision.models.list_models(module=torchvision.models)}
    for spec in BUILTIN_NAMES:
        models[spec] = layer_names_of(load_model(spec).module).to_json()
    return {"torchvision": torchvision.__version__.split("+")[0], "models": models}


def write_layer_table(path: Path) -> None:
    """Write the table gzipped (mtime 0: the same bytes for the same names)."""
    text = json.dumps(build_layer_table(), sort_keys=True, separators=(",", ":"))
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


if __name__ == "__main__":
    write_layer_table(Path(__file__).with_name(LAYER_TABLE))
