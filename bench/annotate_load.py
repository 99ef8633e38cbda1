"""Load test of the annotation app: concurrent annotators against a local server, then a kill -9 mid-load.

Loopback only (the server binds 127.0.0.1 on a free port). Each annotator is a thread with its own HTTP
client acting as a browser would: GET /task (follow to the task page), read the form token and image ids
from the HTML, POST the answer. Phase 1: ANNOTATORS × PER_ANNOTATOR submissions *each* (default 20 × 500
= 10,000), then the database is checked: every 200-answered submission present exactly once, no annotator
on a unit twice; p50/p95 latency of the POSTs. Phase 2: the same load on a fresh database, the server
killed with SIGKILL after KILL_AFTER seconds and restarted; clients retry through the outage (bounded);
afterwards every submission answered 200 must be in the database. Stops by itself (a deadline per phase).
Run: .venv/bin/python bench/annotate_load.py [--annotators 20] [--per-annotator 500]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from annotate_fixtures import add_annotator, free_port, make_store  # noqa: E402

SERVER = ("import sys, uvicorn; from unitscope.annotate.app import create_app; "
          "from unitscope.annotate.store import Store; "
          "uvicorn.run(create_app(Store(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]), log_level='error')")
TOKEN = re.compile(r'name="form_token" value="([A-Za-z0-9_-]+)"')
MARKED = re.compile(r'name="marked" value="([A-Za-z0-9_-]+)"')


@dataclass
class Tally:
    accepted: list[int] = field(default_factory=list)  # assignment ids answered 200
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    other: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(db), str(port)], env=env)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def annotator(base: str, token: str, n: int, tally: Tally, deadline: float) -> None:
    headers = {"authorization": f"Bearer {token}"}
    done = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30, follow_redirects=True) as client:
        while done < n and time.monotonic() < deadline:
            try:
                page = client.get("/task")
                match = TOKEN.search(page.text)
                if match is None:
                    return  # nothing left for this annotator
                url = str(page.url.path)
                ids = MARKED.findall(page.text)
                # mark the first 45 images: the bench's units keep their catch images in the last 3 slots
                data = {"form_token": match.group(1), "concept": "tree", "category": "2", "marked": ids[:45]}
                start = time.perf_counter()
                r = client.post(url, data=data, follow_redirects=False)
                elapsed = time.perf_counter() - start
            except httpx.HTTPError:
                with tally.lock:
                    tally.errors += 1
                time.sleep(0.2)
                continue
            with tally.lock:
                tally.latencies.append(elapsed)
                if r.status_code == 200:
                    tally.accepted.append(int(url.rsplit("/", 1)[1]))
                    done += 1
                else:
                    tally.other[r.status_code] = tally.other.get(r.status_code, 0) + 1


def make_db(path: Path, units: int, per_unit: int, annotators: int) -> list[str]:
    """Units whose catch images sit in the last 3 slots (so a client marking the first 45 is accepted)."""
    store = make_store(path, n_units=units, per_unit=per_unit)
    return [add_annotator(store, f"annotator{k}") for k in range(annotators)]


def check(db: Path, tally: Tally) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT assignment_id FROM annotations").fetchall()
        twice = con.execute("SELECT COUNT(*) FROM (SELECT annotator_id, unit_id FROM assignments a JOIN annotations n "
                            "ON n.assignment_id = a.id GROUP BY annotator_id, unit_id HAVING COUNT(*) > 1)").fetchone()
    stored = [int(r[0]) for r in rows]
    accepted = set(tally.accepted)
    return {"answered_200": len(tally.accepted), "in_db": len(stored),
            "lost": len(accepted - set(stored)), "duplicated_200": len(tally.accepted) - len(accepted),
            "duplicated_in_db": len(stored) - len(set(stored)), "annotator_unit_twice": int(twice[0])}


def run_phase(args: argparse.Namespace, kill_after: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "load.db"
        tokens = make_db(db, args.per_annotator, args.annotators, args.annotators)
        port = free_port()
        server = serve(db, port)
        tally = Tally()
        deadline = time.monotonic() + args.max_seconds
        threads = [threading.Thread(target=annotator, args=(f"http://127.0.0.1:{port}", t, args.per_annotator,
                                                               tally, deadline)) for t in tokens]
        start, cpu0 = time.perf_counter(), cpu_seconds(server.pid)
        for t in threads:
            t.start()
        cpu = 0.0
        if kill_after is not None:
            time.sleep(kill_after)
            cpu += cpu_seconds(server.pid) - cpu0
            before = len(tally.accepted)
            server.send_signal(signal.SIGKILL)
            server.wait()
            print(f"  killed the server (SIGKILL) after {kill_after:.0f} s, {before} submissions answered 200")
            time.sleep(1.0)
            server = serve(db, port)
            cpu0 = cpu_seconds(server.pid)
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        cpu += cpu_seconds(server.pid) - cpu0
        server.send_signal(signal.SIGKILL)
        server.wait()
        result = check(db, tally)
        lat = np.array(tally.latencies) * 1000
        print(f"  {result}; client errors (connection) {tally.errors}; other statuses {tally.other}")
        print(f"  {len(lat)} POSTs in {wall:.1f} s wall, server CPU {cpu:.1f} s; "
              f"{result['answered_200'] / wall:.0f} accepted/s; latency p50 {np.percentile(lat, 50):.1f} ms, "
              f"p95 {np.percentile(lat, 95):.1f} ms, max {lat.max():.1f} ms")
        ok = result["lost"] == 0 and result["duplicated_in_db"] == 0 and result["annotator_unit_twice"] == 0
        print("  PASS: nothing lost or duplicated" if ok else "  FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--per-annotator", type=int, default=500, help="submissions per annotator")
    parser.add_argument("--kill-per-annotator", type=int, default=50, help="submissions each in the kill phase")
    parser.add_argument("--kill-after", type=float, default=4.0)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    print(f"phase 1: {args.annotators} annotators x {args.per_annotator} submissions each "
          f"({args.annotators * args.per_annotator} total), 127.0.0.1")
    run_phase(args, None)
    args.per_annotator = args.kill_per_annotator
    print(f"phase 2: {args.annotators} x {args.per_annotator} each, kill -9 after {args.kill_after} s, restart")
    run_phase(args, args.kill_after)


if __name__ == "__main__":
    main()
