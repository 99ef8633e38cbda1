"""Resolve a model spec (torchvision name, built-in, ``file.py:callable``) and its weights."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from unitscope.errors import UsageError
from unitscope.models.builtin import (
    BUILTIN_MODELS,
    SceneWorldCheckpoint,
    builtin_weights_path,
    read_sceneworld_checkpoint,
)
from unitscope.models.catalog import is_checkpoint_path, is_model_file, missing_model_file, unknown_model
from unitscope.models.checkpoint import first_line, load_into, read_checkpoint
from unitscope.models.precision import autocast
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.torchvision_import import import_torchvision


@dataclass
class LoadedModel:
    """A network ready for analysis: eval mode, on its device, with its preprocessing and class names."""

    module: nn.Module
    name: str
    preprocess: Preprocessing
    class_names: list[str] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: str = "off"  # forward passes autocast to "bf16"/"fp16" (models/precision.py)

    def autocast(self) -> AbstractContextManager[object]:
        """The precision context of this model's forward passes (nothing unless ``amp`` is set)."""
        return autocast(self.amp, self.device)


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; a device this machine lacks is a usage error, not a crash."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} asked for CUDA but no GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s); "
                             "use cuda:0 … or --device cpu")
    elif dev.type != "cpu":
        raise UsageError(f"--device {device} is not supported (analysis needs real tensors); "
                         "use cpu, cuda, cuda:N or auto")
    return dev


def load_model(
    spec: str,
    weights: str | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    trust_checkpoint: bool = False,
) -> LoadedModel:
    """Build the network named by ``spec`` and load ``weights`` into it.

    ``weights`` files are read tensor-only unless ``trust_checkpoint`` (full unpickling can run code).
    A ``file.py:callable`` spec imports and runs that file: it is code by nature.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if spec in BUILTIN_MODELS:
        loaded = _load_sceneworld(builtin_weights_path(spec), spec)
        if weights:
            load_into(loaded.module, read_checkpoint(weights, trust_checkpoint), weights)
    elif spec.endswith(".pt") and Path(spec).is_file() and (own := read_sceneworld_checkpoint(Path(spec))):
        loaded = _from_checkpoint(own, Path(spec).stem)
    elif is_model_file(spec):
        loaded = _load_callable(spec, weights, num_classes, trust_checkpoint)
    else:
        loaded = _load_torchvision(spec, weights, num_classes, trust_checkpoint)
    loaded.module.to(dev).eval()
    loaded.device = dev
    loaded.preprocess = loaded.preprocess.fixed_to(loaded.module)  # a ViT takes one input size only
    return loaded


def _load_sceneworld(path: Path, name: str) -> LoadedModel:
    return _from_checkpoint(SceneWorldCheckpoint.load(path), name)


def _from_checkpoint(ckpt: SceneWorldCheckpoint, name: str) -> LoadedModel:
    return LoadedModel(ckpt.build(), name, ckpt.preprocess, list(ckpt.class_names))


def _load_callable(spec: str, weights: str | None, num_classes: int | None, trust: bool) -> LoadedModel:
    file_part, func_name = spec.rsplit(":", 1)
    path = Path(file_part)
    if not path.is_file():
        raise missing_model_file(path)
    module_spec = importlib.util.spec_from_file_location(f"unitscope_user_model_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"cannot import {path} as Python; give --model path/file.py:callable")
    user_module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(user_module)
    except SyntaxError as err:
        raise UsageError(f"{path} has a syntax error on line {err.lineno}: {err.msg}; fix the model file") from None
    except ImportError as err:
        raise UsageError(f"{path} failed to import {err.name or 'a module'} ({first_line(err)}); "
                         "install it or fix the model file") from None
    except Exception as err:  # the user's code raised while being imported
        raise UsageError(f"{path} raised {type(err).__name__} when imported ({first_line(err)}); "
                         "fix the model file") from None
    factory = getattr(user_module, func_name, None)
    if not callable(factory):
        raise UsageError(f"{path} has no callable {func_name!r}; give --model path/file.py:callable")
    kwargs = {}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    if num_classes is not None and "num_classes" in parameters:
        kwargs["num_classes"] = num_classes
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as err:
        raise UsageError(f"{spec} cannot be called without arguments ({err}); give a callable that builds "
                         "the network with no required arguments") from None
    except ValueError:
        pass  # a builtin without a signature: just call it
    try:
        net = factory(**kwargs)
    except Exception as err:  # the user's factory raised
        raise UsageError(f"{spec} raised {type(err).__name__} ({first_line(err)}); fix the model file") from None
    if not isinstance(net, nn.Module):
        raise UsageError(f"{spec} returned {type(net).__name__}, not a torch.nn.Module")
    if weights:
        load_into(net, read_checkpoint(weights, trust), weights)
    class_names = getattr(net, "class_names", None)
    return LoadedModel(net, path.stem, Preprocessing(), list(class_names) if class_names else None)


def _load_torchvision(spec: str, weights: str | None, num_classes: int | None, trust: bool) -> LoadedModel:
    torchvision = import_torchvision()  # without torch._dynamo (models/torchvision_import.py)

    available = torchvision.models.list_models(module=torchvision.models)
    if spec not in available:
        raise unknown_model(spec, available)
    if weights and not is_checkpoint_path(weights):
        return _load_torchvision_named_weights(spec, weights)
    kwargs = {"num_classes": num_classes} if num_classes else {}
    if not weights:
        return LoadedModel(torchvision.models.get_model(spec, weights=None, **kwargs), spec, Preprocessing())
    state = read_checkpoint(weights, trust, mmap=not trust)
    net = built_holding(lambda: torchvision.models.get_model(spec, weights=None, **kwargs), state, weights)
    return LoadedModel(net, spec, Preprocessing())


def built_holding(build: Callable[[], nn.Module], state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """``build()``'s network holding the checkpoint ``state``.

    Built without its random initial weights (``torch.nn.init`` idle while it is built) and handed the checkpoint's
    own tensors: torchvision draws initial weights that the checkpoint overwrites at once (AlexNet's 61 M: ~0.35 s
    of CPU), and copying a mapped checkpoint in would read all of it. Where the checkpoint does not give every
    tensor at the network's shape and dtype, contiguous, the network is built and loaded the usual way (with the
    usual errors). The meta device is not used: building under it imports torch._dynamo (1.5 s). Same values
    either way.
    """
    with _initialisers_idle():
        net = build()
    own = net.state_dict()
    if own.keys() == state.keys() and all(own[k].shape == state[k].shape and own[k].dtype == state[k].dtype
                                          and state[k].is_contiguous() for k in own):
        net.load_state_dict(state, strict=True, assign=True)  # every parameter and persistent buffer replaced
        return net
    net = build()
    load_into(net, state, source)
    return net


@contextmanager
def _initialisers_idle() -> Iterator[None]:
    """``torch.nn.init``'s in-place initialisers return their tensor untouched inside the block (this thread's
    model building only: the CLI builds one network at a time)."""
    names = [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(nn.init, name) for name in names}

    def idle(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return tensor

    for name in names:
        setattr(nn.init, name, idle)
    try:
        yield
    finally:
        for name, func in saved.items():
            setattr(nn.init, name, func)


def _load_torchvision_named_weights(spec: str, weights: str) -> LoadedModel:
    """torchvision weights by name (``IMAGENET1K_V1`` or ``AlexNet_Weights.IMAGENET1K_V1``): downloads."""
    torchvision = import_torchvision()
    enum = torchvision.models.get_model_weights(spec)
    member = weights.split(".")[-1]
    if member == "DEFAULT" or member in enum.__members__:
        chosen = enum[member]
    else:
        raise UsageError(
            f"unknown weights {weights!r} for {spec}; choose one of {', '.join(enum.__members__)} or a file path"
        )
    try:
        net = torchvision.models.get_model(spec, weights=chosen)
    except (OSError, RuntimeError) as err:
        raise UsageError(
            f"could not download torchvision weights {chosen} ({err.__class__.__name__}); without internet, "
            f"download {chosen.url} elsewhere and pass the file with --weights PATH"
        ) from err
    transforms = chosen.transforms()
    crop = getattr(transforms, "crop_size", None)
    size = (int(crop[0]), int(crop[0])) if crop else None
    preprocess = Preprocessing(size, tuple(transforms.mean), tuple(transforms.std))
    categories = chosen.meta.get("categories")
    return LoadedModel(net, spec, preprocess, list(categories) if categories else None)
