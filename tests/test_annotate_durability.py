"""A kill -9 of the server loses no answer it accepted, and a restart resumes open assignments."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from annotate_fixtures import add_annotator, free_port, make_store, start_server

from unitscope.annotate.store import Store


def submit_one(client: httpx.Client, store: Store, token: str) -> tuple[int, int]:
    headers = {"authorization": f"Bearer {token}"}
    r = client.get("/task", headers=headers, follow_redirects=False)
    assignment = int(r.headers["location"].rsplit("/", 1)[1])
    task = store.task(assignment)
    assert task is not None
    real = [im.id for im in task.images if not im.is_catch][:20]
    data = {"form_token": task.form_token, "concept": "tree", "category": "2", "marked": real}
    return assignment, client.post(f"/task/{assignment}", data=data, headers=headers).status_code


def test_kill_9_after_200_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = make_store(db, n_units=12, per_unit=3)
    tokens = [add_annotator(store, f"a{i}") for i in range(3)]
    port = free_port()
    server = start_server(db, port)
    accepted = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for k in range(15):
                assignment, status = submit_one(client, store, tokens[k % 3])
                assert status == 200
                accepted.append(assignment)
            # an open (unanswered) assignment, to be resumed after the restart
            open_r = client.get("/task", headers={"authorization": f"Bearer {tokens[0]}"}, follow_redirects=False)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    reopened = Store(db)
    assert reopened.count("annotations") == 15
    answered = set(accepted)
    assert len(answered) == 15
    server = start_server(db, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            again = client.get("/task", headers={"authorization": f"Bearer {tokens[0]}"}, follow_redirects=False)
            assert again.headers["location"] == open_r.headers["location"]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
