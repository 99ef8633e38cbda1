"""Room fixture builders: window, door, toilet, sink, bathtub, stove, fridge, monitor, painting, plant.

Same contract as the furniture builders: ``build(d, placement) -> (aspect, shapes back to front)``.
"""

from __future__ import annotations

from unitscope.data.sceneworld import colors as C
from unitscope.data.sceneworld.primitives import Dice, Prim, look, oval, rect, shade, trap

Built = tuple[float, list[Prim]]


def build_window(d: Dice, placement: str) -> Built:
    """Frame with one to four glass panes, a sill, and sometimes curtains."""
    frame = look(d, "paint", C.CERAMIC[:3]) if d.chance(0.6) else look(d, "wood", C.WOOD)
    glass = look(d, "glass", C.GLASS)
    cols, rows = d.pick(((1, 1), (2, 1), (2, 2), (1, 2), (3, 2)))
    p = [rect(0.0, 0.0, 1.0, 1.0, "frame", frame)]
    b, m = 0.08, 0.05
    w, h = (1 - 2 * b - (cols - 1) * m) / cols, (1 - 2 * b - (rows - 1) * m) / rows
    for i in range(cols):
        for j in range(rows):
            x0, y0 = b + i * (w + m), b + j * (h + m)
            p.append(rect(x0, y0, x0 + w, y0 + h, "pane", glass))
    p.append(rect(-0.06, 0.95, 1.06, 1.04, "frame", shade(frame, 0.9)))
    if d.chance(0.4):
        cloth = look(d, "fabric", C.FABRIC + C.BEDDING)
        p += [rect(-0.14, -0.05, 0.16, 1.06, "curtain", cloth), rect(0.84, -0.05, 1.14, 1.06, "curtain", cloth)]
    return d.u(0.7, 1.5), p


def build_door(d: Dice, placement: str) -> Built:
    """Door leaf with inset panels or a glass light, a door frame and a knob."""
    leaf = look(d, "wood", C.WOOD, variant=1) if d.chance(0.6) else look(d, "paint", C.WALL + C.VIVID[:5])
    p = [rect(-0.08, -0.05, 1.08, 1.0, "doorframe", look(d, "paint", C.CERAMIC[:3])),
         rect(0.0, 0.0, 1.0, 1.0, "panel", leaf)]
    if d.chance(0.7):
        inset = shade(leaf, 0.85)
        p += [rect(0.15, 0.07, 0.85, 0.45, "panel", inset), rect(0.15, 0.53, 0.85, 0.93, "panel", inset)]
    else:
        p.append(rect(0.2, 0.08, 0.8, 0.45, "pane", look(d, "glass", C.GLASS)))
    p.append(oval(0.85, 0.53, 0.06, 0.025, "knob", look(d, "metal", C.METAL + C.GOLD)))
    return d.u(0.4, 0.5), p


def build_toilet(d: Dice, placement: str) -> Built:
    """Side view: cistern tank with a flush handle, lid, bowl on a foot."""
    porcelain = look(d, "ceramic", C.CERAMIC[:3] if d.chance(0.85) else C.CERAMIC)
    p = [
        rect(0.0, 0.02, 0.36, 0.46, "tank", porcelain),
        rect(-0.02, 0.0, 0.38, 0.06, "tank", shade(porcelain, 0.95)),
        rect(0.28, 0.09, 0.4, 0.13, "handle", look(d, "metal", C.METAL)),
        trap(0.72, 1.0, 0.3, 0.64, 0.26, 0.68, "bowl", shade(porcelain, 0.92)),
        trap(0.48, 0.74, 0.06, 1.0, 0.24, 0.86, "bowl", porcelain),
        rect(0.04, 0.42, 1.0, 0.5, "lid", porcelain if d.chance(0.6) else look(d, "wood", C.WOOD)),
    ]
    return d.u(0.55, 0.7), p


def build_sink(d: Dice, placement: str) -> Built:
    """Pedestal washbasin with a faucet; sometimes a mirror above it."""
    porcelain = look(d, "ceramic", C.CERAMIC[:3])
    metal = look(d, "metal", C.METAL[:3])
    p = []
    if d.chance(0.4):
        p.append(rect(0.15, -0.45, 0.85, 0.0, "pane", look(d, "glass", C.GLASS[:3])))
    p += [
        trap(0.5, 1.0, 0.38, 0.62, 0.3, 0.7, "pedestal", shade(porcelain, 0.92)),
        rect(0.46, 0.05, 0.56, 0.25, "faucet", metal),
        rect(0.46, 0.05, 0.7, 0.1, "faucet", metal),
        trap(0.24, 0.52, 0.0, 1.0, 0.14, 0.86, "basin", porcelain),
        rect(-0.02, 0.22, 1.02, 0.28, "basin", shade(porcelain, 1.05)),
    ]
    return d.u(0.7, 1.0), p


def build_bathtub(d: Dice, placement: str) -> Built:
    """Side view: tub with a rim and a faucet, on claw feet or a built-in panel."""
    porcelain = look(d, "ceramic", C.CERAMIC[:3] if d.chance(0.8) else C.CERAMIC)
    metal = look(d, "metal", C.METAL[:3] + C.GOLD)
    p = [rect(0.06, 0.0, 0.1, 0.18, "faucet", metal), rect(0.06, 0.0, 0.2, 0.05, "faucet", metal)]
    if d.chance(0.4):
        p += [oval(0.12, 0.93, 0.05, 0.07, "leg", metal), oval(0.88, 0.93, 0.05, 0.07, "leg", metal)]
        p += [rect(0.0, 0.2, 1.0, 0.7, "tub", porcelain), trap(0.7, 0.9, 0.0, 1.0, 0.1, 0.9, "tub", porcelain)]
    else:
        p.append(rect(0.0, 0.2, 1.0, 1.0, "tub", porcelain))
    p.append(rect(-0.02, 0.14, 1.02, 0.22, "rim", shade(porcelain, 1.05)))
    return d.u(1.9, 2.6), p


def build_stove(d: Dice, placement: str) -> Built:
    """Cooker front: control panel with knobs, cooktop, oven door with window and handle, drawer."""
    body = look(d, "metal", C.METAL[:3] + C.CERAMIC[:2], pattern="brushed")
    dark = look(d, "glass", ((0.1, 0.1, 0.12),))
    p = []
    if d.chance(0.5):
        pot = look(d, "metal", C.METAL[:3] + C.VIVID[:2])
        x0 = d.u(0.1, 0.5)
        p.append(rect(x0, -0.14, x0 + 0.35, 0.02, None, pot))
    p += [rect(0.0, 0.0, 1.0, 1.0, None, shade(body, 0.9)), rect(0.0, 0.0, 1.0, 0.1, None, body)]
    knob = look(d, "plastic", ((0.1, 0.1, 0.1), (0.8, 0.8, 0.8)))
    p += [oval(x, 0.05, 0.04, 0.03, "knob", knob) for x in (0.15, 0.32, 0.68, 0.85)]
    p += [
        rect(0.0, 0.1, 1.0, 0.16, "cooktop", dark),
        rect(0.07, 0.26, 0.93, 0.86, "oven", body),
        rect(0.18, 0.38, 0.82, 0.72, "oven", dark),
        rect(0.12, 0.2, 0.88, 0.24, "handle", look(d, "metal", C.METAL[:3])),
        rect(0.07, 0.89, 0.93, 0.98, "drawer", shade(body, 0.95)),
    ]
    return d.u(0.8, 0.95), p


def build_fridge(d: Dice, placement: str) -> Built:
    """Tall fridge: freezer and main door (or side by side), long handles."""
    color = C.CERAMIC[:3] + C.METAL[:3] if d.chance(0.9) else C.VIVID
    body = look(d, "metal", color, pattern="brushed") if d.chance(0.5) else look(d, "plastic", color)
    handle = look(d, "metal", C.METAL)
    p = [rect(0.0, 0.0, 1.0, 1.0, None, shade(body, 0.6))]
    if d.chance(0.7):
        p += [rect(0.02, 0.01, 0.98, 0.32, "door", body), rect(0.02, 0.34, 0.98, 0.99, "door", body),
              rect(0.8, 0.1, 0.87, 0.28, "handle", handle), rect(0.8, 0.38, 0.87, 0.62, "handle", handle)]
    else:
        p += [rect(0.02, 0.01, 0.49, 0.99, "door", body), rect(0.51, 0.01, 0.98, 0.99, "door", body),
              rect(0.39, 0.3, 0.45, 0.6, "handle", handle), rect(0.55, 0.3, 0.61, 0.6, "handle", handle)]
    return d.u(0.45, 0.6), p


def build_monitor(d: Dice, placement: str) -> Built:
    """Computer monitor or television: bezel, glowing screen with content, stand."""
    bezel = look(d, "plastic", ((0.1, 0.1, 0.1), (0.3, 0.3, 0.32), (0.85, 0.85, 0.85)))
    screen = look(d, "glass", C.SCREEN)
    p = [rect(0.44, 0.76, 0.56, 0.94, "stand", bezel), rect(0.26, 0.93, 0.74, 1.0, "stand", shade(bezel, 0.9)),
         rect(0.0, 0.0, 1.0, 0.8, "bezel", bezel), rect(0.05, 0.06, 0.95, 0.73, "screen", screen)]
    if d.chance(0.6):
        x0, y0 = d.u(0.1, 0.4), d.u(0.1, 0.3)
        p.append(rect(x0, y0, x0 + d.u(0.25, 0.45), y0 + d.u(0.2, 0.35), "screen", look(d, "glass", C.PALE)))
    return d.u(1.2, 1.7), p


def build_painting(d: Dice, placement: str) -> Built:
    """Framed canvas showing a small landscape or an abstract composition."""
    frame = look(d, "wood", C.WOOD) if d.chance(0.6) else look(d, "metal", C.GOLD + C.METAL[3:])
    p = [rect(0.0, 0.0, 1.0, 1.0, "frame", frame)]
    if d.chance(0.5):
        horizon = d.u(0.4, 0.65)
        p += [rect(0.08, 0.08, 0.92, horizon, "canvas", look(d, "paint", C.SKY_BLUE + C.SKY_OTHER)),
              rect(0.08, horizon, 0.92, 0.92, "canvas", look(d, "paint", C.GRASS + C.WATER + C.SAND)),
              oval(d.u(0.25, 0.75), horizon - 0.12, 0.07, 0.09, "canvas", look(d, "paint", C.LIGHT))]
    else:
        p.append(rect(0.08, 0.08, 0.92, 0.92, "canvas", look(d, "paint", C.PALE + C.WALL)))
        for _ in range(d.int(2, 3)):
            cx, cy = d.u(0.25, 0.75), d.u(0.25, 0.75)
            paint = look(d, "paint", C.VIVID)
            if d.chance(0.5):
                p.append(oval(cx, cy, d.u(0.08, 0.18), d.u(0.08, 0.18), "canvas", paint))
            else:
                p.append(rect(cx - 0.15, cy - 0.12, cx + 0.15, cy + 0.12, "canvas", paint))
    return d.u(0.7, 1.6), p


def build_plant(d: Dice, placement: str) -> Built:
    """Potted plant: a pot with a rim and a bushy or spiky mass of leaves."""
    pot = look(d, "ceramic", ((0.75, 0.4, 0.24), *C.CERAMIC[:4]))
    leaf = look(d, "foliage", C.FOLIAGE)
    p = []
    if d.chance(0.6):
        for cx, cy, rx, ry in ((0.5, 0.3, 0.3, 0.2), (0.3, 0.45, 0.25, 0.17), (0.7, 0.45, 0.25, 0.17),
                               (0.5, 0.12, 0.2, 0.13)):
            p.append(oval(cx + d.u(-0.05, 0.05), cy, rx, ry, "leaves", shade(leaf, d.u(0.85, 1.15))))
    else:
        for i in range(5):
            x = 0.2 + 0.15 * i
            p.append(trap(d.u(0.0, 0.2), 0.62, x, x + 0.02, x - 0.06, x + 0.08, "leaves", shade(leaf, d.u(0.85, 1.15))))
    p += [trap(0.66, 1.0, 0.25, 0.75, 0.32, 0.68, "pot", pot), rect(0.22, 0.6, 0.78, 0.68, "pot", shade(pot, 1.1))]
    return d.u(0.5, 0.8), p
