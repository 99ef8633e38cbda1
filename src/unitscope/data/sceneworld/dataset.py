"""SceneWorld as a probe set (labels for dissection) and as a torch dataset (for training).

Sample i depends only on (seed, i), so both are random access and safe to split across workers. Label
maps are rendered at the image size and exposed at ``size // label_scale`` (Broden's 224/112 ratio by
default) by taking the centre sample of every ``label_scale`` x ``label_scale`` block — pixel
(s//2, s//2) of the block, i.e. ``map[s//2::s, s//2::s]`` — which keeps labels exact (no blending).
"""

from __future__ import annotations

import operator

import numpy as np
import torch
from torch.utils.data import Dataset

from unitscope.data.probe import ConceptTable, ProbeSample
from unitscope.data.sceneworld.compose import KINDS, compose, target_index
from unitscope.data.sceneworld.raster import RenderedImage, render_layout
from unitscope.data.sceneworld.recolor import recolor_layout
from unitscope.data.sceneworld.vocabulary import OBJECT_CLASSES, SCENE_CLASSES, sceneworld_concepts
from unitscope.errors import UsageError

MIN_SIZE = 32
WORLD_VERSION = 1  # bump when a seed renders other pixels or labels: runs record it in their identity


def _integer(value: object, name: str) -> int:
    """An integer argument (Python or numpy), or a usage error naming it."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise UsageError(f"SceneWorld {name} must be an integer, got {value!r}") from None


class SceneWorldProbe:
    """N SceneWorld images with exact object, part, material, colour, texture and scene labels."""

    def __init__(self, n: int, seed: int = 0, size: int = 112, kind: str = "scenes",
                 label_scale: int = 2, remove_objects: bool = False, recolor: bool = False) -> None:
        n, seed, size, label_scale = (_integer(v, k) for v, k in ((n, "n"), (seed, "seed"), (size, "size"),
                                                                  (label_scale, "label_scale")))
        if n <= 0:
            raise UsageError(f"SceneWorld needs a positive number of images, got n={n}")
        if seed < 0:
            raise UsageError(f"SceneWorld seeds are non-negative integers, got seed={seed}")
        if kind not in KINDS:
            raise UsageError(f"unknown SceneWorld kind {kind!r}; use 'scenes' or 'objects'")
        if size < MIN_SIZE:
            raise UsageError(f"SceneWorld image size must be at least {MIN_SIZE} pixels, got {size}")
        if label_scale < 1 or size % label_scale:
            raise UsageError(f"label_scale must be a positive integer dividing the size {size}, got {label_scale}")
        self.n, self.seed, self.kind = n, seed, kind
        self.label_scale, self.remove_objects, self.recolor = label_scale, remove_objects, bool(recolor)
        base = "sceneworld" if kind == "scenes" else "sceneworld-objects"
        self.name = base + ("-background" if remove_objects else "") + ("-recolored" if recolor else "")
        self.concepts: ConceptTable = sceneworld_concepts()
        self.image_size = (size, size)
        self.label_size = (size // label_scale, size // label_scale)
        self.class_names: tuple[str, ...] = SCENE_CLASSES if kind == "scenes" else OBJECT_CLASSES
        self._last: tuple[int, RenderedImage] | None = None

    def __len__(self) -> int:
        return self.n

    def identity(self) -> dict[str, object]:
        """What defines these images and labels (a run's probe identity): sample i depends on these alone.

        ``recolor`` appears only when set, so the original world keeps the identity its runs recorded.
        """
        defined: dict[str, object] = {"world": WORLD_VERSION, "kind": self.kind, "n": self.n, "seed": self.seed,
                                      "size": self.image_size[0], "label_scale": self.label_scale,
                                      "remove_objects": self.remove_objects}
        if self.recolor:
            defined["recolor"] = True
        return defined

    def recolored(self) -> SceneWorldProbe:
        """The colour-control twin: the same images with every part repainted from one shared palette
        (``data/sceneworld/recolor.py``); ``dissect --control recolored`` measures detectors on it."""
        if self.recolor:
            raise UsageError(f"{self.name} is already recoloured; dissect the original world with --control recolored")
        return SceneWorldProbe(self.n, seed=self.seed, size=self.image_size[0], kind=self.kind,
                               label_scale=self.label_scale, remove_objects=self.remove_objects, recolor=True)

    def _check(self, i: int) -> int:
        index = int(i)
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(f"sample {i} out of range for {self.n} images")
        return index

    def class_index(self, i: int) -> int:
        """Classification target of sample i (the first random draw; nothing is rendered)."""
        return target_index(self.seed, self._check(i), self.kind)

    def render(self, i: int) -> RenderedImage:
        """Full-resolution image and label maps of sample i (the last render is cached)."""
        index = self._check(i)
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        layout = compose(self.seed, index, self.kind)
        if self.recolor:
            layout = recolor_layout(layout, self.seed, index)
        rendered = render_layout(layout, self.image_size[0], self.remove_objects)
        self._last = (index, rendered)
        return rendered

    def __getitem__(self, i: int) -> ProbeSample:
        index = self._check(i)
        r = self.render(index)
        s = self.label_scale
        c = s // 2

        def down(m: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(m[c::s, c::s])[None]

        pixel = {"object": down(r.object_map), "part": down(r.part_map), "material": down(r.material_map),
                 "color": down(r.color_map)}
        image_labels: dict[str, tuple[int, ...]] = {"texture": (r.texture,)}
        if r.scene is not None:
            image_labels["scene"] = (r.scene,)
        return ProbeSample(index, r.image, pixel, image_labels)


class SceneWorldClassification(Dataset[tuple[torch.Tensor, int]]):
    """(uint8 image tensor [3, H, W], class index) pairs for training and evaluating classifiers."""

    def __init__(self, n: int, seed: int, size: int = 112, kind: str = "scenes", remove_objects: bool = False,
                 recolor: bool = False) -> None:
        self.probe = SceneWorldProbe(n, seed=seed, size=size, kind=kind, remove_objects=remove_objects,
                                     recolor=recolor)
        self.class_names = self.probe.class_names

    def __len__(self) -> int:
        return len(self.probe)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = self.probe.render(i)
        return torch.from_numpy(np.ascontiguousarray(r.image.transpose(2, 0, 1))), r.class_index
