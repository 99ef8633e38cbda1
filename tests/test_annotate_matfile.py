"""The authors' .mat layout: a file written here by hand gives the hand-computed summary; export round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from annotate_fixtures import add_annotator, make_store
from cli_helpers import run_cli
from fastapi.testclient import TestClient

from unitscope.annotate.app import create_app
from unitscope.annotate.matfile import read_average_count, read_mat
from unitscope.annotate.sources import export_annotations, load_annotations
from unitscope.annotate.summary import summarize


def authors_file(path: Path) -> None:
    """Two layers in the authors' layout. pool1: 2 units; conv3: 3 units (one with an empty third slot)."""
    pool1 = np.empty((2, 9), dtype=object)
    pool1[0] = ["red", 6.0, 50 / 57, "red blob", 6.0, 48 / 57, "orange", 6.0, 40 / 57]
    pool1[1] = ["stripes", 5.0, 30 / 57, "grass", 3.0, 20 / 57, "lines", 5.0, 25 / 57]
    conv3 = np.empty((3, 9), dtype=object)
    conv3[0] = ["dog face", 4.0, 55 / 57, "dog", 2.0, 50 / 57, "dog head", 4.0, 52 / 57]
    conv3[1] = ["car", 2.0, 45 / 57, "wheel", 4.0, 40 / 57, "sky", 3.0, 10 / 57]
    conv3[2] = ["kitchen", 1.0, 57 / 57, "kitchen", 1.0, 54 / 57, "", np.nan, np.nan]
    cells = np.empty((2, 2), dtype=object)
    cells[0, 0], cells[0, 1], cells[1, 0], cells[1, 1] = pool1, "pool1", conv3, "conv3"
    scipy.io.savemat(str(path), {"layerAnnotation": cells, "layerAverageCount": np.zeros((2, 6))})


def test_mat_summary_is_the_hand_computed_table(tmp_path: Path) -> None:
    path = tmp_path / "unitAnnotation_test.mat"
    authors_file(path)
    annotations = read_mat(path)
    assert len(annotations) == 6 + 8
    table = summarize(annotations, precision=0.75)
    # pool1: 6 annotations: color 3, texture 2, region 1
    assert table["pool1"]["units"] == 2 and table["pool1"]["agree"] == 2
    assert table["pool1"]["category_share"]["color"] == pytest.approx(3 / 6)
    assert table["pool1"]["category_share"]["texture"] == pytest.approx(2 / 6)
    assert table["pool1"]["category_share"]["region"] == pytest.approx(1 / 6)
    # unit 0 colour, mean precision 46/57 = 0.807 ≥ 0.75 → colour detector; unit 1 texture, 25/57 → none
    assert table["pool1"]["detectors"] == {"scene": 0, "object": 0, "region": 0, "part": 0, "texture": 0, "color": 1}
    # conv3: 8 annotations: part 3, object 2, region 1, scene 2; units agreeing: 0 (part×2), 2 (scene×2)
    assert table["conv3"]["category_share"]["part"] == pytest.approx(3 / 8)
    assert table["conv3"]["category_share"]["scene"] == pytest.approx(2 / 8)
    assert table["conv3"]["agree"] == 2
    # unit 0: part, 157/171 = 0.918 → part; unit 1: no majority; unit 2: scene 111/114 → scene
    assert table["conv3"]["detectors"]["part"] == 1 and table["conv3"]["detectors"]["scene"] == 1
    assert sum(table["conv3"]["detectors"].values()) == 2
    strict = summarize(annotations, precision=0.95)
    assert sum(strict["conv3"]["detectors"].values()) == 1  # only the kitchen unit (0.974)


def test_cli_summary_json_on_mat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.mat"
    authors_file(path)
    result = run_cli(capsys, "annotations", "summary", str(path), "--json")
    assert result.code == 0, result.err
    table = json.loads(result.out)
    assert list(table) == ["pool1", "conv3"]
    assert table["conv3"]["units"] == 3
    assert set(table["pool1"]["category_share"]) == {"scene", "object", "region", "part", "texture", "color"}


def test_export_mat_then_summary_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    store = make_store(db, n_units=3, per_unit=2)
    tokens = [add_annotator(store, n) for n in ("x", "y")]
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    plan = {"x": [("sky", "3", 40), ("dog", "2", 20), ("red", "6", 57)], "y": [("sky", "3", 50), ("cat", "2", 30)]}
    for token, name in zip(tokens, ("x", "y"), strict=True):
        for concept, category, n in plan[name]:
            r = client.get("/task", headers={"authorization": f"Bearer {token}"}, follow_redirects=False)
            task = store.task(int(r.headers["location"].rsplit("/", 1)[1]))
            assert task is not None
            real = [im.id for im in task.images if not im.is_catch][:n]
            data = {"form_token": task.form_token, "concept": concept, "category": category, "marked": real}
            assert client.post(f"/task/{task.assignment_id}", data=data,
                               headers={"authorization": f"Bearer {token}"}).status_code == 200
    direct = summarize(store.annotations())
    for fmt in ("mat", "csv", "json"):
        out = tmp_path / f"export.{fmt}"
        assert run_cli(capsys, "annotations", "export", str(db), "--format", fmt, "--out", str(out)).code == 0
        assert summarize(load_annotations(out)) == direct, fmt
    back = read_mat(tmp_path / "export.mat")
    assert sorted((a.unit, a.concept, a.category, round(a.precision * 57)) for a in back) == sorted(
        (a.unit, a.concept, a.category, round(a.precision * 57)) for a in store.annotations())
    shares = read_average_count(tmp_path / "export.mat")
    assert shares is not None and shares.shape == (1, 6)
    assert shares[0].tolist() == pytest.approx([0, 2 / 5, 2 / 5, 0, 0, 1 / 5])  # object, region, colour
    export_annotations(store.annotations(), tmp_path / "again.mat", "mat")
    assert summarize(read_mat(tmp_path / "again.mat")) == direct
