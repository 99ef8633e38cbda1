"""Train a network of one family (``--arch``) on SceneWorld scenes or objects (what ``unitscope train`` runs)."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from unitscope.batching import batch_count, batch_ranges
from unitscope.constraint_spec import parse_constraints
from unitscope.constraints import build_constraints, whitened_layers
from unitscope.errors import UsageError
from unitscope.models.architectures import build_network, default_config
from unitscope.models.builtin import SceneWorldCheckpoint
from unitscope.models.preprocessing import Preprocessing
from unitscope.models.sceneworld_net import SceneWorldNetConfig
from unitscope.training_config import TASK_KINDS, TrainConfig


def render_split(kind: str, n: int, seed: int, size: int, desc: str, progress: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` SceneWorld images into memory: uint8 [n,3,H,W] and class indices [n]."""
    from unitscope.data.sceneworld import SceneWorldProbe

    probe = SceneWorldProbe(n=n, seed=seed, size=size, kind=kind)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    for i in tqdm(range(n), desc=desc, unit="img", disable=not progress):
        rendered = probe.render(i)
        images[i] = torch.from_numpy(np.ascontiguousarray(rendered.image)).permute(2, 0, 1)
        labels[i] = rendered.class_index
    return images, labels


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and small translations (4 px), applied to a uint8 batch."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    shift = torch.randint(-4, 5, (2,), generator=generator)
    return torch.roll(batch, shifts=(int(shift[0]), int(shift[1])), dims=(-2, -1))


def accuracy_on(net: nn.Module, preprocess: Preprocessing, images: torch.Tensor,
                labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``net`` on in-memory uint8 images."""
    net.eval()
    correct = 0
    with torch.no_grad():
        for part in batch_ranges(len(images), batch_size):
            logits = net(preprocess.to_tensor(images[part.start:part.stop]))
            correct += int((logits.argmax(1) == labels[part.start:part.stop]).sum())
    return correct / len(images)


def train_sceneworld_net(config: TrainConfig, progress: bool = True) -> SceneWorldCheckpoint:
    """Render the data, train ``config.arch`` with AdamW and a one-cycle schedule, and return the checkpoint.

    Bit for bit reproducible on one machine for a given config (seed and thread count included): the
    network's initialisation, the order of the images and the augmentation all draw from seeded generators.
    """
    config.validate()
    from unitscope.data.sceneworld import OBJECT_CLASSES, SCENE_CLASSES

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    kind = TASK_KINDS[config.task]
    class_names = SCENE_CLASSES if kind == "scenes" else OBJECT_CLASSES
    started, cpu_started = time.perf_counter(), time.process_time()
    train_x, train_y = render_split(kind, config.n_train, config.seed, config.size, "render train", progress)
    val_x, val_y = render_split(kind, config.n_val, config.seed + 1, config.size, "render val", progress)
    render_seconds = time.perf_counter() - started

    preprocess = Preprocessing(input_size=(config.size, config.size))
    specs = parse_constraints(config.constraints)
    net_config = default_config(config.arch, len(class_names), config.size)
    whitening = whitened_layers(specs)
    if whitening:
        if not isinstance(net_config, SceneWorldNetConfig):
            raise UsageError(f"--constraint whitening is built into the AlexNet-shaped net only; drop it or use "
                             f"--arch alexnet (got --arch {config.arch})")
        net_config = replace(net_config, whitening=whitening)
    net = build_network(net_config)
    constraints = build_constraints(specs, net, config.seed, config.size, progress)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = batch_count(config.n_train, config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=steps_per_epoch * config.epochs, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(config.n_train, generator=generator)
        bar = tqdm(list(batch_ranges(config.n_train, config.batch_size)), desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress)
        total_loss = 0.0
        for step, part in enumerate(bar):
            idx = order[part.start:part.stop]
            x = preprocess.to_tensor(_augment(train_x[idx], generator))
            loss = F.cross_entropy(net(x), train_y[idx], label_smoothing=0.1)
            loss = loss + sum((p for c in constraints if (p := c.penalty()) is not None), torch.zeros(()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            for constraint in constraints:
                constraint.after_step(net, epoch * steps_per_epoch + step + 1)
            total_loss += loss.item()
            bar.set_postfix(loss=f"{total_loss / (step + 1):.3f}")
        val_acc = accuracy_on(net, preprocess, val_x, val_y)
        history.append({"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "val_top1": val_acc})
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {total_loss / steps_per_epoch:.3f}, val top-1 {val_acc:.3f}")
    net.eval()
    info = {
        "train_config": asdict(config),
        "history": history,
        "val_top1": history[-1]["val_top1"],
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "arch": config.arch,
        "parameters": sum(p.numel() for p in net.parameters()),
        "optimizer": "AdamW, OneCycleLR (pct_start 0.2), label smoothing 0.1, flips and 4 px shifts",
        "torch": str(torch.__version__),
        "constraints": [c.describe() for c in constraints] or [{"constraint": "none"}],
    }
    for constraint in constraints:
        constraint.detach()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return SceneWorldCheckpoint(net_config, state, tuple(class_names), config.task, preprocess, info,
                                arch=config.arch)
