"""``unitscope world``: export a SceneWorld probe set in the Broden format."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive
from unitscope.defaults import PROBE_N, PROBE_SEED, WORLD_SIZE
from unitscope.errors import UsageError


def check_free_space(out: Path, n: int, size: int) -> None:
    """Refuse an export that cannot fit on the disk even if PNG shrinks its pixels tenfold."""
    import shutil

    raw = n * size * size * (3 + 3 * 4)  # the image and about four RGB label maps per image
    free = shutil.disk_usage(out.absolute().parent).free
    if raw / 10 > free:
        raise UsageError(f"{n} images of {size}×{size} need about {raw / 10 / 1e9:.3g} GB or more on disk, "
                         f"but {out.absolute().parent} has {free / 1e9:.3g} GB free; lower --n or --size")


KINDS: dict[str, str] = {"scenes": "sceneworld", "objects": "sceneworld-objects"}  # old --kind values


@click.command("world")
@click.argument("out_arg", metavar="", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory to write (Broden format).")
@click.option("--data", type=click.Choice(list(KINDS.values())), default=None,
              help="Which SceneWorld: scenes (sceneworld, the default) or object-centric images.")
@click.option("--kind", type=click.Choice(list(KINDS)), default=None, hidden=True)  # old spelling of --data
@click.option("--n", "n", type=int, default=PROBE_N, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=PROBE_SEED, show_default=True)
@click.option("--size", type=int, default=WORLD_SIZE, show_default=True,
              help="Image side in pixels (224 suits ImageNet-style networks; the SceneWorld nets resize to their "
                   "own 112 px input).")
@click.option("--previews", type=int, default=0, show_default=True,
              help="Also write a colour preview of the first N images' label PNGs under OUT/preview/ (for looking "
                   "at the labels; 0: none).")
@click.option("--recolor", is_flag=True,
              help="The colour control: the same scenes with every object, region and part painted from one palette "
                   "shared by all classes (colour labels follow the paint; every other label is unchanged).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT.")
def command(out_arg: Path | None, out: Path | None, data: str | None, kind: str | None, n: int, seed: int,
            size: int, previews: int, recolor: bool, overwrite: bool) -> None:
    """Render N SceneWorld images with exact labels into --out, in the Broden directory format.

    \f
    (``world OUT`` with OUT positional and ``--kind scenes|objects`` still work, aliases kept for one release.)
    """
    target = out if out is not None else out_arg
    if target is None or (out is not None and out_arg is not None):
        raise UsageError("give the output directory once, as --out DIR")
    if kind is not None:
        if data is not None and data != KINDS[kind]:
            raise UsageError(f"--kind {kind} (the old spelling of --data) contradicts --data {data}; give --data only")
        click.echo(f"unitscope: note: --kind {kind} is now --data {KINDS[kind]}; the old spelling goes in the "
                   "next release", err=True)
        data = KINDS[kind]
    data = data or "sceneworld"
    check_positive(n=n, size=size)
    if previews < 0:
        raise UsageError(f"--previews must be 0 or more, got {previews}")
    check_output_dir(target, overwrite)
    check_free_space(target, n, size)
    from unitscope.data.broden_export import write_broden
    from unitscope.data.sceneworld import SceneWorldProbe

    world_kind = "objects" if data == "sceneworld-objects" else "scenes"
    probe = SceneWorldProbe(n=n, seed=seed, size=size, kind=world_kind, recolor=recolor)
    write_broden(target, probe, overwrite=overwrite, previews=previews)
    what = f"recoloured {world_kind}" if recolor else world_kind
    shown = (f"; colour previews of {min(previews, n)} images' labels in {target / 'preview'}" if previews
             else "")
    click.echo(f"wrote {n} {what} images of {size}×{size} px with labels to {target} (Broden format{shown})")
