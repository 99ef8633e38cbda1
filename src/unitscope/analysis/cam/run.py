"""``cam`` end to end: heatmaps for a set of images, overlays, and, when labelled, the localisation score on
the foreground objects beside the random-weights twin's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unitscope.analysis.cam.baseline import CamBaseline, paired_differences
from unitscope.analysis.cam.foreground import ForegroundRule, foreground_rule
from unitscope.analysis.cam.localisation import ImageScore, LocalisationMeter, LocalisationScore
from unitscope.analysis.cam.methods import CAM, CamResult, ChannelWeightedCAM, GradCAM
from unitscope.analysis.cam.site import find_cam_site
from unitscope.analysis.inputs import InputImage, InputSource
from unitscope.analysis.overlay import blend_heatmap, foreground_panel, save_panels
from unitscope.distributed import Group, batches_in_order
from unitscope.errors import UsageError
from unitscope.models.loading import LoadedModel
from unitscope.report.output_pages import cam_page

CAM_BASELINES: tuple[str, ...] = ("random", "none")


@dataclass(frozen=True)
class CamOptions:
    """How ``run_cam`` explains and scores: the class (None: each image's top-1), layer and method; the
    background object names (None: the probe set's default, see ``foreground``); the share of hottest pixels
    scored; overlays for the first ``pictures`` images (None: all); the baseline (``random``: the same
    architecture re-initialised from ``baseline_seed``, or ``none``)."""

    class_name: str | None = None
    layer: str | None = None
    method: str = "auto"
    batch_size: int = 16
    background: Sequence[str] | None = None
    top_fraction: float = 0.2
    pictures: int | None = 16
    baseline: str = "random"
    baseline_seed: int = 0

    def __post_init__(self) -> None:
        if self.baseline not in CAM_BASELINES:
            raise UsageError(f"--baseline must be one of {', '.join(CAM_BASELINES)}, got {self.baseline!r}")
        if not 0 < self.top_fraction <= 1:
            raise UsageError(f"--top-fraction must be in (0, 1], got {self.top_fraction}")
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {self.batch_size}")


@dataclass(frozen=True)
class CamSummary:
    """What ``run_cam`` did: method, layer, one row per image, the localisation score (if labelled), the
    foreground rule, and the random twin's score with the trained − random differences (if computed)."""

    method: str
    layer: str
    rows: list[dict[str, object]]
    localisation: LocalisationScore | None
    foreground: dict[str, object] | None = None
    baseline: CamBaseline | None = None

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "layer": self.layer, "images": self.rows,
                "localisation": self.localisation.to_dict() if self.localisation else None,
                "foreground": self.foreground, "baseline": self.baseline.to_dict() if self.baseline else None}


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
    if not names:
        raise UsageError(f"--class {name!r}: {model.name} has no class names, so give a class number, or the "
                         "model's names with --class-names FILE")
    shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
    raise UsageError(f"--class {name!r} is not a class of {model.name}{hint}; classes: {shown}")


def build_cam(model: LoadedModel, example: torch.Tensor, layer: str | None, method: str) -> ChannelWeightedCAM:
    """CAM where the network allows it (feature map → GAP → linear), Grad-CAM otherwise or on request."""
    site = find_cam_site(model.module, example, layer, method)
    if site.classifier is not None:
        return CAM(model.module, site.layer, site.classifier)
    return GradCAM(model.module, site.layer)


# image, heatmap, target class, logits, the random twin's heatmap for the same class (None without a twin)
Explained = tuple[InputImage, np.ndarray, int, torch.Tensor, np.ndarray | None]


def run_cam(model: LoadedModel, source: InputSource, out: Path | None, options: CamOptions | None = None,
            group: Group | None = None) -> CamSummary:
    """``out/cam.json`` (localisation scores when labelled) and, for the first ``options.pictures`` images,
    heatmap overlays ``out/cam_<key>.png``.

    Under torchrun (``group``) each rank explains every world-th batch and rank 0 (``out`` set there only)
    scores and draws them all in batch order: its files are those of one process. Every rank picks the
    site from the first batch, as one process does.
    """
    options = options or CamOptions()
    group = group or Group()
    if len(source) == 0:
        raise UsageError("no images to explain; check --image or --data/--n")
    if group.is_main and out is None:
        raise UsageError("rank 0 needs an output directory for cam")
    if options.background is not None and not source.labelled:
        raise UsageError("--background names object labels, but these images have none; give labelled --data")
    target = class_index(model, options.class_name)
    rule = foreground_rule(source.probe, options.background) if source.labelled and source.probe is not None else None
    meters = (LocalisationMeter(options.top_fraction), LocalisationMeter(options.top_fraction)) if rule else None
    first = [source[i] for i in range(min(options.batch_size, len(source)))]
    size0 = first[0].image.shape[:2]
    example = model.preprocess.batch([item.image for item in first if item.image.shape[:2] == size0], model.device)
    cam = build_cam(model, example, options.layer, options.method)
    twin, twin_cam = None, None
    if options.baseline == "random" and rule is not None:  # a twin only where there is a score to compare
        from unitscope.dissection.baseline import random_baseline

        twin = random_baseline(model, options.baseline_seed)
        twin_cam = build_cam(twin, example, cam.layer, cam.name)
    rows: list[dict[str, object]] = []

    def compute(indices: range) -> list[Explained]:
        batch = first if indices.start == 0 else [source[i] for i in indices]
        done: list[Explained] = []
        for size in dict.fromkeys(item.image.shape[:2] for item in batch):  # images of one size at a time
            items = [item for item in batch if item.image.shape[:2] == size]
            x = model.preprocess.batch([item.image for item in items], model.device)
            result = _explain(cam, model.name, x, None if target is None else [target] * len(items), size, items)
            random = None if twin_cam is None or twin is None else \
                _explain(twin_cam, twin.name, x, result.targets, size, items).heatmaps.cpu().numpy()
            done.extend((item, result.heatmaps[j].cpu().numpy(), int(result.targets[j]), result.logits[j].cpu(),
                         None if random is None else random[j]) for j, item in enumerate(items))
        return done

    def consume(_indices: range, done: list[Explained]) -> None:
        for item, heat, explained, logits, random in done:
            draw = options.pictures is None or len(rows) < options.pictures
            rows.append(_one_image(model, item, heat, explained, logits, random, rule, meters,
                                   out if draw else None))

    if out is not None and group.is_main:
        out.mkdir(parents=True, exist_ok=True)
    batches_in_order(group, len(source), options.batch_size, compute, consume)
    summary = CamSummary(cam.name, cam.layer, rows, None)
    if meters is not None and rule is not None and group.is_main:
        baseline = None
        if twin is not None:
            baseline = CamBaseline(options.baseline_seed, twin.name, meters[1].result(),
                                   paired_differences(meters[0].images, meters[1].images))
        summary = CamSummary(cam.name, cam.layer, rows, meters[0].result(), rule.describe(), baseline)
    if out is not None and group.is_main:
        (out / "cam.json").write_text(json.dumps({"model": model.name, **summary.to_dict()}, indent=2))
        cam_page(out)
    return summary


def _explain(cam: ChannelWeightedCAM, name: str, x: torch.Tensor, targets: Sequence[int] | torch.Tensor | None,
             size: tuple[int, int], items: list[InputImage]) -> CamResult:
    result = cam(x, targets, size=size)
    if not (torch.isfinite(result.heatmaps).all() and torch.isfinite(result.logits).all()):
        raise UsageError(f"{name} produced NaN or infinite values on image {items[0].key}; "
                         "check the weights and the input normalisation")
    return result


def _one_image(model: LoadedModel, item: InputImage, heat: np.ndarray, target: int, logits: torch.Tensor,
               random: np.ndarray | None, rule: ForegroundRule | None,
               meters: tuple[LocalisationMeter, LocalisationMeter] | None, out: Path | None) -> dict[str, object]:
    names = model.class_names
    label = names[target] if names and target < len(names) else str(target)
    probability = float(torch.softmax(logits.double(), dim=0)[target])
    row: dict[str, object] = {"image": item.key, "class": label, "probability": probability}
    panels = [("image", item.image), (f"{label} ({probability:.2f})", blend_heatmap(item.image, heat))]
    mask = rule.mask(item.sample, label) if rule is not None and item.sample is not None else None
    if meters is not None and mask is not None:
        score = meters[0].update(_pooled(heat, mask.shape), mask)
        row.update({"mask": score.status, "object_share": score.object_share, "top_hit_rate": score.hit_rate,
                    "pointing": score.pointing})
        panels.append((_caption(score, meters[0]), foreground_panel(item.image, mask)))
        if random is not None:
            twin = meters[1].update(_pooled(random, mask.shape), mask)
            row.update({"random_top_hit_rate": twin.hit_rate, "random_pointing": twin.pointing})
            shown = f"hit {twin.hit_rate:.2f}, pointing {twin.pointing:g}" if twin.scored else twin.status
            panels.append((f"random twin: {shown}", blend_heatmap(item.image, random)))
    if out is not None:
        save_panels(out / f"cam_{item.key}.png", panels, title=f"{model.name}: {label}")
    return row


def _pooled(heat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The heatmap averaged down to the label resolution."""
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(heat)[None, None].double(), (shape[0], shape[1]))
    return np.asarray(pooled[0, 0].numpy())


def _caption(score: ImageScore, meter: LocalisationMeter) -> str:
    if score.status == "no-object":
        return "no foreground object: not scored"
    if score.status == "excluded":
        return f"foreground covers {score.object_share:.0%} (≥ {meter.max_mask_share:.0%}): excluded"
    return (f"foreground {score.object_share:.2f}: top {meter.top_fraction:.0%} hit {score.hit_rate:.2f}, "
            f"pointing {score.pointing:g}")
