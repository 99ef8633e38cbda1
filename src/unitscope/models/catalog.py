"""What model and layer names exist, known without importing torch, so a typo fails in a blink.

``TORCHVISION_MODELS`` is torchvision's list of classification models (``list_models(module=torchvision.models)``)
for the pinned ``TORCHVISION_VERSION``; ``layer_names.json.gz`` beside this file holds every module path and
paper name (``models.layers.resolve_layer``'s two lists) of each of them and of the built-in SceneWorld nets,
built with ``weights=None`` on the meta device (names depend on neither weights nor ``--num-classes``) by
``models/layer_table.py``. A name is
refused here only when certainly wrong; with another torchvision installed the lists are not used at all and
loading the model decides, as before. ``tests/test_fast_errors.py`` keeps both lists equal to torchvision's.
"""

from __future__ import annotations

import gzip
import json
import sys
from dataclasses import dataclass
from difflib import get_close_matches
from importlib import resources
from pathlib import Path

from unitscope.errors import UsageError

TORCHVISION_VERSION = "0.29.1"
TORCHVISION_MODELS: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)
# `train --arch` families shipped beside the AlexNet pair
SHIPPED_ARCHITECTURES: tuple[str, ...] = ("resnet", "vgg", "convnext", "vit")
BUILTIN_NAMES: tuple[str, ...] = (  # builtin.BUILTIN_MODELS' keys: the AlexNet pair, then sceneworld-<task>-<arch>
    "sceneworld-scene", "sceneworld-object",
    *(f"sceneworld-{task}-{arch}" for arch in SHIPPED_ARCHITECTURES for task in ("scene", "object")),
)
LAYER_TABLE = "layer_names.json.gz"
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".tar")


@dataclass(frozen=True)
class LayerNames:
    """The names ``--layer`` may take for one architecture: module paths and paper names (→ module path)."""

    paths: tuple[str, ...]
    aliases: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {"paths": list(self.paths), "aliases": self.aliases}


def installed_torchvision() -> str | None:
    """torchvision's version from the name of its ``.dist-info`` folder on ``sys.path`` (neither torchvision
    nor ``importlib.metadata`` is imported: together they cost more than the check), or None."""
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        for info in folder.glob("torchvision-*.dist-info"):
            return info.name[len("torchvision-"):-len(".dist-info")]
    return None


def is_model_file(spec: str) -> bool:
    """Whether ``spec`` names Python code (``path/file.py:callable``)."""
    return ":" in spec and spec.split(":", 1)[0].endswith(".py")


def is_checkpoint_path(weights: str) -> bool:
    """Whether ``--weights`` names a file rather than torchvision weights (``IMAGENET1K_V1``)."""
    return Path(weights).exists() or weights.endswith(CHECKPOINT_SUFFIXES) or "/" in weights


def unknown_model(spec: str, available: list[str] | tuple[str, ...]) -> UsageError:
    """The one message for a model name that is neither torchvision's, built in, nor a file."""
    close = get_close_matches(spec, [*available, *BUILTIN_NAMES], n=4)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UsageError(f"unknown model {spec!r}{hint}; give a torchvision name, sceneworld-scene, sceneworld-object "
                      "or path/file.py:callable")


def missing_checkpoint(path: Path) -> UsageError:
    """The one message for a --weights file that is not there."""
    return UsageError(f"checkpoint {path} does not exist; pass an existing file to --weights")


def missing_model_file(path: Path) -> UsageError:
    """The one message for a ``file.py:callable`` whose file is not there."""
    return UsageError(f"model file {path} does not exist; give --model path/file.py:callable")


def check_model_files(spec: str, weights: str | None) -> None:
    """Refuse a model file or --weights checkpoint that is not there (what ``load_model`` would read)."""
    if is_model_file(spec) and not Path(spec.rsplit(":", 1)[0]).is_file():
        raise missing_model_file(Path(spec.rsplit(":", 1)[0]))
    if not weights or (spec.endswith(".pt") and Path(spec).is_file()):
        return  # a network saved by `unitscope train` carries its weights (--weights is not read)
    reads_file = spec in BUILTIN_NAMES or is_model_file(spec) or is_checkpoint_path(weights)
    if reads_file and not Path(weights).is_file():
        raise missing_checkpoint(Path(weights))


def unknown_layer(name: str, names: LayerNames) -> UsageError:
    """The one message for a layer the model lacks, with the closest names (each once: a paper name that is
    also a module path, SceneWorldNet's conv1, is one candidate)."""
    candidates = list(dict.fromkeys([*names.paths, *names.aliases]))
    close = get_close_matches(name, candidates, n=5, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"layers include: {', '.join(names.paths[:8])}"
    return UsageError(f"unknown layer {name!r}; {hint}")


def check_model_name(spec: str) -> None:
    """Refuse a model name no loader would take, without torch: not built in, not a file, not torchvision's."""
    if spec in BUILTIN_NAMES or is_model_file(spec) or spec in TORCHVISION_MODELS:
        return
    if spec.endswith(".pt") and Path(spec).is_file():
        return  # maybe a network saved by `unitscope train`: only reading it tells
    if installed_torchvision() == TORCHVISION_VERSION:
        raise unknown_model(spec, TORCHVISION_MODELS)


def known_layers(spec: str) -> LayerNames | None:
    """The layer names of a built-in or torchvision architecture from the shipped table (None: not known here)."""
    if spec not in BUILTIN_NAMES and (spec not in TORCHVISION_MODELS or installed_torchvision() != TORCHVISION_VERSION):
        return None
    with resources.files("unitscope.models").joinpath(LAYER_TABLE).open("rb") as handle:
        table = json.loads(gzip.decompress(handle.read()))
    entry = table["models"].get(spec)
    return None if entry is None else LayerNames(tuple(entry["paths"]), dict(entry["aliases"]))


def check_layer_names(spec: str, layers: tuple[str, ...] | list[str]) -> None:
    """Refuse a layer the architecture certainly lacks (from the shipped table, so before torch loads)."""
    wanted = [name for name in layers if name]
    names = known_layers(spec) if wanted else None
    if names is None:
        return
    for name in wanted:
        if name not in names.paths and name not in names.aliases:
            raise unknown_layer(name, names)
