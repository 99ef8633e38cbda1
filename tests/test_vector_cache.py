"""Concept vectors are fitted once per run (``RUN/vectors/<key>.npz``) and a damaged cache is fitted again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from planted import PlantedProbe
from test_analysis_planted import dissect_planted

from unitscope.analysis.segment import vector_cache
from unitscope.data.broden_export import write_broden
from unitscope.see import SeeOptions, SeeSystem


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """The planted GAP network's run and a Broden export to fit on."""
    root = tmp_path_factory.mktemp("cache")
    spec, run_dir = dissect_planted(root, n=6)
    fit = write_broden(root / "fit", PlantedProbe(16, seed=4, blue_noise=False), progress=False)
    return spec, run_dir, fit


@pytest.fixture
def fresh(made: tuple[str, Path, Path], tmp_path: Path) -> tuple[str, Path, Path]:
    """A copy of the run with no cache yet."""
    spec, run_dir, fit = made
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(vector_cache.FOLDER))
    return spec, copy, fit


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fits actually made."""
    made: list[int] = []
    real = vector_cache.fit_concept_vectors

    def counted(*args: object, **kwargs: object) -> object:
        made.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vector_cache, "fit_concept_vectors", counted)
    return made


def _open(spec: str, run_dir: Path, fit: Path) -> SeeSystem:
    return SeeSystem.open(run_dir, model=spec, options=SeeOptions(fit_n=16, fit_data=str(fit), min_pixels=1))


def _arrays(system: SeeSystem) -> list[np.ndarray]:
    v = system.vectors
    return [v.numbers, v.weights, v.bias, v.mean, v.std]


def test_vectors_are_fitted_once_per_run_and_read_back_equal(fresh: tuple[str, Path, Path], fits: list[int]) -> None:
    spec, run_dir, fit = fresh
    first = _open(spec, run_dir, fit)
    assert len(fits) == 1 and len(list((run_dir / "vectors").glob("*.npz"))) == 1
    second = _open(spec, run_dir, fit)
    assert len(fits) == 1  # read back, not fitted
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(_arrays(first), _arrays(second),
                                                                          strict=True))
    assert second.vectors.report == first.vectors.report and second.vectors.widths == first.vectors.widths
    twin = first.twin(0)  # another network (its digest): its own key, fitted once too
    assert len(fits) == 2 and len(list((run_dir / "vectors").glob("*.npz"))) == 2
    again = second.twin(0)
    assert len(fits) == 2 and np.array_equal(again.vectors.weights, twin.vectors.weights)


def test_other_fit_settings_are_another_key(fresh: tuple[str, Path, Path], fits: list[int]) -> None:
    spec, run_dir, fit = fresh
    _open(spec, run_dir, fit)
    SeeSystem.open(run_dir, model=spec, options=SeeOptions(fit_n=12, fit_data=str(fit)))
    assert len(fits) == 2 and len(list((run_dir / "vectors").glob("*.npz"))) == 2


def test_segment_reads_the_vectors_see_fitted(fresh: tuple[str, Path, Path], fits: list[int], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir, fit = fresh
    system = _open(spec, run_dir, fit)
    result = run_cli(capsys, "segment", "--model", spec, "--run", str(run_dir), "--method", "vectors", "--data",
                     str(fit), "--n", "2", "--fit-n", "16", "--fit-data", str(fit), "--baseline", "none", "--out",
                     str(tmp_path / "seg"), "--pictures", "0")
    assert result.code == 0, result.err
    assert len(fits) == 1  # see's fit only
    with np.load(tmp_path / "seg" / "vectors.npz") as saved:
        assert np.array_equal(saved["weights"], system.vectors.weights)


def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip at all")
    elif how == "pickle":
        np.savez(path, numbers=np.array([{"x": 1}], dtype=object), weights=np.zeros(1), bias=np.zeros(1),
                 mean=np.zeros(1), std=np.zeros(1), meta=np.array("{}"))
    else:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if how == "shape":
            arrays["weights"] = arrays["weights"][:, :-1]
        elif how == "nan":
            arrays["bias"] = np.full_like(arrays["bias"], np.nan)
        elif how == "key":
            meta = json.loads(str(arrays["meta"][()]))
            arrays["meta"] = np.array(json.dumps({**meta, "key": "0" * 20}))
        np.savez(path, **arrays)


@pytest.mark.parametrize("how", ["garbage", "pickle", "shape", "nan", "key"])
def test_a_damaged_cache_is_fitted_again_never_trusted(fresh: tuple[str, Path, Path], fits: list[int], how: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir, fit = fresh
    sound = _open(spec, run_dir, fit)
    (path,) = (run_dir / "vectors").glob("*.npz")
    _damage(path, how)
    capsys.readouterr()
    again = _open(spec, run_dir, fit)
    assert len(fits) == 2 and "fitting the concept vectors again" in capsys.readouterr().err
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(sound), _arrays(again), strict=True))
    _open(spec, run_dir, fit)  # the damaged file was replaced by a sound one
    assert len(fits) == 2
