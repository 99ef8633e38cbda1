"""Background regions: indoor rooms (wall, floor, ceiling) and outdoor land/seascapes.

Regions are object concepts (sky, wall, floor, ceiling, grass, water, road, sand, ground) drawn first.
Their colours and materials vary widely (paint, wallpaper, brick or tile walls; wood, tile, carpet or
stone floors; blue, overcast or sunset skies) so that colour alone is a weak cue for the scene.
"""

from __future__ import annotations

from unitscope.data.sceneworld import colors as C
from unitscope.data.sceneworld.layout import Item, Stage
from unitscope.data.sceneworld.primitives import Dice, Look, Prim, look, oval, rect, shade, subtle, trap
from unitscope.data.sceneworld.scenes import GROUND_TYPES, Outdoor

GROUND_LOOKS: dict[str, tuple[str, tuple[C.RGB, ...]]] = {
    "grass": ("foliage", C.GRASS), "sand": ("sand", C.SAND), "ground": ("soil", C.SOIL), "road": ("asphalt", C.ASPHALT),
}


def region(d: Dice, label: str, prims: list[Prim], order: int) -> Item:
    """A background region item covering the whole image box; drawn in ``order``."""
    return Item(label, tuple(prims), (0.0, 0.0, 1.0, 1.0), False, -100.0 + order, False, (d.u(), d.u()))


def indoor_background(d: Dice) -> tuple[list[Item], Stage]:
    """A room seen from inside: back wall, optional side walls, ceiling band and floor."""
    ceiling_y = 0.0 if d.chance(0.3) else d.u(0.06, 0.2)
    floor_y = d.u(0.52, 0.72)
    left = 0.0 if d.chance(0.5) else d.u(0.08, 0.25)
    right = 1.0 if d.chance(0.5) else d.u(0.75, 0.92)
    slope = d.u(0.5, 1.0)
    dl, dr = left * slope, (1.0 - right) * slope
    kind = d.weighted(("paint", "wallpaper", "tile", "brick"), (6, 2, 1, 1))
    wall_pool = {"paint": C.WALL, "wallpaper": C.WALL, "tile": C.TILE, "brick": C.BRICK}[kind]
    wall = look(d, kind, wall_pool)
    if kind in ("wallpaper", "tile"):
        wall = wall._replace(color2=subtle(d, wall.color))
    walls = [rect(0.0, 0.0, 1.0, 1.0, None, wall)]
    if left > 0:
        walls.append(rect(0.0, 0.0, left, 1.0, None, shade(wall, 0.85)))
    if right < 1:
        walls.append(rect(right, 0.0, 1.0, 1.0, None, shade(wall, 0.9)))
    floor_kind = d.weighted(("wood", "tile", "carpet", "stone"), (4, 2.5, 2, 1.5))
    floor_pool = {"wood": C.WOOD, "tile": C.TILE, "carpet": C.CARPET, "stone": C.STONE}[floor_kind]
    floor = look(d, floor_kind, floor_pool, variant=0 if floor_kind == "wood" else None)
    floors = [rect(left, floor_y, right, 1.0, None, floor)]
    if left > 0:
        floors += [trap(floor_y, floor_y + dl, left, left, 0.0, left, None, floor),
                   rect(0.0, floor_y + dl, left, 1.0, None, floor)]
    if right < 1:
        floors += [trap(floor_y, floor_y + dr, right, right, right, 1.0, None, floor),
                   rect(right, floor_y + dr, 1.0, 1.0, None, floor)]
    items = [region(d, "wall", walls, 0), region(d, "floor", floors, 2)]
    if ceiling_y > 0:
        ceil = look(d, "paint", C.CEILING)
        ceils = [rect(left, 0.0, right, ceiling_y, None, ceil)]
        if left > 0:
            ceils += [rect(0.0, 0.0, left, ceiling_y - dl, None, ceil),
                      trap(ceiling_y - dl, ceiling_y, 0.0, left, left, left, None, ceil)]
        if right < 1:
            ceils += [rect(right, 0.0, 1.0, ceiling_y - dr, None, ceil),
                      trap(ceiling_y - dr, ceiling_y, right, 1.0, right, right, None, ceil)]
        items.append(region(d, "ceiling", ceils, 1))
    return items, Stage("indoor", floor_y, floor_y, wall=(left, right, ceiling_y))


def _sky(d: Dice, horizon: float) -> Item:
    """Sky down to the horizon with a few clouds."""
    sky = look(d, "sky", C.SKY_BLUE if d.chance(0.72) else C.SKY_OTHER)
    prims = [rect(0.0, 0.0, 1.0, horizon + 0.01, None, sky)]
    cloud = look(d, "sky", ((0.97, 0.97, 0.97), (0.9, 0.9, 0.92)))
    for _ in range(d.weighted((0, 1, 2, 3), (3, 3, 2, 1))):
        cx, cy, r = d.u(0.0, 1.0), d.u(0.05, max(horizon - 0.12, 0.06)), d.u(0.05, 0.12)
        prims += [oval(cx, cy, r * 1.6, r * 0.45, None, cloud),
                  oval(cx - r * 0.4, cy - r * 0.3, r * 0.7, r * 0.5, None, cloud),
                  oval(cx + r * 0.5, cy - r * 0.2, r * 0.6, r * 0.4, None, cloud)]
    return region(d, "sky", prims, 0)


def _ground_look(d: Dice, kind: str) -> Look:
    material, pool = GROUND_LOOKS[kind]
    return look(d, material, pool)


def outdoor_background(d: Dice, odds: Outdoor) -> tuple[list[Item], Stage]:
    """Sky, optional distant hills, optional water band, ground of one type, optional road."""
    horizon = d.u(0.3, 0.55)
    items = [_sky(d, horizon)]
    if d.chance(0.4):
        kind = d.pick(("grass", "ground"))
        hills = _ground_look(d, kind)
        hills = hills._replace(color=(hills.color[0] * 0.75, hills.color[1] * 0.8, hills.color[2] * 0.85))
        prims = []
        for _ in range(d.int(1, 3)):
            cx, w, h = d.u(0.0, 1.0), d.u(0.2, 0.5), d.u(0.05, 0.15)
            prims.append(oval(cx, horizon, w, h, None, hills))
        items.append(region(d, kind, prims, 1))
    ground_top = horizon
    water = None
    if d.chance(odds.water):
        bottom = 1.0 if d.chance(odds.water_full / max(odds.water, 1e-9)) else min(horizon + d.u(0.1, 0.35), 0.9)
        items.append(region(d, "water", [rect(0.0, horizon, 1.0, bottom, None, look(d, "water", C.WATER))], 2))
        water, ground_top = (horizon, bottom), bottom
    road = None
    if ground_top < 1.0:
        kind = d.weighted(GROUND_TYPES, odds.ground)
        items.append(region(d, kind, [rect(0.0, ground_top, 1.0, 1.0, None, _ground_look(d, kind))], 3))
        if kind != "road" and d.chance(odds.road):
            cx, top_half, bottom_half = d.u(0.2, 0.8), d.u(0.02, 0.12), d.u(0.25, 0.6)
            asphalt = _ground_look(d, "road")
            prims = [trap(ground_top, 1.0, cx - top_half, cx + top_half, cx - bottom_half, cx + bottom_half,
                          None, asphalt)]
            paint = look(d, "paint", ((0.95, 0.95, 0.95), (0.95, 0.8, 0.2)))
            y = ground_top + 0.03
            while y < 1.0:
                t = (y - ground_top) / (1.0 - ground_top)
                half = 0.004 + 0.012 * t
                prims.append(rect(cx - half, y, cx + half, y + 0.02 + 0.06 * t, None, paint))
                y += 0.05 + 0.12 * t
            items.append(region(d, "road", prims, 4))
            road = (cx, top_half, bottom_half, ground_top)
        elif kind == "road":
            road = (0.5, 0.6, 0.6, ground_top)
    return items, Stage("outdoor", horizon, ground_top, water=water, road=road)
