"""What a network *is*, as a short string: a digest of its state and the qualified name of its class.

A run is known by its content (DESIGN.md, "Runs, nulls"): two networks given under one name, or one
checkpoint changed on disk since a run, must never be taken for each other. The digest reads every
parameter and buffer once (names, dtypes, shapes and bytes, in name order), so it costs one pass over
the weights' memory: about 0.1 s for ResNet-50's 100 MB (``bench/digest.py``).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

DIGEST_CHARS = 16  # hex characters kept (64 bits): enough to tell checkpoints apart, short enough to read


def state_digest(module: nn.Module) -> str:
    """blake2b of the module's parameters and buffers (names, dtypes, shapes, bytes), in name order."""
    digest = hashlib.blake2b(digest_size=DIGEST_CHARS // 2)
    for name, tensor in sorted(module.state_dict(keep_vars=False).items()):
        data = tensor.detach()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
        if data.numel():
            flat = data.to("cpu").contiguous().reshape(-1)
            digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def module_class(module: nn.Module) -> str:
    """The qualified name of the module's class (``torchvision.models.resnet.ResNet``)."""
    kind = type(module)
    return f"{kind.__module__}.{kind.__qualname__}"
