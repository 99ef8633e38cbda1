"""``see`` end to end: inputs → sights → one JSON and one page per image, an index, and (``score``) the table.

Also the API's ``unitscope.see(run, ...)``. Output folder::

    <key>.json     the sight (schema unitscope.see/sight, docs/see.md)
    <key>.html     its page (links to the run's unit pages, relative to this folder)
    index.html     every image, and the score table when scored
    score.json, score.csv   with ``score``: trained beside the random twin, with intervals
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unitscope.analysis.inputs import InputImage, InputSource
from unitscope.batching import batch_ranges
from unitscope.defaults import FRESH_SEED, PICTURE_N
from unitscope.dissection.reopen import Trust
from unitscope.errors import UsageError
from unitscope.progress import progress_bar
from unitscope.see.page import write_index_page, write_sight_page
from unitscope.see.score import SeeScorer
from unitscope.see.sight import Sight
from unitscope.see.system import SeeOptions, SeeSystem


@dataclass(frozen=True)
class SeeResult:
    """What ``see`` found: the sights in input order, the score (None unless asked) and the folder written."""

    sights: list[Sight]
    score: dict[str, Any] | None
    out: Path | None


def run_see(system: SeeSystem, source: InputSource, out: Path | None, *, score: bool = False,
            baseline_seed: int = 0, minimal: bool = False, stream: Callable[[str], None] | None = None,
            run_url: str | None = None, progress: bool = True, title: str = "") -> SeeResult:
    """See every input (one forward pass per batch; ``score``: the random twin's pass beside it), writing into
    ``out`` (None: nothing written) and streaming one JSON line per image to ``stream``."""
    if score and not source.labelled:
        raise UsageError("--score needs labelled images: --data sceneworld or a Broden directory")
    scorer = _scorer(system, source) if score else None
    twin = system.twin(baseline_seed) if scorer is not None else None
    sights: list[Sight] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with progress_bar(total=len(source), desc="see", unit="image", disable=not progress) as bar:
        for part in batch_ranges(len(source), system.options.batch_size):
            items = [source[i] for i in part]
            arrays = [system.prepare(item.image) for item in items]
            sizes = [(int(item.image.shape[0]), int(item.image.shape[1])) for item in items]
            found = system.see_arrays(arrays, [item.key for item in items], sizes)
            if twin is not None and scorer is not None:
                random = twin.see_arrays(arrays, [item.key for item in items], sizes, [s.top.index for s in found])
                for item, mine, theirs in zip(items, found, random, strict=True):
                    if item.sample is not None:
                        scorer.update(item.sample, mine, theirs)
            for item, sight in zip(items, found, strict=True):
                if minimal:
                    sight = replace(sight, minimal=_minimal(system, item, sight, out), passes=sight.passes)
                if out is not None:
                    (out / f"{sight.name}.json").write_text(json.dumps(sight.to_json()))
                    write_sight_page(sight, item.image, out, run_url)
                if stream is not None:
                    stream(json.dumps(sight.to_json()))
                sights.append(sight)
            bar.update(len(items))
    table = scorer.result() if scorer is not None else None
    if out is not None:
        if table is not None:
            (out / "score.json").write_text(json.dumps(table, indent=2))
            write_score_csv(table, out / "score.csv")
        facts = [("model", system.model.name), ("run", str(system.run.run_dir)), ("images", str(len(sights))),
                 ("CAM", f"{system.cam.method} at {system.cam.layer}"),
                 ("concept vectors", " + ".join(system.vectors.layers)),
                 ("forward passes", f"{system.passes} (one per batch of {system.options.batch_size})")]
        write_index_page(sights, out, title or f"{len(sights)} image(s) through see", facts,
                         score_view(table) if table is not None else None)
    return SeeResult(sights, table, out)


def _scorer(system: SeeSystem, source: InputSource) -> SeeScorer:
    from unitscope.analysis.cam.foreground import foreground_rule

    probe = source.probe
    if probe is None:
        raise UsageError("--score needs labelled images: --data sceneworld or a Broden directory")
    classes = [c.number for c in system.run.concepts.in_category(system.options.category)]
    concepts = {c.number: c.name for c in probe.concepts.concepts}
    return SeeScorer(probe, system.things, classes, foreground_rule(probe), concepts, system.image_size)


def _minimal(system: SeeSystem, item: InputImage, sight: Sight, out: Path | None) -> dict[str, object]:
    """The minimal image of the predicted class (Zhou et al. §3.1): greedy region removal, many more passes."""
    from unitscope.minimal.greedy import minimal_image
    from unitscope.minimal.segments import TooFewRegionsError

    calls = [0]
    handle = system.model.module.register_forward_pre_hook(lambda _m, _i: calls.__setitem__(0, calls[0] + 1))
    try:
        result = minimal_image(system.model.module, system.prepare(item.image), sight.top.index,
                               system.model.preprocess, device=system.model.device)
    except TooFewRegionsError as err:
        return {"text": f"no minimal image: {err}", "forward_passes": calls[0]}
    finally:
        handle.remove()
    kept, total = int(result.kept.sum()), int(result.segmentation.num_regions)
    candidates = sum(total - t for t in range(len(result.steps)))  # most scored from cached activations
    found: dict[str, object] = {"regions_kept": kept, "regions": total, "stopped": result.stopped,
                                "forward_passes": calls[0], "candidates": candidates,
                                "text": f"{kept} of {total} regions keep {sight.top.name}; this scored {candidates} "
                                        "candidate images (see itself: one forward pass per batch)"}
    if out is not None:
        Image.fromarray(result.image).save(out / f"{sight.name}_minimal.png")
        found["image"] = f"{sight.name}_minimal.png"
    return found


def _fmt(value: object, signed: bool = False) -> str:
    if not isinstance(value, float | int) or isinstance(value, bool) or np.isnan(float(value)):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def score_lines(table: dict[str, Any]) -> list[str]:
    """The table as printed: one row per measure, trained, random, difference and its interval."""
    rows = table["rows"] if isinstance(table.get("rows"), list) else []
    lines = [f"{'':24}{'trained':>9}{'random':>9}   trained − random [95% paired bootstrap interval]   images"]
    for r in rows:
        interval = f"[{_fmt(r['low'], True)}, {_fmt(r['high'], True)}]"
        lines.append(f"{r['measure']:24}{_fmt(r['trained']):>9}{_fmt(r['random']):>9}   "
                     f"{_fmt(r['difference'], True):>7} {interval:<22}{r['n']:>14}")
    lines += [str(r["verdict"]) for r in rows]
    return lines


def write_score_csv(table: dict[str, Any], path: Path) -> None:
    rows = table["rows"] if isinstance(table.get("rows"), list) else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["measure", "trained", "random", "difference", "low", "high", "images"])
        for r in rows:
            writer.writerow([r["measure"], r["trained"], r["random"], r["difference"], r["low"], r["high"], r["n"]])


def score_view(table: dict[str, Any]) -> dict[str, Any]:
    """The score as the index page shows it."""
    rows = table["rows"] if isinstance(table.get("rows"), list) else []
    classes = table["classes"] if isinstance(table.get("classes"), list) else []
    return {
        "rows": [{"measure": r["measure"], "trained": _fmt(r["trained"]), "random": _fmt(r["random"]),
                  "difference": _fmt(r["difference"], True),
                  "interval": f"[{_fmt(r['low'], True)}, {_fmt(r['high'], True)}]", "n": r["n"]} for r in rows],
        "verdicts": [{"text": r["verdict"], "negative": r["beats_random"] is not True} for r in rows],
        "classes": [{"name": c["name"], "trained": _fmt(c["trained"]), "random": _fmt(c["random"]),
                     "instances": c["instances"]} for c in classes],
        "note": f"Ground-truth instances: {table.get('instances')}. Pointing game on the foreground "
                f"({table.get('foreground', {}).get('foreground') if isinstance(table.get('foreground'), dict) else ''}"
                f"). {table.get('resamples')} resamples of the images.",
    }


def see(run: str | Path, out: str | Path | None = None, *, images: Sequence[str | Path | Image.Image] = (),
        data: str | None = None, n: int = PICTURE_N, seed: int = FRESH_SEED, model: str | None = None,
        weights: str | None = None, score: bool = False, baseline_seed: int = 0, minimal: bool = False,
        device: str = "cpu", trust: Trust | None = None, options: SeeOptions | None = None,
        progress: bool = False) -> SeeResult:
    """Scene, objects and CAM for ``images`` (files or PIL images) or the first ``n`` of ``data``, in one forward
    pass per batch, from the finished run ``run``; with ``out``, one JSON and one page per image and an index;
    ``score`` (labelled ``data``): the table beside the random twin (``result.score``)."""
    if bool(images) == (data is not None):
        raise UsageError("give images or data (exactly one)")
    system = SeeSystem.open(run, model, weights, device, trust, options)
    source = _source(images, data, n, seed, system.image_size[0])
    target = Path(out) if out is not None else None
    url = os.path.relpath(Path(run).resolve(), target.resolve()) if target is not None else None
    return run_see(system, source, target, score=score, baseline_seed=baseline_seed, minimal=minimal,
                   run_url=url, progress=progress)


class _Images(InputSource):
    """Several image files (or PIL images) as inputs, keyed by file stem (made unique)."""

    def __init__(self, images: Sequence[str | Path | Image.Image]) -> None:
        super().__init__(None, len(images))
        self.images = list(images)
        keys: list[str] = []
        for i, image in enumerate(self.images):
            stem = Path(image).stem if isinstance(image, str | Path) else f"{i:05d}"
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or f"{i:05d}"
            keys.append(safe if safe not in keys else f"{safe}_{i}")
        self.keys = keys

    def __getitem__(self, i: int) -> InputImage:
        image = self.images[i]
        if isinstance(image, Image.Image):
            return InputImage(self.keys[i], np.asarray(image.convert("RGB"), dtype=np.uint8))
        from unitscope.data.image_folder import read_rgb

        path = Path(image)
        if not path.is_file():
            raise UsageError(f"--image {image} does not exist; give the path of a PNG or JPEG file")
        return InputImage(self.keys[i], read_rgb(path, "--image"))


def _source(images: Sequence[str | Path | Image.Image], data: str | None, n: int | None, seed: int,
            size: int) -> InputSource:
    if images:
        return _Images(images)
    from unitscope.analysis.inputs import open_inputs

    return open_inputs(None, data, n, seed, size)
