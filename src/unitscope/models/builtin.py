"""The networks shipped inside the package, trained on SceneWorld by ``unitscope train``, and their file format.

Format ``unitscope-sceneworld-net/2`` names the architecture (``arch``) and stores its configuration;
``/1`` files (written before ``--arch`` existed, the shipped AlexNet pair among them) are AlexNet-shaped
SceneWorldNets and still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.architectures import NetConfig, build_network, config_from_dict
from unitscope.models.catalog import BUILTIN_NAMES
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.whitening import BUFFER_PREFIX as WHITENING_BUFFERS

BUILTIN_MODELS: dict[str, str] = {name: f"{name}.pt" for name in BUILTIN_NAMES}  # name → file in weights/
FORMAT_V1 = "unitscope-sceneworld-net/1"  # AlexNet-shaped SceneWorldNet only, no "arch" key
FORMAT = "unitscope-sceneworld-net/2"


@dataclass(frozen=True)
class SceneWorldCheckpoint:
    """What ``unitscope train`` saves: weights plus everything needed to use them."""

    config: NetConfig
    state_dict: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    task: str
    preprocess: Preprocessing
    info: dict[str, object]
    arch: str = "alexnet"

    def save(self, path: str | Path) -> None:
        """Write the checkpoint; floating tensors are stored as float16 to keep shipped files small.

        The accuracies we report are measured after this rounding (loading converts back to float32).
        """
        torch.save(
            {
                "format": FORMAT,
                "arch": self.arch,
                "config": self.config.to_dict(),
                "state_dict": {k: v.half() if _halved(k, v) else v for k, v in self.state_dict.items()},
                "class_names": list(self.class_names),
                "task": self.task,
                "input_size": list(self.preprocess.input_size or ()),
                "mean": list(self.preprocess.mean),
                "std": list(self.preprocess.std),
                "info": self.info,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> SceneWorldCheckpoint:
        data = torch.load(path, map_location="cpu", weights_only=True)
        version = data.get("format") if isinstance(data, dict) else None
        if not isinstance(version, str) or not version.startswith("unitscope-sceneworld-net/"):
            raise UsageError(f"{path} is not a SceneWorld network saved by `unitscope train`")
        if version not in (FORMAT_V1, FORMAT):
            raise UsageError(f"{path} was saved in format {version}, newer than this unitscope reads ({FORMAT}); "
                             "upgrade unitscope")
        arch = str(data.get("arch", "alexnet")) if version == FORMAT else "alexnet"
        size = data["input_size"]
        return cls(
            arch=arch,
            config=config_from_dict(arch, data["config"]),
            state_dict={k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()},
            class_names=tuple(data["class_names"]),
            task=str(data["task"]),
            preprocess=Preprocessing(
                input_size=(int(size[0]), int(size[1])) if size else None,
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
            ),
            info=dict(data["info"]),
        )

    def build(self) -> nn.Module:
        net = build_network(self.config)
        net.load_state_dict(self.state_dict)
        return net.eval()


def _halved(key: str, value: torch.Tensor) -> bool:
    """Floating tensors are stored as float16, except concept whitening's statistics and rotation, whose
    eigendecomposition and orthogonality float16 would spoil."""
    return value.is_floating_point() and not key.rpartition(".")[2].startswith(WHITENING_BUFFERS)


def builtin_weights_path(name: str) -> Path:
    """Where the shipped weights of a built-in model live inside the installed package."""
    path = Path(str(resources.files("unitscope.models") / "weights" / BUILTIN_MODELS[name]))
    if not path.is_file():
        raise UsageError(
            f"the built-in weights for {name} are missing ({path}); "
            f"recreate them with `unitscope train {_train_arguments(name)} --out {path}`"
        )
    return path


def _train_arguments(name: str) -> str:
    """``--task scene`` for sceneworld-scene, ``--arch resnet --task object`` for sceneworld-object-resnet."""
    parts = name.split("-")
    arch = f"--arch {parts[2]} " if len(parts) > 2 else ""
    return f"{arch}--task {parts[1]}"


def read_sceneworld_checkpoint(path: Path) -> SceneWorldCheckpoint | None:
    """The checkpoint if ``path`` was written by ``unitscope train`` (it carries its own architecture), else None."""
    try:
        return SceneWorldCheckpoint.load(path)
    except Exception:  # not ours (UsageError), not a torch file, or not tensor-only: certainly not ours
        return None
