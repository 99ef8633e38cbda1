"""``unitscope train``: train a SceneWorld network of one family (how the built-in weights were made)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from unitscope.constraint_spec import parse_constraints
from unitscope.errors import UsageError
from unitscope.training_config import ARCH_RECIPES, ARCHITECTURES, TrainConfig

_RECIPE = "default: the --arch recipe"


@click.command("train")
@click.option("--task", type=click.Choice(["scene", "object"]), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Weights file to write (.pt).")
@click.option("--arch", default="alexnet", show_default=True,
              help=f"Network family: {', '.join(ARCHITECTURES)} (alexnet is the shipped sceneworld-scene/-object's).")
@click.option("--n-train", type=int, default=None,
              help=f"Training images ({_RECIPE}; {TrainConfig.n_train} for alexnet).")
@click.option("--n-val", type=int, default=TrainConfig.n_val, show_default=True)
@click.option("--epochs", type=int, default=None, help=f"{_RECIPE} ({TrainConfig.epochs} for alexnet).")
@click.option("--batch-size", type=int, default=None, help=f"{_RECIPE} ({TrainConfig.batch_size} for alexnet).")
@click.option("--lr", type=float, default=None, help=f"Peak learning rate ({_RECIPE}; {TrainConfig.lr} for alexnet).")
@click.option("--weight-decay", type=float, default=None,
              help=f"AdamW weight decay ({_RECIPE}; {TrainConfig.weight_decay} for alexnet).")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--threads", type=int, default=TrainConfig.threads, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT file.")
@click.option("--constraint", "constraints", multiple=True, metavar="NAME[:WEIGHT][@LAYER]",
              help="Add a constraint (repeatable): whitening, filters, sparsity, or none (the control); "
                   "see docs/constraints.md.")
def command(task: str, out: Path, arch: str, n_train: int | None, n_val: int, epochs: int | None,
            batch_size: int | None, lr: float | None, weight_decay: float | None, seed: int, threads: int,
            overwrite: bool, constraints: tuple[str, ...]) -> None:
    """Train one network family (--arch) on SceneWorld scenes or objects; the recipe is saved in OUT."""
    if arch not in ARCH_RECIPES:
        raise UsageError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHITECTURES)}")
    specs = tuple(spec.text() for spec in parse_constraints(constraints))
    config = TrainConfig.for_arch(arch, task=task, n_train=n_train, n_val=n_val, epochs=epochs,
                                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                                  threads=threads, constraints=specs)
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
        f"saved {out}: {arch}, val top-1 {checkpoint.info['val_top1']:.3f} after {checkpoint.info['total_seconds']} s"
    )
