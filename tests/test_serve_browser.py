"""``unitscope serve`` with the real all-in-one system: an upload in Chromium (scene, a box, the box's unit page)
and 200 uploads from 4 clients at once (bounded: 503 with Retry-After, then 200)."""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_fixtures import TOKEN, free_port, scene_png, start_serve, tiny_run, token_file

CLASSES = ("street", "kitchen", "bedroom", "beach", "forest", "office", "bathroom", "living room", "mountain",
           "harbor")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real server on the tiny run (1 worker, 1 waiting place), with one fresh SceneWorld scene to upload."""
    run = tiny_run(tmp_path_factory)
    folder = tmp_path_factory.mktemp("serve-browser")
    image = folder / "scene.png"
    image.write_bytes(scene_png())
    port = free_port()
    proc = start_serve([run], port, token_file(folder), "--fit-n", "40", "--workers", "1", "--queue", "1")
    yield f"http://127.0.0.1:{port}", image
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) in (0, 130)  # Ctrl-C stops it by itself


def test_upload_shows_the_scene_and_a_box_that_leads_to_its_unit_page(browser: Any,
                                                                      served: tuple[str, Path]) -> None:
    base, image = served
    page = browser.new_page()
    page.set_default_timeout(120_000)  # the first upload waits for the run's system to open
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/")
    assert "sign in" in page.content().lower()
    page.goto(f"{base}/login?token={TOKEN}")
    page.wait_for_selector("#see-form")
    page.set_input_files("#image", str(image))
    page.click("#see-submit")
    page.wait_for_selector("#scene-label")
    assert page.inner_text("#scene-label") in CLASSES
    assert page.locator("#scene-list li").count() == 5
    boxes = page.locator("a.box[href]")
    assert boxes.count() >= 1
    for name in ("upload", "picture-segmentation img", "picture-cam img"):  # every picture loaded
        assert page.eval_on_selector(f"#{name}", "el => el.complete && el.naturalWidth > 0")
    label = boxes.first.get_attribute("data-label")
    href = boxes.first.get_attribute("href")
    assert href is not None and href.startswith("/runs/runA/units/")
    boxes.first.click()
    page.wait_for_url(f"{base}{href}")
    assert 'data-page="unit"' in page.content() and page.title()
    page.go_back()
    page.wait_for_selector("#boxes")
    assert label in page.inner_text("#boxes")
    page.goto(f"{base}/runs/runA/report.html")  # the report's own filter script runs under the CSP
    page.wait_for_selector(".card")
    assert not blocked, blocked


@pytest.mark.slow
def test_200_uploads_from_4_clients_are_all_answered_and_bounded(served: tuple[str, Path]) -> None:
    base, image = served
    data = image.read_bytes()
    latencies: list[float] = []
    refused: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {TOKEN}", "accept": "application/json"},
                          timeout=120) as http:
            for _ in range(50):
                start = time.perf_counter()
                for _attempt in range(200):
                    r = http.post("/see", files={"image": ("scene.png", data, "image/png")}, data={"run": "runA"})
                    if r.status_code != 503:
                        break
                    with lock:
                        refused.append(int(r.headers["retry-after"]))
                    time.sleep(0.05)  # sooner than Retry-After asks, to press the bound harder
                with lock:
                    if r.status_code == 200 and r.json()["boxes"] >= 1:
                        latencies.append(time.perf_counter() - start)
                    else:
                        failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(4)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - start
    assert not failures and len(latencies) == 200
    request = urllib.request.Request(f"{base}/status", headers={"authorization": f"Bearer {TOKEN}"})
    pool = json.loads(urllib.request.urlopen(request, timeout=10).read())["pool"]
    assert pool["peak"] <= pool["places"] == 2 and pool["taken"] == 0  # never more work than places
    assert pool["refused"] == len(refused) > 0 and all(r >= 1 for r in refused)
    q = statistics.quantiles(latencies, n=20)
    print(f"\n200 uploads, 4 clients, 1 worker + 1 waiting place: {wall:.1f} s, p50 "
          f"{statistics.median(latencies):.3f} s, p95 {q[18]:.3f} s, {len(refused)} answered 503 first")
