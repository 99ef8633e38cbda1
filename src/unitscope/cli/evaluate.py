"""``unitscope evaluate``: accuracy of a classifier (and, with --transfer, of a linear probe)."""

from __future__ import annotations

import json

import click

from unitscope.cli.options import check_positive, class_names_option, model_options, open_model
from unitscope.cli.prechecks import check_model_args
from unitscope.data import check_class_folder
from unitscope.defaults import FRESH_SEED, PROBE_N


@click.command("evaluate")
@model_options
@class_names_option
@click.option("--data", default="sceneworld", show_default=True,
              help="sceneworld, sceneworld-objects, sceneworld-background, or a folder of class sub-folders.")
@click.option("--n", "n", type=int, default=PROBE_N, show_default=True, help="Images to generate (SceneWorld).")
@click.option("--seed", type=int, default=FRESH_SEED, show_default=True, help="SceneWorld seed (fresh by default).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with top1 and top5.")
@click.option("--transfer", "transfer_layer", default=None,
              help="Instead: accuracy of a linear SVM on this layer's pooled features (e.g. conv5, fc7).")
@click.option("--train-n", type=int, default=None, help="With --transfer: training images (default: --n).")
@click.option("--train-seed", type=int, default=2015, show_default=True,
              help="With --transfer: SceneWorld seed of the training split (--seed is the test split's).")
def command(model_spec: str, weights: str | None, num_classes: int | None, device: str, class_names: str | None,
            data: str, n: int, seed: int, batch_size: int, as_json: bool, transfer_layer: str | None,
            train_n: int | None, train_seed: int) -> None:
    """Top-1 and top-5 accuracy of --model on --data (or, with --transfer, of a linear probe)."""
    check_positive(n=n, batch_size=batch_size, train_n=train_n)
    check_model_args(model_spec, weights, num_classes, [transfer_layer])
    check_class_folder(data)
    if transfer_layer is not None:
        _transfer(model_spec, weights, num_classes, device, data, n, seed, batch_size, as_json, transfer_layer,
                  train_n, train_seed)
        return
    from unitscope.data.classification import open_classification
    from unitscope.evaluation import evaluate_accuracy

    model = open_model(model_spec, weights, num_classes, device, class_names)
    size = model.preprocess.input_size[0] if model.preprocess.input_size else 112
    dataset = open_classification(data, model.class_names, n=n, seed=seed, size=size, command="evaluate")
    accuracy = evaluate_accuracy(model, dataset, batch_size=batch_size, progress=not as_json)
    if as_json:
        click.echo(json.dumps({"model": model.name, "data": dataset.name, **accuracy.to_dict()}))
        return
    click.echo(f"{'model':<22}{'data':<26}{'n':>7}{'top-1':>8}{'top-5':>8}")
    click.echo(f"{model.name:<22}{dataset.name:<26}{accuracy.n:>7}{accuracy.top1:>8.3f}{accuracy.top5:>8.3f}")


def _transfer(model_spec: str, weights: str | None, num_classes: int | None, device: str, data: str, n: int,
              seed: int, batch_size: int, as_json: bool, layer: str, train_n: int | None, train_seed: int) -> None:
    """``--transfer LAYER``: train a linear SVM on one split, report its accuracy on another."""
    from unitscope.evaluation.transfer import transfer_accuracy

    model = open_model(model_spec, weights, num_classes, device)
    size = model.preprocess.input_size[0] if model.preprocess.input_size else 112
    result = transfer_accuracy(model, layer, data, n, seed, train_n, train_seed, batch_size, size)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"{'model':<22}{'layer':<10}{'data':<22}{'train':>7}{'test':>7}{'svm top-1':>11}{'majority':>10}")
    click.echo(f"{result.model:<22}{result.layer:<10}{result.data:<22}{result.n_train:>7}{result.n_test:>7}"
               f"{result.accuracy:>11.3f}{result.majority:>10.3f}")
