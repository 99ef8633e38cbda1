"""``run_minimal``: minimal images for a data set, written to a directory that is never half-written.

Layout of ``DIR``::

    images/<true class>/<id>.png   minimal images (``unitscope evaluate --data DIR/images`` re-checks them)
    sequences/<id>.csv             removal sequence with scores (row 0: the original)
    strips/<id>.png                the steps, for people
    summary.csv, summary.json      regions and pixels kept, per image and per class
    retention.csv, retention_objects.csv, retention.md   object survival (data with object labels only)

Work happens in ``DIR.partial``; each finished image leaves ``records/<id>.json`` there (written last,
atomically), so running the same command again resumes where it stopped. The finished directory is
renamed to ``DIR`` at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from unitscope.distributed import Group, PeerFailure
from unitscope.errors import UsageError
from unitscope.minimal.greedy import MinimalResult, MisclassifiedImageError, minimal_image
from unitscope.minimal.poisson import PoissonSolver
from unitscope.minimal.retention import (
    ImageCounts,
    ObjectCounts,
    class_retention,
    count_objects,
    object_rows,
    retention_markdown,
    retention_rows,
)
from unitscope.minimal.segments import TooFewRegionsError
from unitscope.minimal.sources import ImageSource, LabelledImage
from unitscope.minimal.split import Split, split_model
from unitscope.minimal.strip import result_strip
from unitscope.models.loading import LoadedModel
from unitscope.progress import progress_iter
from unitscope.staging import publish, staging_path

OK = "ok"


@dataclass(frozen=True)
class MinimalSettings:
    """The run's options; all but ``batch_size`` decide its results (recorded, and checked on resume)."""

    n_segments: int = 40
    edges: bool = False
    fill: str = "mean"
    batch_size: int = 64


@dataclass(frozen=True)
class ImageRecord:
    """One row of ``summary.csv`` plus the object counts that retention needs."""

    id: str
    index: int
    class_name: str
    status: str  # "ok", "misclassified" (the original already) or "too-few-regions"
    regions: int = 0
    regions_kept: int = 0
    pixels: int = 0
    pixels_kept: int = 0
    initial_score: float = float("nan")
    final_score: float = float("nan")
    removals: int = 0
    stopped: str = ""
    object_pixels: int = 0
    object_pixels_kept: int = 0
    objects: dict[str, tuple[int, int]] | None = None

    def summary_row(self) -> dict[str, object]:
        row: dict[str, object] = {"id": self.id, "index": self.index, "class": self.class_name}
        row.update({k: v for k, v in asdict(self).items() if k not in ("id", "index", "class_name", "objects")})
        row["pixel_fraction"] = self.pixels_kept / self.pixels if self.pixels else float("nan")
        return row


def _class_name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _folder_name(class_name: str) -> str:
    return class_name.replace("/", "_").replace("\\", "_") or "_"


def sequence_frame(result: MinimalResult, class_names: Sequence[str]) -> pd.DataFrame:
    """The removal sequence as a table; row 0 is the original image, ``applied`` marks minimal-image steps."""
    sizes = result.segmentation.sizes()
    rows: list[dict[str, object]] = [{
        "step": 0, "region": -1, "kind": "", "region_pixels": 0, "score": result.initial_score,
        "predicted": result.target, "predicted_class": _class_name(class_names, result.target),
        "correct": True, "applied": True,
    }]
    for t, step in enumerate(result.steps, start=1):
        rows.append({
            "step": t, "region": step.region, "kind": result.segmentation.kinds[step.region],
            "region_pixels": int(sizes[step.region]), "score": step.score, "predicted": step.predicted,
            "predicted_class": _class_name(class_names, step.predicted), "correct": step.correct,
            "applied": step.correct,
        })
    return pd.DataFrame(rows)


def _record(sample: LabelledImage, ident: str, class_name: str, result: MinimalResult) -> ImageRecord:
    kept_pixels = result.kept_pixels
    objects: ObjectCounts | None = None
    if sample.object_maps is not None:
        objects = count_objects(sample.object_maps, kept_pixels, sample.object_names)
    return ImageRecord(
        id=ident, index=sample.index, class_name=class_name, status=OK,
        regions=result.segmentation.num_regions, regions_kept=int(result.kept.sum()),
        pixels=int(kept_pixels.size), pixels_kept=int(kept_pixels.sum()),
        initial_score=result.initial_score, final_score=result.final_score, removals=len(result.removed),
        stopped=result.stopped,
        object_pixels=objects.pixels if objects else 0, object_pixels_kept=objects.kept if objects else 0,
        objects=dict(objects.per_object) if objects else None,
    )


class _Runner:
    """Processes one image at a time into the staging directory."""

    def __init__(self, model: LoadedModel, stage: Path, settings: MinimalSettings, strict: bool) -> None:
        self.model = model
        self.strict = strict
        self.class_names = list(model.class_names or [])
        self.stage = stage
        self.settings = settings
        self.solvers: dict[tuple[int, int], PoissonSolver] = {}
        self.splits: dict[tuple[int, int], Split | None] = {}  # the window engine's cut, traced once per size

    def process(self, sample: LabelledImage) -> ImageRecord:
        ident = sample.ident
        class_name = _class_name(self.class_names, sample.target)
        shape = sample.image.shape[:2]
        if self.settings.fill == "gradient" and shape not in self.solvers:
            self.solvers[shape] = PoissonSolver(*shape)
        if shape not in self.splits:
            self.splits[shape] = split_model(self.model.module.eval(), shape)[0]
        try:
            result = minimal_image(
                self.model.module, sample.image, sample.target, self.model.preprocess,
                segments=self.settings.n_segments, fill=self.settings.fill, batch_size=self.settings.batch_size,
                edges=self.settings.edges, device=self.model.device, solver=self.solvers.get(shape),
                incremental=self.splits[shape] is not None, split=self.splits[shape],
            )
        except MisclassifiedImageError as err:
            if self.strict:
                said = _class_name(self.class_names, err.predicted)
                raise UsageError(
                    f"the model classifies {ident} as {said!r}, not {class_name!r}; minimal images start from a "
                    "correctly classified image (check --class, the image, or the model)"
                ) from err
            return ImageRecord(ident, sample.index, class_name, "misclassified", initial_score=err.score)
        except TooFewRegionsError:
            if self.strict:
                raise
            return ImageRecord(ident, sample.index, class_name, "too-few-regions")
        folder = self.stage / "images" / _folder_name(class_name)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.image).save(folder / f"{ident}.png")
        sequence_frame(result, self.class_names).to_csv(self.stage / "sequences" / f"{ident}.csv", index=False)
        result_strip(result, self.class_names).save(self.stage / "strips" / f"{ident}.png")
        return _record(sample, ident, class_name, result)


def _load_record(path: Path) -> ImageRecord:
    data = json.loads(path.read_text())
    if data.get("objects") is not None:
        data["objects"] = {k: (int(v[0]), int(v[1])) for k, v in data["objects"].items()}
    return ImageRecord(**data)


def _prepare_stage(out: Path, identity: dict[str, object], overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"cannot create {out}: its parent folder does not exist")
    stage = staging_path(out)
    marker = stage / "run.json"
    if marker.is_file() and json.loads(marker.read_text()) != identity:
        raise UsageError(
            f"{stage} holds an unfinished run with other options; rerun with the same options to resume, "
            "or delete that folder"
        )
    for sub in ("images", "sequences", "strips", "records"):
        (stage / sub).mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity, indent=2))
    return stage


def _summary(records: Sequence[ImageRecord], identity: dict[str, object]) -> dict[str, object]:
    done = [r for r in records if r.status == OK]
    frame = pd.DataFrame([r.summary_row() for r in done])
    per_class: dict[str, object] = {}
    if done:
        for name, group in frame.groupby("class", sort=True):
            per_class[str(name)] = {
                "images": len(group),
                "mean_regions": float(group["regions"].mean()),
                "mean_regions_kept": float(group["regions_kept"].mean()),
                "mean_pixel_fraction": float(group["pixel_fraction"].mean()),
            }
    return {
        **identity,
        "images": len(records),
        "processed": len(done),
        "skipped": dict(Counter(r.status for r in records if r.status != OK)),
        "mean_regions": float(frame["regions"].mean()) if done else None,
        "mean_regions_kept": float(frame["regions_kept"].mean()) if done else None,
        "mean_pixel_fraction": float(frame["pixel_fraction"].mean()) if done else None,
        "per_class": per_class,
    }


def _write_tables(stage: Path, records: Sequence[ImageRecord], identity: dict[str, object]) -> None:
    pd.DataFrame([r.summary_row() for r in records]).to_csv(stage / "summary.csv", index=False)
    (stage / "summary.json").write_text(json.dumps(_summary(records, identity), indent=2))
    labelled = [r for r in records if r.status == OK and r.objects is not None]
    if not labelled:
        return
    counts = [
        ImageCounts(r.class_name, r.pixels, r.pixels_kept, ObjectCounts(r.object_pixels, r.object_pixels_kept,
                                                                       r.objects or {}))
        for r in labelled
    ]
    rows = class_retention(counts)
    pd.DataFrame(retention_rows(rows)).to_csv(stage / "retention.csv", index=False)
    pd.DataFrame(object_rows(rows)).to_csv(stage / "retention_objects.csv", index=False)
    title = f"What minimal images keep: {identity['model']} on {identity['data']}"
    (stage / "retention.md").write_text(retention_markdown(rows, title))


def _process_all(runner: _Runner, source: ImageSource, progress: bool, indices: Sequence[int]) -> list[ImageRecord]:
    records = []
    name = runner.model.name
    for i in progress_iter(indices, desc=f"minimal {name}", unit="img", disable=not progress):
        record_path = runner.stage / "records" / f"{i:05d}.json"
        if record_path.is_file():
            records.append(_load_record(record_path))
            continue
        record = runner.process(source[i])

        def write(p: Path, r: ImageRecord = record) -> None:
            p.write_text(json.dumps(asdict(r)))

        _write_atomic(record_path, write)
        records.append(record)
    return records


def run_minimal(
    model: LoadedModel,
    source: ImageSource,
    out: str | Path,
    settings: MinimalSettings = MinimalSettings(),
    overwrite: bool = False,
    progress: bool = True,
    identity: dict[str, object] | None = None,
    strict: bool = False,
    group: Group | None = None,
) -> dict[str, object]:
    """Minimal images for every image of ``source``; returns the contents of ``summary.json``.

    Images the model already gets wrong, or that segment into one region, are recorded as skipped;
    with ``strict`` they are usage errors instead (the single-image command). A usage error removes the
    staging directory, so nothing half-written is left behind. Under torchrun (``group``) rank r takes
    images r, r + world, …, writing into the same staging directory (one file system), and rank 0 writes
    the tables and publishes.
    """
    group = group or Group()
    out = Path(out)
    # The batch size changes speed, never results, so a run may resume with another one.
    decisive = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
    identity = {"model": model.name, "data": source.name, "images": len(source), **decisive, **(identity or {})}
    problem = None
    if group.is_main:
        try:
            _prepare_stage(out, identity, overwrite)
        except UsageError as err:
            problem = str(err)
    problem = group.broadcast(problem)
    if problem is not None:
        raise UsageError(problem)
    stage = staging_path(out)
    try:
        indices = group.shard(len(source))
        mine = _process_all(_Runner(model, stage, settings, strict), source, progress and group.is_main, indices)
        parts = group.all_gather(list(zip(indices, mine, strict=True)))
        records = [r for _, r in sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])]
    except PeerFailure:
        raise  # another rank stopped: keep the finished records for the rerun
    except UsageError:
        if group.is_main:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    if not group.is_main:
        return _summary(records, identity)
    _write_tables(stage, records, identity)
    shutil.rmtree(stage / "records")
    (stage / "run.json").unlink()
    publish(stage, out)  # --overwrite: the new result is in place before the old one is deleted
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    return summary
