"""Scoring a classifier under ablation conditions: per image, is it right, and how sure of the truth.

One pass over the data: each batch is preprocessed once, and the conditions go through the network in
chunks (``conditions × batch`` items at most ``max_items``). Results do not depend on the batch size or
on the chunking (tested), and condition 0 is whatever the caller makes it (usually "nothing ablated").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unitscope.ablation.hooks import UnitEdit
from unitscope.batching import batch_ranges
from unitscope.capture import LayerRecorder
from unitscope.data.classification import ClassificationData
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.progress import progress_bar


@dataclass(frozen=True)
class Outcomes:
    """``correct`` [C, N] top-1 hits, ``score`` [C, N] softmax probability of the true class, ``targets`` [N]."""

    correct: np.ndarray
    score: np.ndarray
    targets: np.ndarray


def unit_means(model: LoadedModel, path: str, data: ClassificationData, batch_size: int = 64) -> torch.Tensor:
    """Each unit's mean activation over ``data`` (all images and positions): the ``mean`` replacement."""
    total: torch.Tensor | None = None
    count = 0
    for indices in batch_ranges(len(data), batch_size):
        images = [data[i][0] for i in indices]
        x = model.preprocess.batch(images, model.device)
        with torch.no_grad(), LayerRecorder(model.module, path, example=x) as recorder:
            model.module(x)
        act = recorder.activation
        axis = None if recorder.layer is None else recorder.layer.unit_axis
        if act is None or axis is None or act.dim() <= axis:
            raise UsageError(f"layer {path} gave no [batch, units, …] output; choose another layer")
        dims = [d for d in range(act.dim()) if d != axis]
        part = act.double().sum(dim=dims)
        total = part if total is None else total + part
        count += act.numel() // act.shape[axis]
    if total is None:
        raise UsageError("no images to measure the unit means on; check --data and --n")
    return (total / count).float()


def measure_conditions(
    model: LoadedModel,
    path: str,
    masks: torch.Tensor,
    values: torch.Tensor,
    data: ClassificationData,
    batch_size: int = 32,
    max_items: int = 4096,
    progress: bool = False,
) -> Outcomes:
    """Top-1 correctness and true-class probability of every image under every condition (``masks`` [C, U])."""
    if len(data) == 0:
        raise UsageError("no images to ablate on; check --data and --n")
    n_cond = masks.shape[0]
    correct = np.zeros((n_cond, len(data)), dtype=bool)
    score = np.zeros((n_cond, len(data)), dtype=np.float64)
    targets = np.zeros(len(data), dtype=np.int64)
    expand = True
    with progress_bar(total=len(data), desc="ablate", unit="img", disable=not progress) as bar:
        for part in batch_ranges(len(data), batch_size):
            samples = [data[i] for i in part]
            start, stop = part.start, part.stop
            x = model.preprocess.batch([image for image, _ in samples], model.device)
            target = torch.tensor([t for _, t in samples], device=model.device)
            targets[start:stop] = target.cpu().numpy()
            chunk = max(1, max_items // len(samples))
            for conditions in batch_ranges(n_cond, chunk):
                lo, hi = conditions.start, conditions.stop
                logits, expand = _logits(model, path, masks[lo:hi], values, x, expand)
                probs = torch.softmax(logits.double(), dim=2)  # [c, B, K]
                hit = probs.argmax(dim=2) == target[None]
                correct[lo:hi, start:stop] = hit.cpu().numpy()
                score[lo:hi, start:stop] = probs.gather(2, target[None, :, None].expand(hi - lo, -1, 1))[..., 0].cpu()
            bar.update(len(samples))
    return Outcomes(correct, score, targets)


def _logits(model: LoadedModel, path: str, masks: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
            expand: bool) -> tuple[torch.Tensor, bool]:
    """[c, B, K] logits; expanded through the network when it allows, else one pass per condition."""
    if expand and masks.shape[0] > 1:
        try:
            out = _forward(model, path, masks, values, x)
            if out.shape[0] == masks.shape[0] * x.shape[0]:
                return out.view(masks.shape[0], x.shape[0], -1), True
        except RuntimeError:
            pass  # a later layer mixes the edited tensor with an unexpanded one: go one condition at a time
    outs = [_forward(model, path, masks[i:i + 1], values, x) for i in range(masks.shape[0])]
    return torch.stack(outs), False


def _forward(model: LoadedModel, path: str, masks: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), UnitEdit(model.module, path, masks, values, x):
        out = model.module(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise UsageError("ablate needs a classifier whose output is [batch, classes]; this model's is not")
    if not torch.isfinite(out).all():
        raise UsageError("the model produced NaN or infinite scores under ablation; check the weights")
    return out.float()
