"""``unitscope world``: export a SceneWorld probe set in the Broden format."""

from __future__ import annotations

from pathlib import Path

import click

from unitscope.cli.options import check_output_dir, check_positive
from unitscope.errors import UsageError


def check_free_space(out: Path, n: int, size: int) -> None:
    """Refuse an export that cannot fit on the disk even if PNG shrinks its pixels tenfold."""
    import shutil

    raw = n * size * size * (3 + 3 * 4)  # the image and about four RGB label maps per image
    free = shutil.disk_usage(out.absolute().parent).free
    if raw / 10 > free:
        raise UsageError(f"{n} images of {size}×{size} need about {raw / 10 / 1e9:.3g} GB or more on disk, "
                         f"but {out.absolute().parent} has {free / 1e9:.3g} GB free; lower --n or --size")


@click.command("world")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["scenes", "objects"]), default="scenes", show_default=True)
@click.option("--n", "n", type=int, default=500, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=112, show_default=True, help="Image side in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT.")
def command(out: Path, kind: str, n: int, seed: int, size: int, overwrite: bool) -> None:
    """Render N SceneWorld images with exact labels into OUT, in the Broden directory format."""
    check_positive(n=n, size=size)
    check_output_dir(out, overwrite)
    check_free_space(out, n, size)
    from unitscope.data.broden_export import write_broden
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = SceneWorldProbe(n=n, seed=seed, size=size, kind=kind)
    write_broden(out, probe, overwrite=overwrite)
    click.echo(f"wrote {n} {kind} images with labels to {out} (Broden format)")
