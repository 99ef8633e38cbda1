"""torchvision, imported without ``torch._dynamo``: about 1.5 s of every command that builds a network.

``import torchvision`` imports every model and op; one of them, ``torchvision.ops.roi_align``, imports
``torch._dynamo.utils`` (and with it sympy, triton and inductor: 1.5 s of the 3 s torch + torchvision take on a
quiet 2-core machine) for one function it calls only when RoIAlign runs without torchvision's compiled ops. While
torchvision is imported, :func:`import_torchvision` stands in for ``torch._dynamo.utils`` with that one function,
which imports the real module when first called; the stand-in is removed at once, so anything later that imports
``torch._dynamo`` (``torch.compile``, a user's model file) gets the real one.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

DYNAMO = "torch._dynamo"
DYNAMO_UTILS = "torch._dynamo.utils"


def _is_compile_supported(device_type: Any) -> Any:
    """torchvision.ops.roi_align's one use of torch._dynamo, resolved when first called."""
    from torch._dynamo.utils import is_compile_supported

    return is_compile_supported(device_type)


def import_torchvision() -> types.ModuleType:
    """The torchvision package, imported (once) without importing torch._dynamo."""
    if "torchvision" in sys.modules or DYNAMO in sys.modules:
        return importlib.import_module("torchvision")
    package, utils = types.ModuleType(DYNAMO), types.ModuleType(DYNAMO_UTILS)
    package.__path__ = []  # a package, so that ``torch._dynamo.utils`` resolves under it
    utils.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    package.utils = utils  # type: ignore[attr-defined]
    sys.modules[DYNAMO], sys.modules[DYNAMO_UTILS] = package, utils
    try:
        torchvision = importlib.import_module("torchvision")
    finally:
        for name, stand_in in ((DYNAMO_UTILS, utils), (DYNAMO, package)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
        torch = sys.modules.get("torch")  # vars(), not getattr: torch imports _dynamo lazily on a missing attribute
        if torch is not None and vars(torch).get("_dynamo") is package:
            delattr(torch, "_dynamo")
    return torchvision
