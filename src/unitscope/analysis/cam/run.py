"""``cam`` end to end: heatmaps for a set of images, overlays, and the localisation score when labelled."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unitscope.analysis.cam.localisation import LocalisationMeter, LocalisationScore, object_mask
from unitscope.analysis.cam.methods import CAM, ChannelWeightedCAM, GradCAM
from unitscope.analysis.cam.site import find_cam_site
from unitscope.analysis.inputs import InputImage, InputSource
from unitscope.analysis.overlay import blend_heatmap, save_panels
from unitscope.data.probe import ConceptTable
from unitscope.distributed import Group, batches_in_order
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel


@dataclass(frozen=True)
class CamSummary:
    """What ``run_cam`` did: method, layer, one row per image, and the localisation score (if labelled)."""

    method: str
    layer: str
    rows: list[dict[str, object]]
    localisation: LocalisationScore | None

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "layer": self.layer, "images": self.rows,
                "localisation": self.localisation.to_dict() if self.localisation else None}


def class_index(model: LoadedModel, name: str | None) -> int | None:
    """The index of ``--class NAME`` among the model's classes (a number works without class names)."""
    if name is None:
        return None
    names = model.class_names or []
    if name in names:
        return names.index(name)
    if not names and name.isdigit():
        return int(name)
    close = get_close_matches(name, names, n=4)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
    raise UsageError(f"--class {name!r} is not a class of {model.name}{hint}; classes: {shown or 'unnamed'}")


def build_cam(model: LoadedModel, example: torch.Tensor, layer: str | None, method: str) -> ChannelWeightedCAM:
    """CAM where the network allows it (feature map → GAP → linear), Grad-CAM otherwise or on request."""
    site = find_cam_site(model.module, example, layer, method)
    if site.classifier is not None:
        return CAM(model.module, site.layer, site.classifier)
    return GradCAM(model.module, site.layer)


def relevant_objects(concepts: ConceptTable, class_name: str | None, foreground: Collection[str] | None) -> set[int]:
    """Label numbers of the objects a heatmap should point at.

    When the explained class is itself an object concept (an object network), its own pixels; otherwise
    every foreground object (``foreground`` names, e.g. SceneWorld's object classes, which leaves out
    background regions such as sky or wall), or every object concept when no foreground list is known.
    """
    objects = concepts.in_category("object")
    own = {c.number for c in objects if c.name == class_name}
    if own:
        return own
    if foreground is not None:
        return {c.number for c in objects if c.name in set(foreground)}
    return {c.number for c in objects}


Explained = tuple[InputImage, np.ndarray, int, torch.Tensor]  # image, heatmap, target class, logits


def run_cam(
    model: LoadedModel,
    source: InputSource,
    out: Path | None,
    class_name: str | None = None,
    layer: str | None = None,
    method: str = "auto",
    batch_size: int = 16,
    foreground: Collection[str] | None = None,
    top_fraction: float = 0.2,
    pictures: int | None = 16,
    group: Group | None = None,
) -> CamSummary:
    """``out/cam.json`` (a localisation score when labelled) and, for the first ``pictures`` images (all
    when None), heatmap overlays ``out/cam_<key>.png``.

    Under torchrun (``group``) each rank explains every world-th batch and rank 0 (``out`` set there only)
    scores and draws them all in batch order: its files are those of one process. Every rank picks the
    site from the first batch, as one process does.
    """
    group = group or Group()
    if len(source) == 0:
        raise UsageError("no images to explain; check --image or --data/--n")
    if group.is_main and out is None:
        raise UsageError("rank 0 needs an output directory for cam")
    target = class_index(model, class_name)
    meter = LocalisationMeter(top_fraction) if source.labelled else None
    first = [source[i] for i in range(min(batch_size, len(source)))]
    size0 = first[0].image.shape[:2]
    example = model.preprocess.batch([item.image for item in first if item.image.shape[:2] == size0], model.device)
    cam = build_cam(model, example, layer, method)
    rows: list[dict[str, object]] = []

    def compute(indices: range) -> list[Explained]:
        batch = first if indices.start == 0 else [source[i] for i in indices]
        done: list[Explained] = []
        for size in dict.fromkeys(item.image.shape[:2] for item in batch):  # images of one size at a time
            items = [item for item in batch if item.image.shape[:2] == size]
            x = model.preprocess.batch([item.image for item in items], model.device)
            result = cam(x, None if target is None else [target] * len(items), size=size)
            if not (torch.isfinite(result.heatmaps).all() and torch.isfinite(result.logits).all()):
                raise UsageError(f"{model.name} produced NaN or infinite values on image {items[0].key}; "
                                 "check the weights and the input normalisation")
            done.extend((item, result.heatmaps[j].cpu().numpy(), int(result.targets[j]), result.logits[j].cpu())
                        for j, item in enumerate(items))
        return done

    def consume(_indices: range, done: list[Explained]) -> None:
        for item, heat, explained, logits in done:
            draw = pictures is None or len(rows) < pictures
            rows.append(_one_image(model, item, heat, explained, logits, source, meter, foreground,
                                   out if draw else None))

    if out is not None and group.is_main:
        out.mkdir(parents=True, exist_ok=True)
    batches_in_order(group, len(source), batch_size, compute, consume)
    summary = CamSummary(cam.name, cam.layer, rows, meter.result() if meter and group.is_main else None)
    if out is not None and group.is_main:
        (out / "cam.json").write_text(json.dumps({"model": model.name, **summary.to_dict()}, indent=2))
    return summary


def _one_image(
    model: LoadedModel, item: InputImage, heat: np.ndarray, target: int, logits: torch.Tensor,
    source: InputSource, meter: LocalisationMeter | None, foreground: Collection[str] | None, out: Path | None,
) -> dict[str, object]:
    names = model.class_names
    label = names[target] if names and target < len(names) else str(target)
    probability = float(torch.softmax(logits.double(), dim=0)[target])
    row: dict[str, object] = {"image": item.key, "class": label, "probability": probability}
    panels = [("image", item.image), (f"{label} ({probability:.2f})", blend_heatmap(item.image, heat))]
    if meter is not None and item.sample is not None and "object" in item.sample.pixel_labels:
        maps = item.sample.pixel_labels["object"]
        relevant = relevant_objects(source.probe.concepts, label, foreground)  # type: ignore[union-attr]
        mask = object_mask(maps, relevant)
        pooled = F.adaptive_avg_pool2d(torch.from_numpy(heat)[None, None].double(), mask.shape)[0, 0].numpy()
        hit = meter.update(pooled, mask)
        row["top_hit_rate"] = hit
        row["object_share"] = float(mask.mean())
        caption = "no relevant object" if hit is None else \
            f"objects: {hit:.2f} of top {meter.top_fraction:.0%} heat (share {mask.mean():.2f})"
        panels.append((caption, (mask * 255).astype(np.uint8)[..., None].repeat(3, axis=2)))
    if out is not None:
        save_panels(out / f"cam_{item.key}.png", panels, title=f"{model.name}: {label}")
    return row
