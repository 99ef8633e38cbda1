"""The two networks shipped inside the package, trained on SceneWorld by ``unitscope train``."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from unitscope.errors import UsageError
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNet, SceneWorldNetConfig
from unitscope.models.whitening import BUFFER_PREFIX as WHITENING_BUFFERS

BUILTIN_MODELS: dict[str, str] = {
    "sceneworld-scene": "sceneworld-scene.pt",
    "sceneworld-object": "sceneworld-object.pt",
}


@dataclass(frozen=True)
class SceneWorldCheckpoint:
    """What ``unitscope train`` saves: weights plus everything needed to use them."""

    config: SceneWorldNetConfig
    state_dict: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    task: str
    preprocess: Preprocessing
    info: dict[str, object]

    def save(self, path: str | Path) -> None:
        """Write the checkpoint; floating tensors are stored as float16 to keep shipped files small.

        The accuracies we report are measured after this rounding (loading converts back to float32).
        """
        torch.save(
            {
                "format": "unitscope-sceneworld-net/1",
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
        if not isinstance(data, dict) or data.get("format") != "unitscope-sceneworld-net/1":
            raise UsageError(f"{path} is not a SceneWorld network saved by `unitscope train`")
        size = data["input_size"]
        return cls(
            config=SceneWorldNetConfig.from_dict(data["config"]),
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

    def build(self) -> SceneWorldNet:
        net = SceneWorldNet(self.config)
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
            f"recreate them with `unitscope train --task {name.split('-')[1]} --out {path}`"
        )
    return path


def read_sceneworld_checkpoint(path: Path) -> SceneWorldCheckpoint | None:
    """The checkpoint if ``path`` was written by ``unitscope train`` (it carries its own architecture), else None."""
    try:
        return SceneWorldCheckpoint.load(path)
    except Exception:  # not ours (UsageError), not a torch file, or not tensor-only: certainly not ours
        return None
