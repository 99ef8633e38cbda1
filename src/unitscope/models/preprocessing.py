"""How images become network input: size, mean and standard deviation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from unitscope.errors import UsageError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize (only when ``input_size`` is set and differs) and normalise uint8 RGB images.

    ``input_size`` None means "feed images at the probe set's native size", the Network Dissection
    convention; torchvision weights and our built-in networks set it explicitly.
    """

    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fixed_size: tuple[int, int] | None = None  # the only size the network takes (a ViT's positional embedding)

    def to_tensor(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 [B,3,H,W] (any device) → normalised float [B,3,h,w] on ``device``."""
        x = images.to(device=device, non_blocking=True).float().div_(255.0)
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def batch(self, images: Sequence[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 HxWx3 arrays → normalised float batch [B,3,h,w].

        Images of different sizes are each resized to ``input_size`` first; without an input size they
        must share one size (a batch is one tensor).
        """
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            if self.input_size is None:
                raise ValueError(f"images of different sizes {sorted(shapes)[:3]} need an input size to batch")
            return torch.cat([self.batch([im], device) for im in images])
        stacked = torch.from_numpy(np.stack([np.ascontiguousarray(im) for im in images]))
        if torch.device(device).type == "cuda":
            # Page-locked, so the copy in to_tensor is a real asynchronous DMA (non_blocking) and the
            # host can stack the next batch while the GPU runs this one.
            stacked = stacked.pin_memory()
        return self.to_tensor(stacked.permute(0, 3, 1, 2), device)

    def with_overrides(
        self,
        input_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Preprocessing:
        """A copy with the user's --input-size/--mean/--std applied."""
        size = (input_size, input_size) if input_size else self.input_size
        if self.fixed_size is not None and size != self.fixed_size:
            side = self.fixed_size[0]
            raise UsageError(f"this network takes only {side}×{self.fixed_size[1]} inputs (its positional "
                             f"embedding fixes the size); drop --input-size (images are resized to {side}) or "
                             f"give --input-size {side}")
        return Preprocessing(
            input_size=size,
            mean=tuple(mean) if mean else self.mean,  # type: ignore[arg-type]
            std=tuple(std) if std else self.std,  # type: ignore[arg-type]
            fixed_size=self.fixed_size,
        )

    def fixed_to(self, module: object) -> Preprocessing:
        """A copy that resizes every image to the size ``module`` requires, when it requires one.

        torchvision's VisionTransformer checks ``h == w == image_size`` (the positional embedding has one
        entry per patch of that size); other networks take any size and are left as they are.
        """
        side = getattr(module, "image_size", None) if type(module).__name__ == "VisionTransformer" else None
        if not isinstance(side, int):
            return self
        fixed = (side, side)
        if self.input_size not in (None, fixed):
            raise UsageError(f"the network takes only {side}×{side} inputs but its preprocessing resizes to "
                             f"{self.input_size}; give --input-size {side}")
        return replace(self, input_size=fixed, fixed_size=fixed)
