"""A kill -9 of the server loses no answer it accepted, and a restart resumes open assignments.

A kill -9 alone cannot tell a durable commit from one left in the OS page cache (both survive the death of
the process), so the store's connections are also checked for ``synchronous=FULL`` (or EXTRA) in WAL mode:
with WAL, FULL syncs the log at every commit, before the server replies.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
from annotate_fixtures import add_annotator, free_port, make_store, start_server

from unitscope.annotate.protocol import N_REAL
from unitscope.annotate.store import Store

SYNCHRONOUS_FULL, SYNCHRONOUS_EXTRA = 2, 3  # PRAGMA synchronous answers with the level's number


def submit_one(client: httpx.Client, store: Store, token: str, k: int) -> tuple[int, int, tuple[object, ...]]:
    """Answer the annotator's next task, the k-th answer (its own concept and images); the row it should leave."""
    headers = {"authorization": f"Bearer {token}"}
    r = client.get("/task", headers=headers, follow_redirects=False)
    assignment = int(r.headers["location"].rsplit("/", 1)[1])
    task = store.task(assignment)
    assert task is not None
    real = [im.id for im in task.images if not im.is_catch][:20 + k]
    category = 1 + k % 6
    data = {"form_token": task.form_token, "concept": f"tree {k}", "category": str(category), "marked": real}
    status = client.post(f"/task/{assignment}", data=data, headers=headers).status_code
    return assignment, status, (assignment, f"tree {k}", category, (20 + k) / N_REAL, json.dumps(sorted(real)))


def test_store_connections_commit_durably(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.db", n_units=1)
    with closing(store._connect()) as db:  # the connection every read and write of the store (and server) uses
        assert db.execute("PRAGMA synchronous").fetchone()[0] in (SYNCHRONOUS_FULL, SYNCHRONOUS_EXTRA)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_kill_9_right_after_acknowledged_writes_keeps_exactly_those_rows(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = make_store(db, n_units=12, per_unit=3)
    tokens = [add_annotator(store, f"a{i}") for i in range(3)]
    port = free_port()
    server = start_server(db, port)
    expected = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for k in range(15):
                _, status, row = submit_one(client, store, tokens[k % 3], k)
                assert status == 303  # acknowledged: on to the next unit
                expected.append(row)
            # the last acknowledged write: an open (unanswered) assignment, to be resumed after the restart
            open_r = client.get("/task", headers={"authorization": f"Bearer {tokens[0]}"}, follow_redirects=False)
            assert open_r.status_code in (302, 303, 307)
            server.send_signal(signal.SIGKILL)  # at once: no request in between, no shutdown
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    open_id = int(open_r.headers["location"].rsplit("/", 1)[1])
    with closing(sqlite3.connect(db)) as raw:
        rows = raw.execute("SELECT assignment_id, concept, category, precision, marked FROM annotations "
                           "ORDER BY id").fetchall()
        assignments = raw.execute("SELECT id, done FROM assignments ORDER BY id").fetchall()
    assert rows == expected  # every acknowledged answer, with its own concept, category and images, in order
    assert assignments == sorted([(row[0], 1) for row in expected] + [(open_id, 0)])
    server = start_server(db, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            again = client.get("/task", headers={"authorization": f"Bearer {tokens[0]}"}, follow_redirects=False)
            assert again.headers["location"] == open_r.headers["location"]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
