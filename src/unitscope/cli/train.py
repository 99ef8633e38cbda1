"""``unitscope train``: train a SceneWorld network (how the built-in weights were made)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from unitscope.constraint_spec import parse_constraints
from unitscope.errors import UsageError
from unitscope.training_config import TrainConfig


@click.command("train")
@click.option("--task", type=click.Choice(["scene", "object"]), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Weights file to write (.pt).")
@click.option("--n-train", type=int, default=TrainConfig.n_train, show_default=True)
@click.option("--n-val", type=int, default=TrainConfig.n_val, show_default=True)
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--threads", type=int, default=TrainConfig.threads, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT file.")
@click.option("--constraint", "constraints", multiple=True, metavar="NAME[:WEIGHT][@LAYER]",
              help="Add a constraint (repeatable): whitening, filters, sparsity, or none (the control); "
                   "see docs/constraints.md.")
def command(task: str, out: Path, n_train: int, n_val: int, epochs: int, batch_size: int, lr: float,
            seed: int, threads: int, overwrite: bool, constraints: tuple[str, ...]) -> None:
    """Train the AlexNet-shaped SceneWorldNet on scenes or on objects."""
    specs = tuple(spec.text() for spec in parse_constraints(constraints))
    config = TrainConfig(task=task, n_train=n_train, n_val=n_val, epochs=epochs, batch_size=batch_size,
                         lr=lr, seed=seed, threads=threads, constraints=specs)
    config.validate()
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; choose another --out or pass --overwrite")
    parent = out.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {out}: {parent} is not a writable directory")
    from unitscope.training import train_sceneworld_net

    checkpoint = train_sceneworld_net(config)
    partial = out.with_name(out.name + ".partial")
    checkpoint.save(partial)
    os.replace(partial, out)
    click.echo(
        f"saved {out}: val top-1 {checkpoint.info['val_top1']:.3f} after {checkpoint.info['total_seconds']} s"
    )
