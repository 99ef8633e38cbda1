"""Where a unit fires in its top images: its region outlined on the image, the rest dimmed.

A dissection keeps each unit's maps on its top images (``top_maps.npy``, from pass 1), so drawing a region
costs decoding the image and no forward pass. Runs without stored maps (older runs, layers too large to keep
them) get them recomputed here: one forward pass per batch of distinct images captures every such layer.
The model is loaded only when something needs it (such a forward pass, or tracing receptive fields that the
run did not record). The region follows one of two
rules (:mod:`unitscope.report.regions`): ``activation`` upsamples each map with the run's own geometry
(:class:`~unitscope.dissection.upsample.Upsampler`, same mode) to the size the image is shown at and cuts it
at the unit's threshold — the region that entered its IoU; ``field`` (the paper's unit segmentation)
keeps the union of the receptive-field squares of the positions above the threshold.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from PIL import Image

from unitscope.batching import batched
from unitscope.capture import LayerCapture
from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ProbeSet
from unitscope.dissection.result import DissectionResult
from unitscope.dissection.upsample import Upsampler
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.receptive.theory import FieldGeometry, alignment_geometry, theoretical_fields
from unitscope.report.outlines import (
    OutlineStyle,
    dim_images,
    display_size,
    outline_packed,
    pack_rgb,
    placeholder,
    tile_images,
    unpack_rgb,
)
from unitscope.report.regions import FieldUsed, check_field_sizes, check_region_rule, field_masks

LOG = logging.getLogger(__name__)

Geometry = Callable[[str, tuple[int, int]], tuple[float, float] | None]
UnitKey = tuple[str, int]  # (layer name, unit)
ModelSource = LoadedModel | Callable[[], LoadedModel]  # a model, or how to load it when first needed
TileSink = Callable[[UnitKey, int, np.ndarray], None]  # (layer, unit), slot, outlined image
PAIRS_AT_ONCE = 256  # (image, unit) regions drawn in one stack


@dataclass(frozen=True)
class LayerRequest:
    """The units of one layer to draw: module path, per-unit thresholds and image indices (in order).

    ``maps``, when given, holds each unit's stored maps [len(images), h, w] on those images (in order);
    the renderer draws from them instead of running the network.
    """

    path: str
    thresholds: Mapping[int, float]
    images: Mapping[int, Sequence[int]]
    maps: Mapping[int, np.ndarray] | None = None


@dataclass(frozen=True)
class Thumbnail:
    """One probe image as shown: its own size, and its pixels at the shown size, plain and dimmed (packed)."""

    image_size: tuple[int, int]
    plain: np.ndarray
    dimmed: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray, style: OutlineStyle) -> Thumbnail:
        thumb = _thumbnail(image, display_size(image.shape[:2], style.max_side))
        return cls((int(image.shape[0]), int(image.shape[1])), pack_rgb(thumb), pack_rgb(dim_images(thumb, style)))

    @property
    def nbytes(self) -> int:
        return int(self.plain.nbytes + self.dimmed.nbytes)


class ThumbnailCache:
    """The last ``capacity`` thumbnails made, so drawing units in several rounds decodes each image once."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise UsageError(f"thumbnail cache size must be 0 or more, got {capacity}")
        self.capacity = capacity
        self._kept: OrderedDict[int, Thumbnail] = OrderedDict()

    def get(self, index: int) -> Thumbnail | None:
        found = self._kept.get(index)
        if found is not None:
            self._kept.move_to_end(index)
        return found

    def put(self, index: int, thumb: Thumbnail) -> Thumbnail:
        if self.capacity:
            self._kept[index] = thumb
            self._kept.move_to_end(index)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return thumb

    def __len__(self) -> int:
        return len(self._kept)


class RegionRenderer:
    """Draws units' top-image regions for several layers at once, one forward pass per image batch.

    ``regions`` picks the rule (``"activation"`` or ``"field"``); ``field_sizes`` gives empirical field
    sides per layer name for ``"field"`` (other layers use their theoretical size). After :meth:`render`,
    ``fields_used`` holds the square drawn per layer, ``fallbacks`` the layers drawn by the activation
    rule instead because their receptive field is unknown, with why, and ``oversized`` the layers whose field
    is as large as the image (every region is then nearly the whole image: one warning line says so).
    """

    def __init__(self, model: ModelSource, probe: ProbeSet, upsample: str, geometry: Geometry | None = None,
                 batch_size: int = 32, style: OutlineStyle | None = None, regions: str = "activation",
                 field_sizes: Mapping[str, float] | None = None, input_size: tuple[int, int] | None = None) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be positive, got {batch_size}")
        check_region_rule(regions)
        check_field_sizes(field_sizes)
        self.regions = regions
        self.field_sizes = dict(field_sizes or {})
        self.fields_used: dict[str, FieldUsed] = {}
        self.fallbacks: dict[str, str] = {}
        self.oversized: dict[str, str] = {}
        self._theory: dict[tuple[int, int], dict[str, FieldGeometry]] = {}
        self._untraceable: str | None = None
        self._model = model
        self._input_size = input_size  # the network's input size without a forward pass (the run's)
        self.probe = probe
        self.upsample = upsample
        self.geometry = geometry
        self.batch_size = batch_size
        self.style = style or OutlineStyle()
        self.style.validate()
        self._upsamplers: dict[tuple[object, ...], Upsampler] = {}
        self.thumbnails = ThumbnailCache(0)  # the report sets a size when it renders units in several rounds
        self._fields: dict[tuple[str, tuple[int, int]], tuple[float, float] | None] = {}

    @property
    def model(self) -> LoadedModel:
        """The model, loaded on first use (drawing from stored maps may never need it)."""
        if not isinstance(self._model, LoadedModel):
            self._model = self._model()
        return self._model

    def render(self, requests: Mapping[str, LayerRequest]) -> dict[UnitKey, list[np.ndarray]]:
        """For each (layer name, unit): its outlined images, in the order requested."""
        out: dict[UnitKey, list[np.ndarray]] = {}
        for name, request in requests.items():
            for unit, images in request.images.items():
                out[(name, int(unit))] = [placeholder((1, 1))] * len(images)

        def keep(key: UnitKey, slot: int, tile: np.ndarray) -> None:
            out[key][slot] = np.ascontiguousarray(tile)  # not a view that keeps a whole stack of tiles alive

        self.render_each(requests, keep)
        return out

    def render_each(self, requests: Mapping[str, LayerRequest], sink: TileSink, packed: bool = False) -> None:
        """Hand every outlined image to ``sink(key, slot, tile)`` as soon as it is drawn, keeping none.

        Images are visited in index order (each decoded once for all the units that show it, or taken from
        :attr:`thumbnails`); an unreadable image's tiles are grey placeholders, handed over at the end.
        Tiles are uint8 [H, W, 3] views, or with ``packed`` uint32 [H, W] pixels (:func:`pack_rgb`), which
        an image file takes without a copy (:func:`unitscope.report.image_files.encode_jpeg`).
        """
        wanted: dict[int, list[tuple[str, int, int]]] = defaultdict(list)  # image -> (layer, unit, slot)
        for name, request in requests.items():
            for unit, images in request.images.items():
                for slot, index in enumerate(images):
                    wanted[int(index)].append((name, int(unit), slot))
        order = sorted(wanted)
        missing: list[int] = []
        for indices in batched(order, self.batch_size):
            missing += self._render_batch(list(indices), requests, wanted, sink, packed)
        fallback = placeholder(display_size(self.probe.image_size, self.style.max_side))
        for index in missing:
            for name, unit, slot in wanted[index]:
                sink((name, unit), slot, pack_rgb(fallback) if packed else fallback)

    def _thumbnails(self, indices: list[int], decode: bool) -> tuple[dict[int, Thumbnail], dict[int, np.ndarray]]:
        """The thumbnails of ``indices`` that could be read, and their decoded images (all of them with
        ``decode``, else only those not already in the cache)."""
        thumbs: dict[int, Thumbnail] = {}
        images: dict[int, np.ndarray] = {}
        load_image = getattr(self.probe, "load_image", None)  # the image alone, without decoding its labels
        for index in indices:
            cached = self.thumbnails.get(index)
            if cached is not None and not decode:
                thumbs[index] = cached
                continue
            try:
                image = load_image(index) if callable(load_image) else self.probe[index].image
            except BadSampleError:
                continue  # the run skipped it too; its tile becomes a placeholder
            images[index] = image
            thumbs[index] = cached or self.thumbnails.put(index, Thumbnail.of(image, self.style))
        return thumbs, images

    def _render_batch(self, indices: list[int], requests: Mapping[str, LayerRequest],
                      wanted: Mapping[int, list[tuple[str, int, int]]], sink: TileSink, packed: bool) -> list[int]:
        """Draw the tiles of images ``indices``; the indices that could not be read."""
        paths = sorted({r.path for r in requests.values()})
        unstored = sorted({r.path for r in requests.values() if r.maps is None})  # these need a forward pass
        thumbs, images = self._thumbnails(indices, decode=bool(unstored))
        by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, thumb in thumbs.items():
            by_shape[thumb.image_size].append(index)
        for size, group in by_shape.items():
            shown = display_size(size, self.style.max_side)
            outputs: dict[str, torch.Tensor] = {}
            if unstored:
                batch = self.model.preprocess.batch([images[i] for i in group], self.model.device)
                input_size = cast(tuple[int, int], tuple(batch.shape[-2:]))
            else:
                input_size = self._input_size or self.model.preprocess.input_size or size
            for path in paths:  # before hooking: the geometry tracer runs the model itself
                self._field(path, input_size)
            self._theoretical(input_size)
            if unstored:
                with LayerCapture(self.model.module, unstored) as capture, self.model.autocast():  # as the run did
                    outputs = capture.run(batch)
            plain = np.stack([thumbs[i].plain for i in group])
            dimmed = np.stack([thumbs[i].dimmed for i in group])
            for name, request in requests.items():
                pairs = [(b, unit, slot) for b, i in enumerate(group) for (n, unit, slot) in wanted[i] if n == name]
                if not pairs:
                    continue
                for part in batched(pairs, PAIRS_AT_ONCE):  # bounds the stacks of tiles in memory
                    some = list(part)
                    maps = _pair_maps(request, outputs, some)
                    masks = self._masks(name, maps, request, [unit for _, unit, _ in some], input_size, shown)
                    rows = [b for b, _, _ in some]
                    drawn = outline_packed(plain[rows], dimmed[rows], masks, self.style)
                    tiles = drawn if packed else unpack_rgb(drawn)
                    for (_, unit, slot), tile in zip(some, tiles, strict=True):
                        sink((name, unit), slot, tile)
        return [index for index in indices if index not in thumbs]

    def _masks(self, name: str, maps: torch.Tensor, request: LayerRequest, units: list[int],
               input_size: tuple[int, int], shown: tuple[int, int]) -> np.ndarray:
        """[P, H, W] bool: each (image, unit) region at the shown size, by the renderer's rule; maps [P, h, w]."""
        thresholds = torch.tensor([request.thresholds[u] for u in units], dtype=torch.float32, device=maps.device)
        geometry = self._layer_field(name, request.path, input_size)
        if geometry is not None:
            side = self.fields_used[name].side
            return field_masks(maps, thresholds, geometry, side, shown, input_size)
        upsampler = self._upsampler(request.path, cast(tuple[int, int], tuple(maps.shape[-2:])), shown, input_size,
                                    maps.device)
        return (upsampler(maps) > thresholds[:, None, None]).cpu().numpy()

    def _theoretical(self, input_size: tuple[int, int]) -> dict[str, FieldGeometry]:
        """Every layer's theoretical field at this input size ("field" rule only; empty when untraceable)."""
        if self.regions != "field":
            return {}
        if input_size not in self._theory:
            try:
                self._theory[input_size] = theoretical_fields(self.model.module, input_size)
            except UsageError as err:
                LOG.warning("unit regions fall back to the activation rule: %s", err)
                self._theory[input_size] = {}
                self._untraceable = str(err)
        return self._theory[input_size]

    def _layer_field(self, name: str, path: str, input_size: tuple[int, int]) -> FieldGeometry | None:
        """The layer's field geometry under the "field" rule, recording the square used; None: draw activation."""
        if self.regions != "field" or name in self.fallbacks:
            return None
        geometry = self._theoretical(input_size).get(path)
        if geometry is None:
            why = self._untraceable or f"the receptive field of {path} is unknown"
            self.fallbacks[name] = why
            return None
        if name not in self.fields_used:
            empirical = self.field_sizes.get(name)
            self.fields_used[name] = (FieldUsed(float(geometry.size), "theoretical") if empirical is None
                                      else FieldUsed(float(empirical), "empirical"))
            self._check_oversized(name, input_size)
        return geometry

    def _check_oversized(self, name: str, input_size: tuple[int, int]) -> None:
        """Warn once per layer when its field square is as large as the image: the region covers it all."""
        used = self.fields_used[name]
        if used.side < min(input_size):
            return
        self.oversized[name] = (
            f"warning: layer {name}: its {used.source} receptive field ({used.side:.0f} px) is larger than the "
            f"{input_size[0]}x{input_size[1]} px image, so --regions field marks most or all of each image "
            "(little or no outline); use --regions activation, or --field-sizes from `unitscope rf --empirical`, or a "
            "shallower layer")
        print(self.oversized[name], file=sys.stderr)

    def _field(self, path: str, input_size: tuple[int, int]) -> tuple[float, float] | None:
        """The layer's receptive-field (stride, start), or None for plain bilinear upsampling."""
        key = (path, input_size)
        if key not in self._fields:
            self._fields[key] = self.geometry(path, input_size) if self.geometry is not None else None
        return self._fields[key]

    def _upsampler(self, path: str, feature: tuple[int, int], shown: tuple[int, int],
                   input_size: tuple[int, int], device: torch.device) -> Upsampler:
        key = (path, feature, shown, input_size, str(device))
        if key not in self._upsamplers:
            field = self._field(path, input_size)
            stride, start = field if field is not None else (None, None)
            self._upsamplers[key] = Upsampler.build(self.upsample, feature, shown, input_size, stride, start).to(
                device)
        return self._upsamplers[key]


def _pair_maps(request: LayerRequest, outputs: Mapping[str, torch.Tensor],
               pairs: list[tuple[int, int, int]]) -> torch.Tensor:
    """[P, h, w]: the map of each (batch row, unit, slot) pair, stored with the request or from ``outputs``."""
    if request.maps is not None:
        return torch.from_numpy(np.stack([np.asarray(request.maps[unit][slot], dtype=np.float32)
                                          for _, unit, slot in pairs]))
    acts = outputs[request.path]
    if acts.dim() != 4:
        raise UsageError(f"layer {request.path} outputs {tuple(acts.shape)}, not [batch, units, h, w]; "
                         "only convolutional layers have regions to draw")
    rows = torch.tensor([b for b, _, _ in pairs], device=acts.device)
    units = torch.tensor([u for _, u, _ in pairs], device=acts.device)
    return acts[rows, units]


def _thumbnail(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def _loaded(model: ModelSource) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else model()


def run_geometry(model: ModelSource, recorded: Mapping[tuple[str, tuple[int, int]], tuple[float, float]]
                 | None = None) -> Geometry:
    """Receptive-field (stride, start) per module path and input size, as the ``rf`` upsampling uses.

    ``recorded`` (what a run wrote, per module path and input size) is used as is; only other sizes trace the
    model (loading it then, when ``model`` is a loader).
    """
    cache: dict[tuple[int, int], dict[str, tuple[float, float]]] = {}
    known = dict(recorded or {})

    def lookup(path: str, input_size: tuple[int, int]) -> tuple[float, float] | None:
        if (path, input_size) in known:
            return known[(path, input_size)]
        if input_size not in cache:
            cache[input_size] = alignment_geometry(_loaded(model).module, input_size)
        return cache[input_size].get(path)

    return lookup


def recorded_geometry(result: DissectionResult) -> dict[tuple[str, tuple[int, int]], tuple[float, float]]:
    """The (stride, start) the run recorded for each layer at its input size."""
    size = cast(tuple[int, int], tuple(result.record.input_size))
    return {(layer.path, size): (layer.stride, layer.start) for layer in result.record.layers
            if layer.stride is not None and layer.start is not None and all(size)}


def renderer_for(result: DissectionResult, model: ModelSource, probe: ProbeSet, batch_size: int = 32,
                 style: OutlineStyle | None = None, regions: str = "activation",
                 field_sizes: Mapping[str, float] | None = None) -> RegionRenderer:
    """A renderer that upsamples exactly as the run did (its ``upsample`` setting and geometry).

    ``regions`` and ``field_sizes`` (keyed by the dissection's layer names) as in :class:`RegionRenderer`.
    """
    check_field_sizes(field_sizes, result.layers)
    mode = str(result.record.setting("upsample", "rf"))
    geometry = run_geometry(model, recorded_geometry(result)) if mode == "rf" else None
    input_size = cast(tuple[int, int], tuple(result.record.input_size))
    return RegionRenderer(model, probe, mode, geometry, batch_size, style, regions, field_sizes,
                          input_size if all(input_size) else None)


def layer_request(result: DissectionResult, layer: str, units: Sequence[int], n_images: int) -> LayerRequest:
    """What to draw for ``units`` of ``layer``: their thresholds and first ``n_images`` top images."""
    if layer not in result.layers:
        raise UsageError(f"no layer {layer!r} in this dissection; choose one of {', '.join(result.layers)}")
    if n_images < 1:
        raise UsageError(f"images per unit must be at least 1, got {n_images}")
    found = result.layers[layer]
    table = found.units.set_index("unit")
    per_unit: dict[int, list[int]] = {}
    ranks: dict[int, list[int]] = {}
    if {"unit", "rank", "image"} <= set(found.top_images.columns):
        top = found.top_images[found.top_images["rank"] < n_images].sort_values(["unit", "rank"])
        for u, g in top.groupby("unit"):
            per_unit[int(u)], ranks[int(u)] = [int(i) for i in g["image"]], [int(r) for r in g["rank"]]
    missing = [u for u in units if u not in table.index]
    if missing:
        raise UsageError(f"layer {layer} has no unit {missing[0]}; units run from 0 to {len(table) - 1}")
    stored = found.top_maps
    usable = stored is not None and stored.ndim == 4 and stored.shape[0] == len(table) and all(
        max(ranks.get(int(u), [-1]), default=-1) < stored.shape[1] for u in units)
    return LayerRequest(
        path=found.path,
        thresholds={int(u): float(table.at[u, "threshold"]) for u in units},
        images={int(u): per_unit.get(int(u), []) for u in units},
        maps={int(u): stored[int(u), ranks.get(int(u), [])] for u in units} if stored is not None and usable
        else None,
    )


def unit_card_image(result: DissectionResult, model: ModelSource, probe: ProbeSet, layer: str, unit: int,
                    n_images: int = 4, style: OutlineStyle | None = None) -> np.ndarray:
    """One unit's top ``n_images`` with its region outlined, side by side (for compare/demo reports)."""
    renderer = renderer_for(result, model, probe, style=style)
    tiles = renderer.render({layer: layer_request(result, layer, [unit], n_images)})[(layer, unit)]
    if not tiles:
        raise UsageError(f"unit {unit} of {layer} has no top images; the run kept none (check --topk)")
    return tile_images(tiles)
