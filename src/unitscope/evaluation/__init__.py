"""Top-1 / top-5 accuracy of a classifier on labelled images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.batching import batch_ranges
from unitscope.data.classification import ClassificationData
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.progress import progress_bar


@dataclass(frozen=True)
class Accuracy:
    """Fractions of images whose true class is the first / among the first five predictions."""

    top1: float
    top5: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"top1": self.top1, "top5": self.top5, "n": self.n}


def predict_logits(model: LoadedModel, images: list[np.ndarray]) -> torch.Tensor:
    """Logits for a list of uint8 HxWx3 images (one batch)."""
    with torch.no_grad():
        x = model.preprocess.batch(images, model.device)
        logits: torch.Tensor = model.module(x)
    if not torch.isfinite(logits).all():
        raise UsageError("the model produced NaN or infinite scores; check the weights and --mean/--std")
    return logits.float().cpu()


def evaluate_accuracy(
    model: LoadedModel, data: ClassificationData, batch_size: int = 64, progress: bool = True
) -> Accuracy:
    """Accuracy over all of ``data``; independent of ``batch_size``."""
    if len(data) == 0:
        raise UsageError("no images to evaluate; check --data and --n")
    hits1 = hits5 = 0
    with progress_bar(total=len(data), desc=f"evaluate {model.name}", unit="img", disable=not progress) as bar:
        for part in batch_ranges(len(data), batch_size):
            samples = [data[i] for i in part]
            logits = predict_logits(model, [image for image, _ in samples])
            targets = torch.tensor([target for _, target in samples])
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hits1 += int((top[:, 0] == targets).sum())
            hits5 += int((top == targets[:, None]).any(dim=1).sum())
            bar.update(len(samples))
    return Accuracy(hits1 / len(data), hits5 / len(data), len(data))
