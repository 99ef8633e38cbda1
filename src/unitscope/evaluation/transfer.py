"""Transfer by a linear probe: how well one layer's features classify another task (the paper's Table).

Features: the layer's output for each image (captured with the forward pass stopped there), averaged
over space when it is a map ([B, C, h, w] → [B, C]); fully connected outputs are used as they are.
Classifier: ``StandardScaler`` + ``LinearSVC`` (scikit-learn; C = 1, ``random_state=0``), fitted on a
training split and scored (top-1 accuracy) on a test split.

Splits: for SceneWorld (``sceneworld``, ``sceneworld-objects``, ``sceneworld-background``) two
independent sets, the test set rendered with ``seed`` (``evaluate --seed``, default 12345) and the
training set with ``train_seed`` (default 2015): different seeds give different images. For a folder of
class sub-folders, one stratified half of the images (``train_test_split``, ``random_state=seed``) trains
and the other half tests. Each image's features depend on that image only, so batching does not matter.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from unitscope.batching import batch_ranges
from unitscope.capture import LayerCapture
from unitscope.errors import UsageError
from unitscope.models.layers import resolve_layer
from unitscope.models.loading import LoadedModel

DEFAULT_TRAIN_SEED = 2015
SVM_C = 1.0


@dataclass(frozen=True)
class LabelledImages:
    """Random access to images (``image(i)``) with integer targets into ``class_names``."""

    name: str
    image: Callable[[int], np.ndarray]
    targets: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class TransferResult:
    """Linear-probe accuracy on the test split, beside the majority-class and uniform chance levels."""

    model: str
    layer: str
    data: str
    accuracy: float
    majority: float
    chance: float
    n_train: int
    n_test: int
    train_seed: int
    test_seed: int
    features: int
    converged: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _sceneworld(spec: str, n: int, seed: int, size: int) -> LabelledImages:
    from unitscope.data import SCENEWORLD_SPECS
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = SceneWorldProbe(n=n, seed=seed, size=size, **SCENEWORLD_SPECS[spec])  # type: ignore[arg-type]
    targets = np.array([probe.class_index(i) for i in range(len(probe))], dtype=np.int64)
    return LabelledImages(f"{spec}(seed={seed})", lambda i: probe.render(i).image, targets, tuple(probe.class_names))


def open_transfer_splits(
    spec: str, n: int, seed: int, train_n: int, train_seed: int, size: int = 112
) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) splits of ``--data`` as described in the module docstring."""
    from unitscope.data import SCENEWORLD_SPECS, check_class_folder

    if n <= 0 or train_n <= 0:
        raise UsageError(f"--n and --train-n must be positive, got {n} and {train_n}")
    if spec in SCENEWORLD_SPECS:
        if seed == train_seed:
            raise UsageError(f"--seed and --train-seed are both {seed}; give different seeds so the splits differ")
        return _sceneworld(spec, train_n, train_seed, size), _sceneworld(spec, n, seed, size)
    check_class_folder(spec)
    path = Path(spec)
    from unitscope.data.image_folder import ImageClassFolder, read_rgb

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    folder = ImageClassFolder(path, classes)
    targets = np.array(folder.targets, dtype=np.int64)
    if len(classes) < 2 or len(targets) == 0 or np.bincount(targets).min() < 2:
        raise UsageError(f"{path} needs at least two class sub-folders with two images each to train and test")
    train, test = train_test_split(np.arange(len(targets)), test_size=0.5, stratify=targets, random_state=seed)

    def split(index: np.ndarray, what: str) -> LabelledImages:
        return LabelledImages(f"{path.name}({what})", lambda i: read_rgb(folder.paths[index[i]]),
                              targets[index], tuple(classes))

    return split(train, "train half"), split(test, "test half")


def pooled_features(model: LoadedModel, layer_path: str, data: LabelledImages, batch_size: int = 64) -> np.ndarray:
    """[N, C] features: the layer's output averaged over space (or as is when it has no spatial axes)."""
    chunks = []
    with LayerCapture(model.module, [layer_path], stop_after_last=True) as capture:
        for part in batch_ranges(len(data), batch_size):
            images = [data.image(i) for i in part]
            output = capture.run(model.preprocess.batch(images, model.device))[layer_path]
            pooled = output.float().mean(dim=(2, 3)) if output.dim() == 4 else output.float().flatten(1)
            chunks.append(pooled.cpu())
    return torch.cat(chunks).double().numpy()


def transfer_accuracy(
    model: LoadedModel, layer: str, data: str, n: int = 1000, seed: int = 12345, train_n: int | None = None,
    train_seed: int = DEFAULT_TRAIN_SEED, batch_size: int = 64, size: int = 112,
) -> TransferResult:
    """Fit the linear SVM on ``layer``'s features of the training split; top-1 accuracy on the test split."""
    path = resolve_layer(model.module, layer)
    train, test = open_transfer_splits(data, n, seed, train_n or n, train_seed, size)
    if len(np.unique(train.targets)) < 2:
        raise UsageError("the training split holds a single class; raise --train-n")
    x_train = pooled_features(model, path, train, batch_size)
    x_test = pooled_features(model, path, test, batch_size)
    classifier = make_pipeline(StandardScaler(), LinearSVC(C=SVM_C, random_state=0, max_iter=5000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(x_train, train.targets)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    accuracy = float((classifier.predict(x_test) == test.targets).mean())
    majority = float(np.bincount(test.targets).max() / len(test.targets))
    from unitscope.data import SCENEWORLD_SPECS

    split_seed = train_seed if data in SCENEWORLD_SPECS else seed  # a folder is split once, by --seed
    return TransferResult(model.name, layer, data, accuracy, majority, 1 / len(test.class_names), len(train),
                          len(test), split_seed, seed, int(x_train.shape[1]), converged)
