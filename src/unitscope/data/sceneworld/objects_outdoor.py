"""Outdoor builders: car, person, tree, boat, house, streetlight, fence, cow, umbrella, rock, flower.

Same contract as the furniture builders: ``build(d, placement) -> (aspect, shapes back to front)``.
"""

from __future__ import annotations

from unitscope.data.sceneworld import colors as C
from unitscope.data.sceneworld.primitives import Dice, Prim, look, oval, rect, shade, trap

Built = tuple[float, list[Prim]]


def build_car(d: Dice, placement: str) -> Built:
    """Side view of a sedan, hatchback or van: bodywork, windows, wheels with hubs, headlight."""
    paint = look(d, "paint", C.VIVID)
    glass = look(d, "glass", C.GLASS[2:4] + C.SCREEN[:1])
    tire, hub = look(d, "rubber", ((0.08, 0.08, 0.09),)), look(d, "metal", C.METAL[:3])
    kind = d.int(0, 2)
    if kind == 2:  # van
        cabin = [trap(0.02, 0.45, 0.08, 0.78, 0.02, 0.92, "bodywork", paint),
                 trap(0.1, 0.4, 0.64, 0.76, 0.64, 0.86, "windshield", glass),
                 rect(0.12, 0.1, 0.6, 0.38, "windshield", glass)]
        aspect = d.u(1.8, 2.1)
    else:
        back = 0.18 if kind == 0 else 0.1
        cabin = [trap(0.1, 0.45, back + 0.1, 0.68, back, 0.84, "bodywork", paint),
                 trap(0.16, 0.42, back + 0.13, 0.47, back + 0.06, 0.47, "windshield", glass),
                 trap(0.16, 0.42, 0.5, 0.66, 0.5, 0.78, "windshield", glass)]
        aspect = d.u(2.1, 2.6)
    p = [*cabin, rect(0.0, 0.42, 1.0, 0.8, "bodywork", paint),
         rect(0.0, 0.66, 1.0, 0.72, "bodywork", shade(paint, 0.7)),
         oval(0.965, 0.52, 0.035, 0.06, "headlight", look(d, "glass", C.LIGHT))]
    for x in (0.2, 0.8):
        p += [oval(x, 0.8, 0.09, 0.2, "wheel", tire), oval(x, 0.8, 0.045, 0.1, "wheel", hub)]
    return aspect, p


def build_person(d: Dice, placement: str) -> Built:
    """Standing person: legs (trousers or a skirt), torso, arms with hands, head with hair."""
    skin = look(d, "skin", C.SKIN)
    shirt = look(d, "fabric", C.FABRIC)
    legs = look(d, "fabric", C.TROUSERS, pattern="woven")
    shoe = look(d, "rubber", ((0.1, 0.1, 0.1), (0.4, 0.25, 0.15), (0.9, 0.9, 0.9)))
    hair = look(d, "hair", C.HAIR)
    p = []
    if d.chance(0.75):
        p += [rect(0.3, 0.55, 0.48, 0.96, "leg", legs), rect(0.52, 0.55, 0.7, 0.96, "leg", legs)]
    else:
        p += [rect(0.35, 0.7, 0.45, 0.96, "leg", skin), rect(0.55, 0.7, 0.65, 0.96, "leg", skin),
              trap(0.5, 0.76, 0.27, 0.73, 0.18, 0.82, "torso", shirt)]
    p += [rect(0.26, 0.95, 0.48, 1.0, "leg", shoe), rect(0.52, 0.95, 0.74, 1.0, "leg", shoe)]
    sleeve = shade(shirt, 0.9)
    p += [rect(0.12, 0.23, 0.25, 0.55, "arm", sleeve), rect(0.75, 0.23, 0.88, 0.55, "arm", sleeve),
          oval(0.185, 0.57, 0.07, 0.035, "arm", skin), oval(0.815, 0.57, 0.07, 0.035, "arm", skin),
          rect(0.44, 0.14, 0.56, 0.22, "head", skin),
          rect(0.24, 0.21, 0.76, 0.58, "torso", shirt), oval(0.5, 0.24, 0.26, 0.05, "torso", shirt)]
    if d.chance(0.3):
        p.append(rect(0.33, 0.03, 0.67, 0.2, "hair", hair))
    p += [oval(0.5, 0.09, 0.15, 0.08, "head", skin), oval(0.5, 0.045, 0.155, 0.045, "hair", hair)]
    return d.u(0.3, 0.4), p


def build_tree(d: Dice, placement: str) -> Built:
    """Broadleaf tree (clustered crown), conifer (stacked triangles) or palm (fronds)."""
    bark = look(d, "wood", C.BARK)
    leaf = look(d, "foliage", C.FOLIAGE if d.chance(0.9) else C.AUTUMN)
    kind = d.weighted((0, 1, 2), (5, 3, 1 if placement == "ground" else 0))
    if kind == 0:
        p = [trap(0.45, 1.0, 0.44, 0.56, 0.4, 0.6, "trunk", bark)]
        for cx, cy, rx, ry in ((0.5, 0.32, 0.42, 0.27), (0.28, 0.42, 0.26, 0.18), (0.72, 0.42, 0.26, 0.18),
                               (0.5, 0.15, 0.3, 0.16)):
            p.append(oval(cx + d.u(-0.04, 0.04), cy + d.u(-0.03, 0.03), rx, ry, "crown", shade(leaf, d.u(0.85, 1.15))))
        return d.u(0.55, 0.85), p
    if kind == 1:
        dark = shade(leaf, 0.7)
        p = [rect(0.45, 0.75, 0.55, 1.0, "trunk", bark)]
        p += [trap(0.0, 0.32, 0.5, 0.5, 0.22, 0.78, "crown", dark), trap(0.18, 0.55, 0.5, 0.5, 0.1, 0.9, "crown", dark),
              trap(0.38, 0.8, 0.5, 0.5, 0.0, 1.0, "crown", shade(dark, 0.9))]
        return d.u(0.4, 0.6), p
    p = [trap(0.2, 0.55, 0.48, 0.54, 0.44, 0.52, "trunk", bark), trap(0.55, 1.0, 0.44, 0.52, 0.42, 0.52, "trunk", bark)]
    p += [trap(0.12, 0.2, 0.5, 0.52, 0.0, 0.52, "crown", leaf), trap(0.12, 0.2, 0.48, 0.5, 0.48, 1.0, "crown", leaf),
          trap(0.05, 0.2, 0.45, 0.55, 0.15, 0.85, "crown", shade(leaf, 0.85)),
          trap(0.2, 0.35, 0.05, 0.46, 0.0, 0.1, "crown", shade(leaf, 0.9)),
          trap(0.2, 0.35, 0.54, 0.95, 0.9, 1.0, "crown", shade(leaf, 0.9))]
    return d.u(0.6, 0.8), p


def build_boat(d: Dice, placement: str) -> Built:
    """Sailing boat (mast, main sail, jib) or motor boat (cabin with windows), on a hull."""
    hull = look(d, "paint", C.VIVID) if d.chance(0.7) else look(d, "wood", C.WOOD)
    p = []
    if d.chance(0.5):
        sail = look(d, "fabric", C.PALE + C.VIVID[:2], pattern="plain")
        p += [rect(0.47, 0.0, 0.5, 0.58, "mast", look(d, "wood", C.WOOD)),
              trap(0.03, 0.52, 0.5, 0.52, 0.5, 0.92, "sail", sail),
              trap(0.1, 0.52, 0.46, 0.47, 0.14, 0.46, "sail", shade(sail, 0.92))]
        aspect = d.u(1.0, 1.4)
    else:
        cabin = look(d, "paint", C.CERAMIC[:3])
        p += [rect(0.3, 0.28, 0.72, 0.58, "cabin", cabin),
              rect(0.34, 0.34, 0.68, 0.44, "pane", look(d, "glass", C.GLASS))]
        if d.chance(0.4):
            p.append(rect(0.5, 0.0, 0.53, 0.3, "mast", look(d, "metal", C.METAL)))
        aspect = d.u(1.6, 2.2)
    p += [trap(0.55, 1.0, 0.0, 1.0, 0.12, 0.88, "hull", hull), rect(0.01, 0.56, 0.99, 0.62, "hull", shade(hull, 0.6))]
    return aspect, p


def build_house(d: Dice, placement: str) -> Built:
    """A gabled house or a flat-roofed block: facade, roof, windows, a door with a knob, chimney."""
    facade = d.weighted([look(d, "brick", C.BRICK), look(d, "paint", C.WALL), look(d, "wood", C.WOOD),
                         look(d, "stone", C.STONE)], [3, 4, 1.5, 1.5])
    roof_mat = d.weighted(("tile", "stone", "wood"), (3, 2, 1))
    roof = look(d, roof_mat, C.ROOF, pattern="speckled" if roof_mat == "tile" else None)
    glass, white = look(d, "glass", C.GLASS), look(d, "paint", C.CERAMIC[:2])
    p = []
    if d.chance(0.65):
        top = 0.42
        if d.chance(0.6):
            p.append(rect(0.68, 0.06, 0.8, 0.3, "chimney", look(d, "brick", C.BRICK)))
        p += [trap(0.0, top, 0.5, 0.5, -0.05, 1.05, "roof", roof), rect(0.05, top, 0.95, 1.0, "facade", facade)]
        options, aspect = ((0.5,), (0.5, 0.72)), d.u(1.0, 1.5)
        rows: tuple[float, ...] = options[0] if d.chance(0.5) else options[1]
    else:
        top = 0.08
        p += [rect(0.0, 0.0, 1.0, top, "roof", roof), rect(0.02, top, 0.98, 1.0, "facade", facade)]
        rows, aspect = (0.15, 0.35, 0.55, 0.72)[: d.int(3, 4)], d.u(0.7, 1.0)
    for y in rows:
        for x in (0.12, 0.66):
            p += [rect(x, y, x + 0.22, y + 0.15, None, white),
                  rect(x + 0.02, y + 0.02, x + 0.2, y + 0.13, "pane", glass)]
    p += [rect(0.41, 0.72, 0.59, 1.0, "door", look(d, "wood", C.WOOD, variant=1)),
          oval(0.55, 0.87, 0.015, 0.012, "knob", look(d, "metal", C.GOLD))]
    return aspect, p


def build_streetlight(d: Dice, placement: str) -> Built:
    """Lamp post: pole on a base, with a lantern on top or hanging from an arm."""
    metal = look(d, "metal", (*C.METAL[1:], (0.1, 0.25, 0.15)))
    lantern = look(d, "glass", C.LIGHT)
    p = [rect(0.44, 0.12, 0.56, 1.0, "pole", metal), trap(0.88, 1.0, 0.4, 0.6, 0.32, 0.68, "base", shade(metal, 0.8))]
    if d.chance(0.5):
        p += [rect(0.44, 0.1, 0.92, 0.14, "pole", metal), trap(0.14, 0.22, 0.72, 0.98, 0.78, 0.92, "lantern", lantern),
              trap(0.1, 0.15, 0.78, 0.92, 0.7, 1.0, "lantern", shade(metal, 1.1))]
    else:
        p += [trap(0.02, 0.14, 0.3, 0.7, 0.38, 0.62, "lantern", lantern),
              trap(0.0, 0.04, 0.42, 0.58, 0.26, 0.74, "lantern", shade(metal, 1.1))]
    return d.u(0.25, 0.4), p


def build_fence(d: Dice, placement: str) -> Built:
    """Rails behind a row of posts (flat or pointed pickets)."""
    wood = look(d, "wood", C.WOOD) if d.chance(0.6) else look(d, "paint", C.CERAMIC[:2] + C.METAL[1:2])
    aspect = d.u(2.5, 5.0)
    p = [rect(0.0, 0.25, 1.0, 0.34, "rail", shade(wood, 0.9)), rect(0.0, 0.62, 1.0, 0.71, "rail", shade(wood, 0.9))]
    n = int(aspect * 2.2) + 1
    half = 0.09 / aspect
    pointed = d.chance(0.5)
    for i in range(n):
        x = half + (1 - 2 * half) * i / (n - 1)
        p.append(rect(x - half, 0.12 if pointed else 0.02, x + half, 1.0, "post", wood))
        if pointed:
            p.append(trap(0.0, 0.12, x, x, x - half, x + half, "post", wood))
    return aspect, p


def build_cow(d: Dice, placement: str) -> Built:
    """Side view: torso (often black and white), udder, four legs with hooves, long head with horns, tail."""
    coat = d.weighted((0, 1, 2, 3), (4.5, 3, 1, 1.5))
    hide = look(d, "fur", ((C.HIDE[0], C.HIDE[4], C.HIDE[2], C.HIDE[3])[coat],), pattern="plain")
    dark = look(d, "fur", ((0.1, 0.09, 0.09),), pattern="plain")
    pink = look(d, "skin", ((0.9, 0.65, 0.65),))
    p = [rect(0.07, 0.32, 0.1, 0.74, "tail", hide), oval(0.085, 0.76, 0.025, 0.05, "tail", dark),
         rect(0.3, 0.6, 0.37, 0.96, "leg", shade(hide, 0.8)), rect(0.72, 0.6, 0.79, 0.96, "leg", shade(hide, 0.8)),
         rect(0.17, 0.6, 0.25, 1.0, "leg", hide), rect(0.62, 0.6, 0.7, 1.0, "leg", hide),
         rect(0.17, 0.95, 0.25, 1.0, "leg", dark), rect(0.62, 0.95, 0.7, 1.0, "leg", dark),
         rect(0.11, 0.28, 0.8, 0.66, "torso", hide), oval(0.12, 0.46, 0.06, 0.18, "torso", hide),
         oval(0.79, 0.46, 0.07, 0.19, "torso", hide), oval(0.52, 0.67, 0.06, 0.05, "torso", pink)]
    if coat == 0:
        for _ in range(d.int(2, 4)):
            p.append(oval(d.u(0.2, 0.72), d.u(0.35, 0.55), d.u(0.06, 0.11), d.u(0.08, 0.14), "torso", dark))
    p += [trap(0.3, 0.56, 0.76, 0.86, 0.76, 0.9, "torso", hide),
          trap(0.14, 0.26, 0.86, 0.88, 0.84, 0.9, "horn", look(d, "fur", C.PALE, pattern="plain")),
          oval(0.8, 0.29, 0.05, 0.03, "head", shade(hide, 0.85)),
          trap(0.24, 0.62, 0.84, 0.97, 0.87, 1.0, "head", hide),
          oval(0.935, 0.6, 0.065, 0.06, "head", pink if coat != 2 else dark),
          oval(0.9, 0.36, 0.015, 0.02, "head", dark)]
    return d.u(1.3, 1.6), p


def build_umbrella(d: Dice, placement: str) -> Built:
    """Beach or garden umbrella: domed striped canopy with a scalloped edge, on a pole."""
    cloth = look(d, "fabric", C.VIVID, pattern=d.weighted(("striped", "plain"), (3, 1)), variant=0)
    tilt = d.u(-0.08, 0.08)
    p = [trap(0.25, 1.0, 0.485, 0.515, 0.485 + tilt, 0.515 + tilt, "pole", look(d, "wood", C.WOOD))]
    p += [trap(0.0, 0.12, 0.45, 0.55, 0.14, 0.86, "canopy", cloth),
          trap(0.12, 0.28, 0.14, 0.86, 0.0, 1.0, "canopy", cloth)]
    p += [oval(x, 0.28, 0.07, 0.035, "canopy", cloth) for x in (0.07, 0.21, 0.35, 0.5, 0.65, 0.79, 0.93)]
    return d.u(0.85, 1.15), p


def build_rock(d: Dice, placement: str) -> Built:
    """Boulder made of overlapping lumps, with moss patches and loose pebbles."""
    stone = look(d, "stone", C.STONE)
    p = [trap(0.55, 1.0, 0.02, 0.98, 0.0, 1.0, "boulder", stone)]
    for _ in range(3):
        cx, cy = d.u(0.25, 0.75), d.u(0.35, 0.6)
        p.append(oval(cx, cy, d.u(0.22, 0.3), d.u(0.3, 0.45), "boulder", shade(stone, d.u(0.85, 1.1))))
    if d.chance(0.6):
        p.append(oval(d.u(0.3, 0.7), d.u(0.25, 0.35), d.u(0.1, 0.2), 0.08, "moss", look(d, "foliage", C.FOLIAGE)))
    if d.chance(0.5):
        p.append(oval(d.pick((0.08, 0.92)), 0.93, 0.07, 0.07, "pebble", shade(stone, 0.8)))
    return d.u(1.1, 1.8), p


def build_flower(d: Dice, placement: str) -> Built:
    """A clump of one to three blooms: stems and leaves, petals around a pistil."""
    green = look(d, "foliage", C.FOLIAGE)
    petal = look(d, "foliage", C.BLOOM, pattern="plain")
    pistil = look(d, "foliage", ((0.95, 0.8, 0.2), (0.35, 0.2, 0.1)), pattern="plain")
    n = d.int(1, 3)
    heads = [(0.5, 0.2)] if n == 1 else [(0.25 + 0.5 * i / (n - 1), d.u(0.15, 0.35)) for i in range(n)]
    p = [oval(0.5, 0.85, 0.35, 0.12, "leaves", green)]
    for x, y in heads:
        p.append(rect(x - 0.03, y, x + 0.03, 1.0, "stem", green))
    for x, y in heads:
        r = 0.28 / max(n, 1.5)
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            p.append(oval(x + dx * r * 0.8, y + dy * r * 0.5, r, r * 0.6, "petal", petal))
        p.append(oval(x, y, r * 0.6, r * 0.4, "pistil", pistil))
    return d.u(0.6, 1.0), p
