"""Fitted concept vectors, kept once per run: ``RUN/vectors/<key>.npz``.

The fit (:func:`~unitscope.analysis.segment.vectors.fit_concept_vectors`) is a pure function of the network
whose features it reads (its state digest and class, its preprocessing), the layers and how they are
upsampled (the interpolation matrices themselves), the probe set it is fitted on (its identity: digest and
length), the category and the fit's settings. ``key`` hashes exactly those, so ``see``, ``segment
--method vectors`` and the random twin (another digest, another key) each pay a fit once per run and read it
back afterwards.

Derived data inside a run folder, as ``report`` writes its pages there: the run's own files are never
touched. Written atomically (a temporary file in the same folder, then ``os.replace``) while holding the
run's one-writer lock (``staging.lock_output``); when another process holds it, or the run folder is not
writable, nothing is cached and nothing fails. Read as untrusted input (``allow_pickle=False``; keys,
dtypes, shapes, finiteness, the concepts and the key itself checked against what the fit would give):
anything wrong and the vectors are fitted again and the file replaced, never trusted.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from unitscope.analysis.segment import vectors as fitting
from unitscope.analysis.segment.vectors import ConceptVectors, FeatureMaps, fit_concept_vectors
from unitscope.data.probe import ProbeSet
from unitscope.errors import UsageError

FOLDER = "vectors"
FORMAT = 1  # bump when fit_concept_vectors changes what it computes
ARRAYS = ("numbers", "weights", "bias", "mean", "std")


def fit_settings() -> dict[str, object]:
    """The fit's own settings (its keyword defaults), so a changed default is another key."""
    signature = inspect.signature(fitting.fit_concept_vectors)
    return {name: p.default for name, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and name not in ("category", "n")}


def cache_key(features: FeatureMaps, layers: tuple[str, ...], probe: ProbeSet, category: str, n: int) -> str:
    """The digest of everything the fit depends on (module docstring)."""
    from unitscope.data.identity import probe_identity
    from unitscope.models.digest import module_class, state_digest

    digest = hashlib.blake2b(digest_size=10)
    identity = probe_identity(probe)
    model = features.model
    head = {"format": FORMAT, "model": state_digest(model.module), "class": module_class(model.module),
            "preprocess": repr(model.preprocess), "layers": list(layers), "paths": list(features.paths),
            "probe": [probe.name, identity.digest, identity.images], "category": category,
            "n": min(n, len(probe)), "settings": fit_settings()}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for upsampler in features.upsamplers:
        for matrix in (upsampler.rows, upsampler.cols):
            data = matrix.detach().to("cpu").contiguous()
            digest.update(f"{tuple(data.shape)}".encode())
            digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def cached_fit(features: FeatureMaps, run_dir: Path | None, layers: tuple[str, ...], widths: tuple[int, ...],
               probe: ProbeSet, category: str, n: int) -> ConceptVectors:
    """The vectors from ``run_dir``'s cache when a sound file is there, else fitted (and cached)."""
    if run_dir is None or not run_dir.is_dir():
        return fit_concept_vectors(features, layers, probe, category, n=n)
    key = cache_key(features, layers, probe, category, n)
    path = run_dir / FOLDER / f"{key}.npz"
    concepts = list(probe.concepts.in_category(category))
    expected = (np.array([0, *[c.number for c in concepts]], dtype=np.int64), ("none", *[c.name for c in concepts]))
    if path.is_file():
        try:
            return read_vectors(path, key, layers, features.paths, widths, *expected)
        except UsageError as err:
            print(f"unitscope: note: {err}; fitting the concept vectors again", file=sys.stderr)
    vectors = fit_concept_vectors(features, layers, probe, category, n=n)
    write_vectors(vectors, run_dir, key)
    return vectors


def write_vectors(vectors: ConceptVectors, run_dir: Path, key: str) -> Path | None:
    """Cache ``vectors`` as ``run_dir/vectors/<key>.npz`` (atomically, under the run's lock); None when the
    folder is not writable or another process holds the lock."""
    from unitscope.staging import lock_output

    folder = run_dir / FOLDER
    meta = {"key": key, "layers": list(vectors.layers), "paths": list(vectors.paths),
            "widths": list(vectors.widths), "names": list(vectors.names), "report": vectors.report}
    try:
        with lock_output(run_dir):
            folder.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(handle, "wb") as stream:
                    np.savez(stream, numbers=np.asarray(vectors.numbers, np.int64),
                             weights=np.asarray(vectors.weights, np.float32), bias=np.asarray(vectors.bias, np.float32),
                             mean=np.asarray(vectors.mean, np.float32), std=np.asarray(vectors.std, np.float32),
                             meta=np.array(json.dumps(meta, default=str)))
                os.chmod(temporary, 0o644)
                os.replace(temporary, folder / f"{key}.npz")
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
    except (UsageError, OSError):
        return None
    return folder / f"{key}.npz"


def read_vectors(path: Path, key: str, layers: tuple[str, ...], paths: tuple[str, ...], widths: tuple[int, ...],
                 numbers: np.ndarray, names: tuple[str, ...]) -> ConceptVectors:
    """A cached file, checked against what the fit for ``key`` gives (one ``UsageError`` naming the problem)."""
    def bad(problem: str) -> UsageError:
        return UsageError(f"the cached concept vectors {path} are unusable ({problem})")

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in (*ARRAYS, "meta")}
    except KeyError as err:
        raise bad(f"no array {err}") from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise bad(str(err).splitlines()[0] if str(err) else type(err).__name__) from err
    try:
        meta = json.loads(str(arrays["meta"][()]))
    except (ValueError, TypeError, IndexError) as err:
        raise bad("its metadata is not JSON") from err
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise bad("written for other settings")
    if (meta.get("layers") != list(layers) or meta.get("paths") != list(paths) or meta.get("names") != list(names)
            or not isinstance(meta.get("report"), dict)):
        raise bad("its layers or concepts are not the fit's")
    recorded = meta.get("widths")
    if not isinstance(recorded, list) or not all(isinstance(w, int) and w > 0 for w in recorded) \
            or (widths and tuple(recorded) != widths) or len(recorded) != len(layers):
        raise bad("its layer widths are not the run's")
    classes, units = len(numbers), sum(recorded)
    shapes = {"numbers": (classes,), "weights": (classes, units), "bias": (classes,), "mean": (units,),
              "std": (units,)}
    for name, shape in shapes.items():
        array = arrays[name]
        kind = "i" if name == "numbers" else "f"
        if array.dtype.kind != kind or array.shape != shape:
            raise bad(f"{name} is {array.dtype} {array.shape}, expected {shape}")
        if kind == "f" and not np.isfinite(array).all():
            raise bad(f"{name} holds NaN or infinity")
    if not np.array_equal(arrays["numbers"], numbers) or not (arrays["std"] > 0).all():
        raise bad("its concept numbers or standard deviations are wrong")
    return ConceptVectors(tuple(layers), tuple(paths), tuple(recorded), arrays["numbers"].astype(np.int64),
                          tuple(names), arrays["weights"].astype(np.float32), arrays["bias"].astype(np.float32),
                          arrays["mean"].astype(np.float32), arrays["std"].astype(np.float32), meta["report"])
