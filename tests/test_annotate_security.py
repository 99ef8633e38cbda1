"""The app's guards: tokens, ownership, no paths from clients, bounded fields, the paper's refusal rules."""

from __future__ import annotations

import builtins
import socket
from pathlib import Path

import pytest
from annotate_fixtures import add_annotator, make_store
from cli_helpers import assert_usage_error, run_cli
from fastapi.testclient import TestClient

from unitscope.annotate.app import create_app
from unitscope.annotate.store import Store, Task


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Store, TestClient, str, str]:
    store = make_store(tmp_path / "a.db", n_units=3)
    alice, bob = add_annotator(store, "alice"), add_annotator(store, "bob")
    client = TestClient(create_app(store), base_url="http://127.0.0.1", raise_server_exceptions=False)
    return store, client, alice, bob


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def open_task(client: TestClient, store: Store, token: str) -> Task:
    r = client.get("/task", headers=bearer(token), follow_redirects=False)
    assert r.status_code == 303
    task = store.task(int(r.headers["location"].rsplit("/", 1)[1]))
    assert task is not None
    return task


def answer(task: Task, n_real: int = 30, catches: int = 0, concept: str = "dog", category: str = "2") -> dict:
    real = [im.id for im in task.images if not im.is_catch][:n_real]
    catch = [im.id for im in task.images if im.is_catch][:catches]
    return {"form_token": task.form_token, "concept": concept, "category": category, "marked": real + catch}


def test_no_token_is_401_and_bad_token_is_401(setup: tuple[Store, TestClient, str, str]) -> None:
    store, client, alice, _ = setup
    for path in ("/task", "/task/1", "/image/" + "A" * 22):
        assert client.get(path).status_code == 401
    assert client.get("/task", headers=bearer("x" * 43)).status_code == 401
    task = open_task(client, store, alice)
    assert client.post(f"/task/{task.assignment_id}", data=answer(task)).status_code == 401
    assert store.count("annotations") == 0


def test_another_annotators_task_and_images_are_refused(setup: tuple[Store, TestClient, str, str]) -> None:
    store, client, alice, bob = setup
    task = open_task(client, store, alice)
    assert client.get(f"/task/{task.assignment_id}", headers=bearer(bob)).status_code == 403
    assert client.post(f"/task/{task.assignment_id}", data=answer(task), headers=bearer(bob)).status_code == 403
    # bob has no assignment on that unit yet... give him another unit, then try alice's image
    open_task(client, store, bob)
    assert client.get(f"/image/{task.images[0].id}", headers=bearer(alice)).status_code == 200
    bob_task = open_task(client, store, bob)
    if bob_task.unit != task.unit:
        assert client.get(f"/image/{task.images[0].id}", headers=bearer(bob)).status_code == 404
    assert store.count("annotations") == 0


def test_paths_in_any_field_are_refused_and_nothing_is_read(setup: tuple[Store, TestClient, str, str],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, client, alice, _ = setup
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", spy)
    task = open_task(client, store, alice)
    url = f"/task/{task.assignment_id}"
    bad_values = ["../../secret.txt", str(secret), "..\\..\\secret.txt", "%2e%2e%2fsecret.txt", "/etc/passwd"]
    for bad in bad_values:
        for field in ("concept", "category", "marked", "form_token"):
            data = answer(task)
            data[field] = [bad] if field == "marked" else bad
            r = client.post(url, data=data, headers=bearer(alice))
            assert 400 <= r.status_code < 500, (field, bad, r.status_code)
            assert "TOP-SECRET" not in r.text
        for path in (f"/image/{bad}", f"/image/..%2f..%2f{secret.name}", f"/task/{bad}"):
            r = client.get(path, headers=bearer(alice))
            assert 400 <= r.status_code < 500, (path, r.status_code)
            assert "TOP-SECRET" not in r.text
    assert str(secret) not in opened
    assert store.count("annotations") == 0


def test_oversized_fields_and_bodies_are_refused(setup: tuple[Store, TestClient, str, str]) -> None:
    store, client, alice, _ = setup
    task = open_task(client, store, alice)
    url = f"/task/{task.assignment_id}"
    assert client.post(url, data=answer(task, concept="a" * 41), headers=bearer(alice)).status_code == 422
    assert client.post(url, data=answer(task, concept="a" * 100_000), headers=bearer(alice)).status_code == 413
    many = answer(task)
    many["marked"] = many["marked"] * 3  # repeated ids, and more fields than a task has
    assert client.post(url, data=many, headers=bearer(alice)).status_code in (400, 422)
    assert client.post(url, data=answer(task, category="7"), headers=bearer(alice)).status_code == 422
    assert client.post(url, data=answer(task, concept="<script>"), headers=bearer(alice)).status_code == 422
    assert store.count("annotations") == 0


def test_refusal_rules_then_acceptance(setup: tuple[Store, TestClient, str, str]) -> None:
    store, client, alice, _ = setup
    task = open_task(client, store, alice)
    url = f"/task/{task.assignment_id}"
    few = client.post(url, data=answer(task, n_real=9), headers=bearer(alice))
    assert few.status_code == 422 and "only 9 images are marked" in few.text
    caught = client.post(url, data=answer(task, n_real=40, catches=1), headers=bearer(alice))
    assert caught.status_code == 422 and "still ticked" in caught.text
    assert store.count("annotations") == 0 and store.count("refusals") == 2
    ok = client.post(url, data=answer(task, n_real=38), headers=bearer(alice))
    assert ok.status_code == 200
    [saved] = store.annotations()
    assert saved.precision == pytest.approx(38 / 57) and saved.concept == "dog" and saved.category == 2
    assert client.post(url, data=answer(task), headers=bearer(alice)).status_code == 409
    assert store.count("annotations") == 1


def test_cross_site_posts_and_stale_form_tokens_are_refused(setup: tuple[Store, TestClient, str, str]) -> None:
    store, client, alice, _ = setup
    task = open_task(client, store, alice)
    url = f"/task/{task.assignment_id}"
    evil = {**bearer(alice), "origin": "http://evil.example"}
    assert client.post(url, data=answer(task), headers=evil).status_code == 403
    forged = {**answer(task), "form_token": "B" * 22}
    assert client.post(url, data=forged, headers=bearer(alice)).status_code == 403
    assert store.count("annotations") == 0


def test_no_unit_twice_and_three_annotations_per_unit(tmp_path: Path) -> None:
    store = make_store(tmp_path / "b.db", n_units=2, per_unit=3)
    tokens = [add_annotator(store, f"a{i}") for i in range(4)]
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    seen: dict[str, list[int]] = {t: [] for t in tokens}
    for _ in range(3):
        for t in tokens:
            r = client.get("/task", headers=bearer(t), follow_redirects=False)
            if r.status_code != 303:
                continue
            task = store.task(int(r.headers["location"].rsplit("/", 1)[1]))
            assert task is not None
            assert client.post(f"/task/{task.assignment_id}", data=answer(task), headers=bearer(t)).status_code == 200
            seen[t].append(task.unit)
    assert all(len(units) == len(set(units)) for units in seen.values())
    per_unit = [sum(u in units for units in seen.values()) for u in range(2)]
    assert per_unit == [3, 3]
    assert store.count("annotations") == 6


def test_errors_show_no_traceback(setup: tuple[Store, TestClient, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, client, alice, _ = setup

    def broken(*args: object) -> None:
        raise RuntimeError("secret internals at /srv/x.py")

    monkeypatch.setattr(store, "assign", broken)
    r = client.get("/task", headers=bearer(alice))
    assert r.status_code == 500
    assert "Traceback" not in r.text and "secret internals" not in r.text


def test_a_busy_port_is_one_line_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another program listens on the port: one line, exit 2, before the run is read or a database made."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")  # never read: the port is checked first
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(capsys, "annotate", str(run), "--port", str(port))
    assert_usage_error(result, f"cannot listen on 127.0.0.1:{port} (Address already in use)")
    assert [p.name for p in run.iterdir()] == ["summary.json"]
