"""Concept whitening's alignment step (Chen, Bei & Rudin, Nature Machine Intelligence 2020, Algorithm 1).

The ConceptWhitening module (``models/whitening.py``) replaces the layer's BatchNorm. Every ``EVERY``
optimiser steps the network goes to eval mode and, for each concept ``j`` of the concept sets, reads the
whitened (not yet rotated) activations ``x̂`` of its examples; the alignment loss ``−Σ_j mean(x̂_j)ᵀ R[:, j]``
asks axis ``j`` of the rotated output to fire on concept ``j``, and ``R`` takes one Cayley step along its
gradient (orthogonality kept).

Concept sets come from SceneWorld's exact masks: images rendered for the purpose (their own seed, never the
training images) and, per concept, the cells of the layer's map the concept's mask covers; ``x̂`` is averaged
over those cells (the masked variant of the paper's bounding-box crops: the background never counts).
The concepts are the ``CONCEPTS`` object concepts that cover a cell in most concept images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unitscope.constraint_spec import ConstraintSpec
from unitscope.constraints.base import Constraint
from unitscope.models.sceneworld_net import PAPER_LAYERS
from unitscope.models.whitening import ConceptWhitening

CITATION = ("Chen, Bei & Rudin, Nature Machine Intelligence 2020, Concept whitening: exact ZCA, Cayley "
            "rotation updates, concept sets from SceneWorld masks (masked pooling)")
EVERY = 20  # optimiser steps between alignment steps
CONCEPTS = 12  # object concepts aligned with the first axes
PER_CONCEPT = 24  # examples per concept per alignment step
CONCEPT_IMAGES = 300  # images rendered to find the examples
STEP = 0.05  # Cayley step size (times the constraint's weight)
COVER = 0.5  # a cell belongs to a concept's example when the mask covers at least this share of it


def features_before(net: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The network's activations up to and including ``layer``'s convolution (before its whitening)."""
    for name in PAPER_LAYERS:
        block = getattr(net, name)
        if name == layer:
            return block[0](x)  # type: ignore[no-any-return]
        x = block(x)
    raise ValueError(f"no layer {layer}")


class ConceptSets:
    """Per concept: example images (uint8 [N, 3, H, W] indices) and the cells each covers ([N, h, w] weights)."""

    def __init__(self, names: list[str], images: torch.Tensor, members: list[tuple[torch.Tensor, torch.Tensor]]
                 ) -> None:
        self.names, self.images, self.members = names, images, members


def concept_sets(seed: int, size: int, map_size: tuple[int, int], progress: bool) -> ConceptSets:
    """Render ``CONCEPT_IMAGES`` scenes and keep, per chosen object concept, up to ``PER_CONCEPT`` examples."""
    from tqdm import tqdm

    from unitscope.data.sceneworld import SceneWorldProbe
    from unitscope.data.sceneworld.vocabulary import label_numbers

    probe = SceneWorldProbe(n=CONCEPT_IMAGES, seed=seed, size=size, kind="scenes")
    numbers = label_numbers("object")
    images = torch.empty((CONCEPT_IMAGES, 3, size, size), dtype=torch.uint8)
    covers: dict[str, list[tuple[int, torch.Tensor]]] = {name: [] for name in numbers}
    for i in tqdm(range(CONCEPT_IMAGES), desc="concept sets", unit="img", disable=not progress):
        rendered = probe.render(i)
        images[i] = torch.from_numpy(np.ascontiguousarray(rendered.image)).permute(2, 0, 1)
        objects = torch.from_numpy(rendered.object_map.astype(np.int64))
        for name, number in numbers.items():
            mask = (objects == number).float()
            if not mask.any():
                continue
            share = F.adaptive_avg_pool2d(mask[None, None], map_size)[0, 0]
            cells = (share >= COVER).float()
            if cells.any():
                covers[name].append((i, cells))
    ranked = sorted(covers, key=lambda name: (-len(covers[name]), numbers[name]))[:CONCEPTS]
    members = []
    for name in ranked:
        chosen = covers[name][:PER_CONCEPT]
        members.append((torch.tensor([i for i, _ in chosen]), torch.stack([cells for _, cells in chosen])))
    return ConceptSets(ranked, images, members)


class Whitening(Constraint):
    """No loss term: the module whitens, and ``after_step`` rotates its axes towards the concepts."""

    citation = CITATION

    def __init__(self, spec: ConstraintSpec, seed: int, size: int, progress: bool = True) -> None:
        super().__init__(spec)
        self.seed, self.size, self.progress = seed, size, progress
        self.sets: ConceptSets | None = None
        self.preprocess: object = None

    def attach(self, net: nn.Module) -> None:
        from unitscope.models.preprocessing import Preprocessing

        module = net.get_submodule(f"{self.spec.layer}.1")
        if not isinstance(module, ConceptWhitening):
            raise ValueError(f"{self.spec.layer}.1 is not a ConceptWhitening module; build the net with "
                             f"whitening=({self.spec.layer!r},)")
        self.module = module
        self.preprocess = Preprocessing(input_size=(self.size, self.size))
        was = net.training
        net.eval()
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.size, self.size)
            map_size = tuple(features_before(net, self.spec.layer, probe).shape[-2:])
        net.train(was)
        self.sets = concept_sets(self.seed + 104_729, self.size, (int(map_size[0]), int(map_size[1])),
                                 self.progress)

    def penalty(self) -> torch.Tensor | None:
        return None

    @torch.no_grad()
    def concept_means(self, net: nn.Module) -> torch.Tensor:
        """``[C, K]``: column ``j`` is the whitened activation averaged over concept ``j``'s cells and examples."""
        if self.sets is None:
            raise ValueError("attach the constraint first")
        columns = []
        for indices, cells in self.sets.members:
            x = self.preprocess.to_tensor(self.sets.images[indices])  # type: ignore[attr-defined]
            whitened = self.module.whiten(features_before(net, self.spec.layer, x))  # [b, C, h, w]
            pooled = (whitened * cells[:, None]).sum((2, 3)) / cells.sum((1, 2))[:, None]
            columns.append(pooled.mean(0))
        return torch.stack(columns, 1)

    def align(self, net: nn.Module) -> None:
        """One alignment step: the gradient of ``−Σ_j mean(x̂_j)ᵀ R[:, j]`` in ``R``, then a Cayley step."""
        was = net.training
        net.eval()
        means = self.concept_means(net)
        gradient = torch.zeros_like(self.module.cw_rotation)
        gradient[:, : means.shape[1]] = -means
        self.module.rotate(gradient, STEP * self.spec.weight)
        net.train(was)

    def after_step(self, net: nn.Module, step: int) -> None:
        if step % EVERY == 0 and self.spec.weight > 0:
            self.align(net)

    def describe(self) -> dict[str, object]:
        found = super().describe()
        found.update({"concepts": list(self.sets.names) if self.sets else [], "every": EVERY,
                      "per_concept": PER_CONCEPT, "step": STEP * self.spec.weight})
        return found
