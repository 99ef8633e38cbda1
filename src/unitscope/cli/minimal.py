"""``unitscope minimal``: minimal image representations (Zhou et al. 2015 §2) of one image or a data set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from unitscope.cli.options import (
    AliasOption,
    check_output_dir,
    check_positive,
    class_names_option,
    model_options,
    open_model,
)
from unitscope.cli.prechecks import check_model_args
from unitscope.data import check_class_folder
from unitscope.defaults import FRESH_SEED, PICTURE_N
from unitscope.errors import UsageError


def _target_index(label: str, class_names: list[str] | None) -> int:
    """The model's index of ``--class``: a class name, or a number for models without class names."""
    if class_names:
        if label in class_names:
            return class_names.index(label)
        shown = ", ".join(class_names[:12]) + (" …" if len(class_names) > 12 else "")
        raise UsageError(f"the model has no class {label!r}; give --class as one of its classes ({shown})")
    if label.isdigit():
        return int(label)
    raise UsageError(f"the model has no class names, so --class must be a class number, not {label!r}; or give "
                     "--class-names FILE")


@click.command("minimal")
@model_options
@class_names_option
@click.option("--image", "image_path", type=click.Path(path_type=Path), default=None,
              help="One image to simplify (needs --class).")
@click.option("--class", "label", cls=AliasOption, old=("--label",), default=None,
              help="True class of --image (a class name of the model).")
@click.option("--data", default=None,
              help="sceneworld, sceneworld-objects, sceneworld-background, or a folder of class sub-folders.")
@click.option("--n", "--images", "n", type=int, default=PICTURE_N, show_default=True,
              help="SceneWorld images to simplify (a folder is used whole; --images under torchrun).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True, help="SceneWorld seed (fresh by default).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--segments", type=int, default=40, show_default=True,
              help="About how many SLIC superpixels per image (SLIC may make fewer).")
@click.option("--edges", is_flag=True, help="Also make long Canny edges removable segments.")
@click.option("--fill", type=click.Choice(["mean", "blur", "gradient"]), default="mean", show_default=True,
              help="What removed regions become.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Candidates per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, class_names: str | None,
            image_path: Path | None,
            label: str | None, data: str | None, n: int, seed: int, out: Path, segments: int, edges: bool,
            fill: str, batch_size: int, overwrite: bool) -> None:
    """Remove image regions greedily while --model still classifies the image correctly; write the minimal
    images under OUT/images/<class>/, removal sequences, strips and summary tables."""
    if (image_path is None) == (data is None):
        raise UsageError("give either --image PATH --class CLASS, or --data D (with --n and --seed)")
    if image_path is not None and label is None:
        raise UsageError("--image needs --class CLASS, the image's true class")
    check_positive(n=n, batch_size=batch_size)
    if segments < 2:
        raise UsageError(f"--segments is {segments}; it must be at least 2 so there is something to remove")
    check_model_args(model_spec, weights, num_classes)
    if image_path is not None and not image_path.is_file():
        raise UsageError(f"--image {image_path} does not exist; give the path of a PNG or JPEG file")
    if data is not None:
        check_class_folder(data)
    check_output_dir(out, overwrite)
    from unitscope.distributed import session
    from unitscope.minimal.run import MinimalSettings, run_minimal
    from unitscope.minimal.sources import ImageSource, SingleImage, open_source

    with session(device) as group:  # under torchrun each rank takes every world-th image
        model = open_model(model_spec, weights, num_classes, group.device, class_names)
        settings = MinimalSettings(n_segments=segments, edges=edges, fill=fill, batch_size=batch_size)
        if image_path is not None:
            from unitscope.data.image_folder import read_rgb

            source: ImageSource = SingleImage(
                read_rgb(image_path), _target_index(str(label), model.class_names), image_path.stem
            )
            identity: dict[str, object] = {"image": str(image_path), "label": label}
        else:
            size = model.preprocess.input_size[0] if model.preprocess.input_size else 112
            source = open_source(str(data), model.class_names, n=n, seed=seed, size=size)
            identity = {"seed": seed}
        start = time.perf_counter()
        summary: dict[str, Any] = run_minimal(model, source, out, settings, overwrite=overwrite, identity=identity,
                              strict=image_path is not None, progress=image_path is None,
                              group=group)
    seconds = time.perf_counter() - start
    if not group.is_main:
        return
    from unitscope.report.output_pages import minimal_page

    minimal_page(out)
    done = summary["processed"]
    skipped = ", ".join(f"{v} {k}" for k, v in summary["skipped"].items()) or "none"
    kept = f"mean pixels kept {summary['mean_pixel_fraction']:.1%}; " if done else ""
    click.echo(f"{done} minimal images in {out}/images (skipped: {skipped}); {kept}{seconds:.1f} s; "
               f"page: {out}/report.html")
