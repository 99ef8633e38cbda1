"""``unitscope layers``: every layer of a model that --layer can name, with output shape, units and field."""

from __future__ import annotations

import click

from unitscope.cli.options import check_positive, model_options, open_model
from unitscope.cli.prechecks import check_model_args


@click.command("layers")
@model_options
@click.option("--input-size", type=int, default=None, help="Input side (default: the model's, else 224).")
@click.option("--maps-only", is_flag=True, help="Only layers with a [units, h, w] output (what dissect takes).")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, input_size: int | None,
            maps_only: bool) -> None:
    """Print every capturable layer: module path, type, output shape as dissected, units, theoretical field."""
    check_positive(input_size=input_size)
    check_model_args(model_spec, weights, num_classes)
    from unitscope.receptive.listing import list_layers

    model = open_model(model_spec, weights, num_classes, device)
    if input_size:
        model.preprocess = model.preprocess.with_overrides(input_size)  # a ViT refuses another size, in one line
    side = input_size or (model.preprocess.input_size[0] if model.preprocess.input_size else 224)
    rows = list_layers(model.module, (side, side), model.device)
    click.echo(f"{'layer':<44}{'type':<24}{'output (units, h, w)':<24}{'units':>7}{'field':>7}")
    for row in rows:
        if maps_only and len(row.shape) != 3:
            continue
        shape = "×".join(str(d) for d in row.shape)
        units = "?" if row.layout == "unknown" else "-" if row.units is None else str(row.units)
        field = "-" if row.field is None else str(row.field)
        click.echo(f"{row.path:<44}{row.kind:<24}{shape:<24}{units:>7}{field:>7}")
    undecided = "; units '?': unit axis undecided, refused (pick a neighbour)" \
        if any(row.layout == "unknown" for row in rows) else ""
    click.echo(f"{len(rows)} layers at {side}×{side} px input; field '-': not defined (attention, reshapes)"
               f"{undecided}")
