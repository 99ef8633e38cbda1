"""``unitscope see``: the scene, its objects and why, in one forward pass per batch, from a finished run."""

from __future__ import annotations

import os
from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive, require_run, run_model_options, run_trust
from unitscope.cli.prechecks import check_at_least, check_run_layers
from unitscope.data import check_probe_spec
from unitscope.defaults import FIT_N, FRESH_SEED, PICTURE_N
from unitscope.errors import UsageError


@click.command("see")
@run_model_options
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True,
              help="A finished dissection run of the network (unitscope dissect --out RUN).")
@click.option("--image", "images", multiple=True, help="An image file; repeat for several.")
@click.option("--data", default=None, help="sceneworld, sceneworld-objects, a Broden directory or an image folder.")
@click.option("--n", "n", type=int, default=None, help=f"Images to take from --data (default {PICTURE_N}).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True, help="SceneWorld seed (fresh by default).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--json", "as_json", is_flag=True, help="Also stream one JSON line per image to stdout.")
@click.option("--score", is_flag=True,
              help="Score against the labels (scene top-1, detection mAP@0.5, segmentation mean IoU, pointing "
                   "game), each beside the random-weights twin with paired bootstrap intervals.")
@click.option("--minimal", is_flag=True, help="Also each image's minimal image (many more forward passes).")
@click.option("--layer", "layers", multiple=True, help="Dissected layer(s) the concept vectors read (default: all).")
@click.option("--fit-n", type=int, default=FIT_N, show_default=True,
              help="Images of the run's probe set the concept vectors are fitted on.")
@click.option("--fit-data", default=None,
              help="Fit the concept vectors on this labelled probe set instead of the run's.")
@click.option("--cam-method", type=click.Choice(["auto", "cam", "gradcam"]), default="auto", show_default=True,
              help="auto: CAM when the network ends in global average pooling + linear (no backward), else Grad-CAM.")
@click.option("--baseline-seed", type=int, default=0, show_default=True, help="Seed of the random twin (--score).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def command(run_dir: Path, images: tuple[str, ...], data: str | None, n: int | None, seed: int, out: Path,
            as_json: bool, score: bool, minimal: bool, layers: tuple[str, ...], fit_n: int, fit_data: str | None,
            cam_method: str,
            baseline_seed: int, device: str, batch_size: int, overwrite: bool) -> None:
    """Name the scene, box its objects with the units behind each, and show why (CAM), per image."""
    check_positive(batch_size=batch_size, n=n)
    check_at_least("--fit-n", fit_n, 2)
    require_run(run_dir, "--run")
    if bool(images) == (data is not None):
        raise UsageError("give --image PATH (one or more) or --data D (with --n N), not both and not neither")
    if images and n is not None:
        raise UsageError("--n goes with --data, not with --image")
    for image in images:
        if not Path(image).is_file():
            raise UsageError(f"--image {image} does not exist; give the path of a PNG or JPEG file")
    if data is not None:
        check_probe_spec(data)
    if score and images:
        raise UsageError("--score needs labelled images: --data sceneworld or a Broden directory, not --image")
    if fit_data is not None:
        check_probe_spec(fit_data)
    check_run_layers(run_dir, layers)
    check_output_dir(out, overwrite)
    from unitscope.see.run import _source, run_see, score_lines
    from unitscope.see.system import SeeOptions, SeeSystem
    from unitscope.staging import staged

    options = SeeOptions(layers=layers or None, fit_n=fit_n, fit_data=fit_data, cam_method=cam_method,
                         batch_size=batch_size)
    system = SeeSystem.open(run_dir, device=device, trust=run_trust(), options=options)
    source = _source(list(images), data, n if n is not None else PICTURE_N, seed, system.image_size[0])
    stream = (lambda line: click.echo(line)) if as_json else None
    with staged(out) as stage:
        url = os.path.relpath(run_dir.resolve(), out.resolve())
        result = run_see(system, source, stage, score=score, baseline_seed=baseline_seed, minimal=minimal,
                         stream=stream, run_url=url, progress=not as_json)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    say(f"saw {len(result.sights)} image(s) in {system.passes} forward pass(es) "
        f"({system.cam.method} at {system.cam.layer}) → {out}/index.html")
    if minimal:
        say("--minimal: each minimal image cost its own forward passes (counted in its JSON)")
    if result.score is not None:
        for line in score_lines(result.score):
            say(line)
