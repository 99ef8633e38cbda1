"""Composition: turn (seed, index) into a layout — background, objects in plausible places, lighting.

Sample i of a set depends only on ``np.random.default_rng([seed, i])``; its first draw is the class
(scene or object), so the classification target is known without rendering. Objects stand on the
floor or ground with perspective (lower in the image = nearer = larger = drawn later, which gives the
painter's-order occlusion), hang on walls, float on water, or stand on tables and desks.
"""

from __future__ import annotations

import numpy as np

from unitscope.data.sceneworld.backgrounds import indoor_background, outdoor_background
from unitscope.data.sceneworld.layout import Item, Layout, Stage
from unitscope.data.sceneworld.objects import OBJECT_SPECS, ObjectSpec
from unitscope.data.sceneworld.primitives import Dice, Prim
from unitscope.data.sceneworld.scenes import SCENE_SPECS, Entry
from unitscope.data.sceneworld.vocabulary import OBJECT_CLASSES, OUTDOOR_SCENES, SCENE_CLASSES

SUPPORTS: dict[str, float] = {"table": 0.02, "desk": 0.01, "cabinet": 0.01}  # label -> top of surface in box
KINDS: tuple[str, ...] = ("scenes", "objects")
_WALL_DEPTH = -50.0
_MAIN_DEPTH = 100.0


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of the set ``seed``."""
    return np.random.default_rng([seed, index])


def draw_class(rng: np.random.Generator, kind: str) -> int:
    """The first draw of every sample: its class index."""
    return int(rng.integers(len(SCENE_CLASSES) if kind == "scenes" else len(OBJECT_CLASSES)))


def target_index(seed: int, index: int, kind: str) -> int:
    """Classification target of a sample without composing or rendering it."""
    return draw_class(sample_rng(seed, index), kind)


def compose(seed: int, index: int, kind: str) -> Layout:
    """The layout of sample ``index``: a scene (kind 'scenes') or an object-centric image ('objects')."""
    rng = sample_rng(seed, index)
    cls = draw_class(rng, kind)
    d = Dice(rng)
    if kind == "scenes":
        return _compose_scene(d, cls)
    return _compose_object(d, cls)


class _Placer:
    """Places objects against one stage, remembering what it placed (supports, overlaps)."""

    def __init__(self, d: Dice, stage: Stage) -> None:
        self.d = d
        self.stage = stage
        self.items: list[Item] = []
        self.scales: list[float] = []

    def choose_placement(self, spec: ObjectSpec) -> str:
        options = spec.indoor if self.stage.group == "indoor" else spec.outdoor
        return self.d.pick(options)

    def place(self, spec: ObjectSpec, placement: str, big: bool = False, size: float = 1.0) -> Item | None:
        """Draw and place one instance; None when it needs a support and there is none."""
        d, stage = self.d, self.stage
        support = None
        if placement == "on":
            supports = [i for i, it in enumerate(self.items) if it.label in SUPPORTS]
            if not supports:
                fallback = [p for p in (spec.indoor if stage.group == "indoor" else spec.outdoor) if p != "on"]
                if not fallback:
                    return None
                placement = fallback[0]
            else:
                support = d.pick(supports)
        if placement == "water" and stage.water is None:
            placement = "ground"
        aspect, prims = spec.build(d, placement)
        if support is not None:
            host, scale = self.items[support], self.scales[support]
            x, y, w, h = host.box
            base = y + SUPPORTS[host.label] * h
            height = spec.height * scale * d.u(0.75, 0.95) * (0.45 if spec.name == "lamp" else 1.0)
            width = height * aspect
            cx = d.u(x + 0.2 * w, x + 0.8 * w)
            box = (cx - width / 2, base - height, width, height)
            return self._add(spec.name, prims, box, host.depth + 0.001, scale)
        base, scale = self._base_and_scale(placement, big)
        height = spec.height * scale * d.u(0.88, 1.12) * size
        width = height * aspect
        if width > 1.2:
            width, height = 1.2, 1.2 / aspect
        if placement == "wall":
            left, right, top = stage.wall
            room = stage.horizon - top - 0.08
            if height > room:
                height, width = room, room * aspect
            cy = d.u(top + 0.03 + height / 2, stage.horizon - 0.05 - height / 2)
            x0 = self._free_x(width, cy - height / 2, height, left + 0.02, right - 0.02)
            return self._add(spec.name, prims, (x0, cy - height / 2, width, height), _WALL_DEPTH + cy, scale)
        lo, hi = (-0.05 * width, 1.0 - 0.95 * width) if big else (-0.2 * width, 1.0 - 0.8 * width)
        if spec.name == "car" and stage.road is not None:
            cxr, top_half, bottom_half, top = stage.road
            t = min(max((base - top) / max(1.0 - top, 1e-6), 0.0), 1.0)
            half = top_half + (bottom_half - top_half) * t
            lo, hi = cxr - half - width / 2, cxr + half - width / 2
        x0 = self._free_x(width, base - height, height, lo, hi + width)
        return self._add(spec.name, prims, (x0, base - height, width, height), base, scale)

    def _base_and_scale(self, placement: str, big: bool) -> tuple[float, float]:
        """Where the object touches the ground (y) and its perspective scale."""
        d, stage = self.d, self.stage
        if placement == "back":
            return stage.horizon + d.u(0.0, 0.06), d.u(0.85, 1.0)
        if placement == "floor":
            lo = stage.horizon + 0.04
            lo = lo + 0.45 * (1.08 - lo) if big else lo
            base = d.u(lo, 1.08)
            return base, 0.6 + 0.5 * (base - stage.horizon) / (1.0 - stage.horizon)
        if placement == "water" and stage.water is not None:
            top, bottom = stage.water
            lo, hi = top + 0.02, bottom + (0.05 if bottom >= 1.0 else 0.02)
            lo = lo + 0.5 * (hi - lo) if big else lo
        else:
            lo = stage.ground_top + 0.02
            hi = 1.1
            lo = lo + 0.4 * (hi - lo) if big else lo
        base = d.u(lo, hi)
        return base, min(max((base - stage.horizon) / (1.0 - stage.horizon), 0.6 if big else 0.08), 1.3)

    def _free_x(self, width: float, top: float, height: float, lo: float, hi: float) -> float:
        """Left edge in [lo, hi - width]: the best of three draws by overlap with placed objects."""
        hi = hi - width
        if hi <= lo:
            return (lo + hi) / 2
        best, best_cost = lo, float("inf")
        for _ in range(3):
            x0 = self.d.u(lo, hi)
            cost = 0.0
            for it in self.items:
                bx, by, bw, bh = it.box
                ox = min(x0 + width, bx + bw) - max(x0, bx)
                oy = min(top + height, by + bh) - max(top, by)
                if ox > 0 and oy > 0:
                    cost += ox * oy
            if cost < best_cost:
                best, best_cost = x0, cost
        return best

    def _add(self, label: str, prims: list[Prim], box: tuple[float, float, float, float], depth: float,
             scale: float) -> Item:
        item = Item(label, tuple(prims), box, self.d.chance(0.5), depth, True, (self.d.u(), self.d.u()))
        self.items.append(item)
        self.scales.append(scale)
        return item


def _background(d: Dice, group: str, scene: str | None) -> tuple[list[Item], Stage]:
    if group == "indoor":
        return indoor_background(d)
    odds = SCENE_SPECS[scene if scene is not None else d.pick(OUTDOOR_SCENES)].outdoor
    if odds is None:
        raise RuntimeError(f"scene {scene} has no outdoor background odds")
    return outdoor_background(d, odds)


def _finish(d: Dice, items: list[Item], cls: int, scene: str | None) -> Layout:
    """Painter's order (stable by depth) and the lighting of the image."""
    order = sorted(range(len(items)), key=lambda i: items[i].depth)
    light = (d.u(-0.15, 0.15), d.u(-0.15, 0.15), d.u(0.9, 1.08))
    noise = (d.u(0.008, 0.025), d.u(), d.u())
    return Layout(tuple(items[i] for i in order), cls, scene, light, noise)


def _compose_scene(d: Dice, cls: int) -> Layout:
    spec = SCENE_SPECS[SCENE_CLASSES[cls]]
    background, stage = _background(d, spec.group, spec.name)
    todo: list[Entry] = []
    for entry in spec.entries:
        if d.chance(entry.p):
            todo += [entry] * d.int(*entry.count)
    if not any(e.obj in spec.key for e in todo):
        key = d.pick(spec.key)
        todo.insert(0, next(e for e in spec.entries if e.obj == key))
    placer = _Placer(d, stage)
    planned = [(e, placer.choose_placement(OBJECT_SPECS[e.obj])) for e in todo]
    planned.sort(key=lambda ep: ep[1] == "on")
    for entry, placement in planned:
        placer.place(OBJECT_SPECS[entry.obj], placement, big=entry.big)
    return _finish(d, background + placer.items, cls, spec.name)


def _compose_object(d: Dice, cls: int) -> Layout:
    spec = OBJECT_SPECS[OBJECT_CLASSES[cls]]
    group = spec.home if d.chance(0.75) else ("outdoor" if spec.home == "indoor" else "indoor")
    background, stage = _background(d, group, None)
    placer = _Placer(d, stage)
    for _ in range(d.weighted((0, 1, 2), (4, 4, 2))):
        other = OBJECT_SPECS[d.pick([c for c in OBJECT_CLASSES if c != spec.name])]
        placement = placer.choose_placement(other)
        placer.place(other, placement, size=0.6)
    options = [p for p in (spec.indoor if group == "indoor" else spec.outdoor) if p not in ("on", "wall")]
    aspect, prims = spec.build(d, options[0] if options else "floor")
    extent = d.u(0.55, 0.85)
    height = extent if aspect <= 1.0 else extent / aspect
    height = min(height, 0.9)
    width = height * aspect
    cx, cy = 0.5 + d.u(-0.1, 0.1), 0.5 + d.u(-0.08, 0.08)
    y0 = min(max(cy - height / 2, 0.02), 0.98 - height)
    main = Item(spec.name, tuple(prims), (cx - width / 2, y0, width, height), d.chance(0.5), _MAIN_DEPTH, True,
                (d.u(), d.u()))
    return _finish(d, [*background, *placer.items, main], cls, None)
