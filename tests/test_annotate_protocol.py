"""The annotation tasks as the paper's protocol: masked regions, per-annotator image order, progress, task size.

The run is :mod:`annotate_world`'s: 6 colour units whose regions are computable by hand from the pixels.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from annotate_fixtures import add_annotator, free_port, make_store
from annotate_world import BoxesProbe, dissect_boxes, expected_region
from cli_helpers import assert_usage_error, run_cli
from fastapi.testclient import TestClient
from PIL import Image

from unitscope.annotate.app import create_app
from unitscope.annotate.protocol import image_order, order_seed
from unitscope.annotate.runview import read_run
from unitscope.annotate.security import token_hash
from unitscope.annotate.store import Store
from unitscope.annotate.tasks import TASK_STYLE, build_tasks


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a run that kept 60 top images per unit, one that kept 20)."""
    directory = tmp_path_factory.mktemp("boxes")
    return dissect_boxes(directory, topk=60), dissect_boxes(directory, topk=20)


def stored_images(db: Path) -> list[tuple[int, int, bool, np.ndarray]]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT u.unit, i.probe_index, i.is_catch, i.png FROM images i "
                           "JOIN units u ON u.id = i.unit_id").fetchall()
    return [(int(u), int(p), bool(c), np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
            for u, p, c, png in rows]


def test_served_images_show_the_region_with_the_rest_dimmed(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Every task image is the probe image inside the unit's thresholded map and 30 % of it (blended toward a
    dark shade) outside: the paper's masked segmentation, not receptive-field outlines."""
    view = read_run(runs[0])
    store = Store(tmp_path / "a.db")
    assert build_tasks(view, store, "0", data=BoxesProbe()) == 6
    thresholds = view.units["0"].set_index("unit")["threshold"]
    shade = np.asarray(TASK_STYLE.shade, np.float64)
    images = stored_images(tmp_path / "a.db")
    assert len(images) == 6 * 60 and sum(c for _, _, c, _ in images) == 6 * 3
    inside = outside = 0
    for unit, index, is_catch, served in images:
        if is_catch:
            continue
        original = BoxesProbe()[index].image
        region = expected_region(original, unit, float(thresholds[unit]))
        dimmed = (original * 0.3 + shade * 0.7).round()
        assert served.shape == original.shape
        assert (served[region] == original[region]).all()  # the region itself untouched (no outline drawn)
        assert (np.abs(served[~region] - dimmed[~region]) <= 1).all()  # everything else at 30 % (float32 rounding)
        inside, outside = inside + int(region.sum()), outside + int((~region).sum())
    assert inside > 1000 and outside > 1000  # both parts are really there


def test_a_run_with_too_few_top_images_is_refused(runs: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: None)
    db = tmp_path / "small.db"
    result = run_cli(capsys, "annotate", str(runs[1]), "--db", str(db), "--port", str(free_port()))
    assert_usage_error(result, "the run kept 20 top images per unit; the paper's tasks show 57 plus 3 catch "
                               "images: dissect again with --topk 60, or pass --allow-small-tasks")
    assert Store(db).count("units") == 0


def test_small_tasks_on_request_say_their_size(runs: tuple[Path, Path], tmp_path: Path) -> None:
    view = read_run(runs[1])
    store = Store(tmp_path / "a.db")
    with pytest.raises(Exception, match="--topk 60"):
        build_tasks(view, store, "0", data=BoxesProbe())
    assert build_tasks(view, store, "0", data=BoxesProbe(), allow_small=True, max_units=2) == 2
    assert store.count("images") == 2 * 23
    token = add_annotator(store, "alice")
    page = TestClient(create_app(store), base_url="http://127.0.0.1").get(
        "/task", headers={"authorization": f"Bearer {token}"})
    assert page.status_code == 200
    assert "23 images per task (the run kept 20 top images per unit; the paper&#39;s tasks show 60)" in page.text


def test_each_annotator_has_an_order_of_their_own_recorded_and_reproducible(tmp_path: Path) -> None:
    orders = []
    for attempt in ("a.db", "b.db"):  # the same names on a fresh store get the same orders again
        store = make_store(tmp_path / attempt, n_units=1, per_unit=3)
        store.set_meta("seed", "5")
        ids = {}
        for name in ("alice", "bob"):
            token = add_annotator(store, name)
            found = store.annotator_by_hash(token_hash(token))
            assert found is not None
            task = store.task(store.assign(found[0], f"form-{name}") or 0)
            assert task is not None
            assert task.seed == order_seed(name, "conv5", 0, "5")
            ids[name] = [im.slot for im in task.images]
            assert ids[name] == image_order(task.seed, 60)  # the order shown is the one the seed draws
        assert ids["alice"] != ids["bob"] and sorted(ids["alice"]) == sorted(ids["bob"]) == list(range(60))
        catches = {name: [k for k, slot in enumerate(ids[name]) if slot >= 57] for name in ids}
        assert catches["alice"] != catches["bob"]  # catch images sit at other positions for each
        assert [(o[2], o[3], o[4]) for o in store.orders()] == [
            ("alice", order_seed("alice", "conv5", 0, "5"), ids["alice"]),
            ("bob", order_seed("bob", "conv5", 0, "5"), ids["bob"])]
        orders.append(ids)
    assert orders[0] == orders[1]


def test_progress_counts_down_and_an_answer_moves_on(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.db", n_units=3, per_unit=3)
    token = add_annotator(store, "alice")
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    auth = {"authorization": f"Bearer {token}"}
    first = client.get("/task", headers=auth)
    assert "Unit 1 of 3, 180\nimages left to judge" in first.text
    task = store.task(int(str(first.url).rsplit("/", 1)[1]))
    assert task is not None
    marked = [im.id for im in task.images if not im.is_catch][:30]
    answered = client.post(f"/task/{task.assignment_id}", headers=auth, follow_redirects=False,
                           data={"form_token": task.form_token, "concept": "dog", "category": "2", "marked": marked})
    assert answered.status_code == 303 and answered.headers["location"] == f"/task?recorded={task.assignment_id}"
    second = client.get(answered.headers["location"], headers=auth)
    assert "/task/" in str(second.url) and int(str(second.url).split("/task/")[1].split("?")[0]) != task.assignment_id
    assert "Unit 2 of 3, 120\nimages left to judge" in second.text
    assert "Previous unit recorded as “dog” (precision 0.53)" in second.text


def test_summary_ends_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "a.db", n_units=1)
    token = add_annotator(store, "alice")
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    task = store.task(int(str(client.get("/task", headers={"authorization": f"Bearer {token}"}).url)
                          .rsplit("/", 1)[1]))
    assert task is not None
    store.record(task.assignment_id, task.form_token, "dog", 2, 0.5, "[]")
    result = run_cli(capsys, "annotations", "summary", str(tmp_path / "a.db"))
    assert result.code == 0 and result.out.endswith("0\n") and not result.out.endswith("\n\n")
