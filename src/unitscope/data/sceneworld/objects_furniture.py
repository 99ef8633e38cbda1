"""Furniture builders: bed, chair, table, sofa, lamp, desk, cabinet, bookshelf, bench.

Each builder draws one random instance in its unit box and returns (aspect = width / height, shapes),
shapes back to front. Variants (slatted or panel chairs, pedestal tables, floor or table lamps, ...) give
each class its own shape vocabulary rather than a single template.
"""

from __future__ import annotations

from unitscope.data.sceneworld import colors as C
from unitscope.data.sceneworld.primitives import Dice, Prim, look, oval, rect, shade, trap

Built = tuple[float, list[Prim]]


def build_bed(d: Dice, placement: str) -> Built:
    """Side view: headboard, optional footboard, bedspread over a frame, pillows, legs."""
    wood = look(d, "wood", C.WOOD) if d.chance(0.8) else look(d, "metal", C.METAL)
    sheet = look(d, "fabric", C.BEDDING)
    pillow = look(d, "fabric", C.PALE, pattern="plain")
    top = d.u(0.0, 0.2)
    p = [
        rect(0.0, top, 0.09, 1.0, "headboard", wood),
        oval(0.045, top, 0.045, 0.05, "headboard", wood),
        rect(0.06, 0.62, 0.99, 0.84, None, shade(wood, 0.8)),
        rect(0.9, 0.8, 0.96, 1.0, "leg", wood),
        rect(0.07, 0.42, 1.0, 0.76, "bedspread", sheet),
        oval(0.2, 0.39, 0.11, 0.08, "pillow", pillow),
    ]
    if d.chance(0.5):
        p.append(oval(0.3, 0.37, 0.1, 0.07, "pillow", shade(pillow, 0.95)))
    if d.chance(0.5):
        p.append(rect(0.94, top + 0.3, 1.0, 1.0, "footboard", wood))
    return d.u(1.6, 2.0), p


def build_chair(d: Dice, placement: str) -> Built:
    """Front three-quarter view: backrest (panel, slats or rungs), seat, four legs."""
    frame = d.weighted(
        [look(d, "wood", C.WOOD), look(d, "metal", C.METAL), look(d, "plastic", C.VIVID)], [6, 2.5, 1.5]
    )
    seat = look(d, "fabric", C.FABRIC) if d.chance(0.35) else shade(frame, 1.1)
    p = [rect(0.16, 0.58, 0.22, 0.9, "leg", shade(frame, 0.75)), rect(0.78, 0.58, 0.84, 0.9, "leg", shade(frame, 0.75))]
    style = d.int(0, 2)
    p += [rect(0.1, 0.0, 0.17, 0.5, "backrest", frame), rect(0.83, 0.0, 0.9, 0.5, "backrest", frame)]
    if style == 0:
        p.append(rect(0.1, 0.02, 0.9, 0.3, "backrest", seat if seat.material == "fabric" else frame))
    elif style == 1:
        p += [rect(x, 0.05, x + 0.07, 0.48, "backrest", frame) for x in (0.3, 0.465, 0.63)]
        p.append(rect(0.1, 0.0, 0.9, 0.08, "backrest", frame))
    else:
        p += [rect(0.1, y, 0.9, y + 0.07, "backrest", frame) for y in (0.02, 0.17, 0.32)]
    p += [
        trap(0.46, 0.58, 0.1, 0.9, 0.0, 1.0, "seat", seat),
        rect(0.0, 0.58, 1.0, 0.63, "seat", shade(seat, 0.8)),
        rect(0.02, 0.6, 0.11, 1.0, "leg", frame),
        rect(0.89, 0.6, 0.98, 1.0, "leg", frame),
    ]
    return d.u(0.55, 0.72), p


def build_table(d: Dice, placement: str) -> Built:
    """Top seen slightly from above, four legs or a pedestal, sometimes a tablecloth."""
    wood = look(d, "wood", C.WOOD) if d.chance(0.8) else look(d, "stone", C.STONE)
    legs = wood if d.chance(0.7) else look(d, "metal", C.METAL)
    p = []
    if d.chance(0.7):
        back = shade(legs, 0.75)
        p += [rect(0.14, 0.2, 0.19, 0.85, "leg", back), rect(0.81, 0.2, 0.86, 0.85, "leg", back)]
        p += [rect(0.04, 0.2, 0.1, 1.0, "leg", legs), rect(0.9, 0.2, 0.96, 1.0, "leg", legs)]
    else:
        p += [rect(0.45, 0.2, 0.55, 0.93, "leg", legs), trap(0.92, 1.0, 0.35, 0.65, 0.25, 0.75, "leg", legs)]
    p += [trap(0.0, 0.14, 0.06, 0.94, 0.0, 1.0, "tabletop", wood),
          rect(0.0, 0.14, 1.0, 0.21, "tabletop", shade(wood, 0.8))]
    if d.chance(0.25):
        cloth = look(d, "fabric", C.FABRIC)
        p += [trap(0.0, 0.14, 0.05, 0.95, -0.01, 1.01, "tablecloth", cloth),
              trap(0.14, 0.45, -0.01, 1.01, -0.03, 1.03, "tablecloth", shade(cloth, 0.9))]
    return d.u(1.4, 2.2), p


def build_sofa(d: Dice, placement: str) -> Built:
    """Front view: backrest, two or three seat cushions, armrests, short legs."""
    cover = look(d, "fabric", C.FABRIC) if d.chance(0.85) else look(d, "fur", C.HIDE[1:3], pattern="plain")
    legs = look(d, "wood", C.WOOD)
    p = [
        rect(0.04, 0.86, 0.09, 1.0, "leg", legs), rect(0.91, 0.86, 0.96, 1.0, "leg", legs),
        rect(0.06, 0.04, 0.94, 0.55, "backrest", cover),
        oval(0.5, 0.06, 0.44, 0.06, "backrest", cover),
        rect(0.06, 0.66, 0.94, 0.88, None, shade(cover, 0.75)),
    ]
    n = d.int(2, 3)
    for i in range(n):
        x0 = 0.11 + 0.78 * i / n
        p.append(rect(x0 + 0.005, 0.45, x0 + 0.78 / n - 0.005, 0.68, "cushion", shade(cover, 1.1)))
    for x0 in (0.0, 0.87):
        p += [rect(x0, 0.3, x0 + 0.13, 0.88, "armrest", shade(cover, 0.92)),
              oval(x0 + 0.065, 0.3, 0.065, 0.06, "armrest", shade(cover, 0.92))]
    return d.u(1.8, 2.6), p


def build_lamp(d: Dice, placement: str) -> Built:
    """A floor lamp, or a table lamp when it stands on furniture: lampshade, stand, base."""
    cloth = look(d, "fabric", C.LIGHT + C.PALE, pattern="plain")
    metal = look(d, "metal", C.METAL + C.GOLD) if d.chance(0.7) else look(d, "ceramic", C.CERAMIC)
    if placement == "on":
        p = [
            rect(0.44, 0.4, 0.56, 0.9, "stand", metal),
            oval(0.5, 0.68, 0.22, 0.17, "stand", metal),
            trap(0.0, 0.45, 0.2, 0.8, 0.0, 1.0, "lampshade", cloth),
            rect(0.22, 0.9, 0.78, 1.0, "base", shade(metal, 0.8)),
        ]
        return d.u(0.5, 0.7), p
    p = [
        rect(0.45, 0.25, 0.55, 0.95, "stand", metal),
        trap(0.0, 0.28, 0.22, 0.78, 0.0, 1.0, "lampshade", cloth),
        trap(0.93, 1.0, 0.3, 0.7, 0.12, 0.88, "base", shade(metal, 0.8)),
    ]
    return d.u(0.3, 0.42), p


def build_desk(d: Dice, placement: str) -> Built:
    """Writing desk: top, a drawer pedestal with handles (or a drawer under the top), legs."""
    wood = look(d, "wood", C.WOOD) if d.chance(0.75) else look(d, "plastic", C.CERAMIC[:3] + C.METAL[1:2])
    metal = look(d, "metal", C.METAL)
    p = [rect(0.08, 0.08, 0.62, 0.45, None, shade(wood, 0.7))]
    if d.chance(0.7):
        p += [rect(0.03, 0.08, 0.09, 1.0, "leg", wood), rect(0.62, 0.08, 0.97, 1.0, None, shade(wood, 0.85))]
        for i in range(3):
            y0 = 0.11 + i * 0.29
            p += [rect(0.65, y0, 0.94, y0 + 0.26, "drawer", wood),
                  rect(0.74, y0 + 0.1, 0.85, y0 + 0.14, "handle", metal)]
    else:
        p += [rect(0.03, 0.08, 0.09, 1.0, "leg", wood), rect(0.91, 0.08, 0.97, 1.0, "leg", wood),
              rect(0.35, 0.09, 0.65, 0.24, "drawer", shade(wood, 0.9)), rect(0.45, 0.14, 0.55, 0.18, "handle", metal)]
    p.append(rect(0.0, 0.0, 1.0, 0.09, "tabletop", shade(wood, 1.1)))
    return d.u(1.5, 2.0), p


def build_cabinet(d: Dice, placement: str) -> Built:
    """Kitchen or storage cabinet: doors or drawers with handles, sometimes a countertop."""
    body = look(d, "wood", C.WOOD) if d.chance(0.65) else look(d, "paint", C.WALL + C.CERAMIC)
    metal = look(d, "metal", C.METAL + C.GOLD)
    aspect = d.u(0.7, 1.5)
    p = [rect(0.0, 0.05, 1.0, 0.95, None, shade(body, 0.8)), rect(0.03, 0.95, 0.97, 1.0, None, shade(body, 0.5))]
    if d.chance(0.65):
        n = 2 if aspect < 1.1 else 3
        for i in range(n):
            x0 = 0.04 + 0.92 * i / n
            x1 = x0 + 0.92 / n - 0.02
            hx = x1 - 0.08 if i % 2 == 0 else x0 + 0.05
            p += [rect(x0, 0.1, x1, 0.92, "door", body), rect(hx, 0.4, hx + 0.03, 0.6, "handle", metal)]
    else:
        for i in range(3):
            y0 = 0.1 + i * 0.28
            p += [rect(0.05, y0, 0.95, y0 + 0.25, "drawer", body), rect(0.4, y0 + 0.1, 0.6, y0 + 0.14, "handle", metal)]
    if d.chance(0.5):
        p.append(rect(-0.03, 0.0, 1.03, 0.08, "countertop", look(d, "stone", C.STONE + C.TILE[:3])))
    else:
        p.append(rect(0.0, 0.02, 1.0, 0.08, None, shade(body, 0.9)))
    return aspect, p


def build_bookshelf(d: Dice, placement: str) -> Built:
    """Shelf boards between two sides, each shelf filled with books of random colours and heights."""
    wood = look(d, "wood", C.WOOD)
    n = d.int(3, 5)
    p = [rect(0.0, 0.0, 1.0, 1.0, None, shade(wood, 0.55))]
    gap = 0.95 / n
    for i in range(n):
        floor_y = 0.05 + (i + 1) * gap
        x = 0.08
        while x < 0.9:
            w = d.u(0.05, 0.1)
            if d.chance(0.15):
                x += w
                continue
            h = gap * d.u(0.55, 0.9)
            book = look(d, "paper", C.VIVID + C.FABRIC, pattern="plain")
            p.append(rect(x, floor_y - h, min(x + w - 0.01, 0.92), floor_y - 0.02, "book", book))
            x += w
        p.append(rect(0.06, floor_y - 0.03, 0.94, floor_y, "shelf", wood))
    p += [rect(0.0, 0.0, 0.07, 1.0, None, wood), rect(0.93, 0.0, 1.0, 1.0, None, wood),
          rect(0.0, 0.0, 1.0, 0.05, None, shade(wood, 1.1))]
    return d.u(0.6, 1.1), p


def build_bench(d: Dice, placement: str) -> Built:
    """Park bench: backrest slats, a seat, metal legs, sometimes armrests."""
    wood = look(d, "wood", C.WOOD) if d.chance(0.8) else look(d, "paint", C.VIVID)
    metal = look(d, "metal", C.METAL)
    p = [rect(0.1, 0.0, 0.14, 0.6, "leg", metal), rect(0.86, 0.0, 0.9, 0.6, "leg", metal)]
    p += [rect(0.04, 0.02, 0.96, 0.14, "backrest", wood), rect(0.04, 0.2, 0.96, 0.32, "backrest", wood)]
    p += [trap(0.45, 0.58, 0.03, 0.97, 0.0, 1.0, "seat", shade(wood, 1.1)),
          rect(0.0, 0.58, 1.0, 0.63, "seat", shade(wood, 0.8))]
    p += [rect(0.06, 0.58, 0.11, 1.0, "leg", metal), rect(0.89, 0.58, 0.94, 1.0, "leg", metal)]
    if d.chance(0.5):
        p += [rect(0.0, 0.33, 0.12, 0.38, "armrest", metal), rect(0.88, 0.33, 1.0, 0.38, "armrest", metal)]
    return d.u(1.8, 2.5), p
