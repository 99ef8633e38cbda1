"""The annotation app in a real Chromium (Debian's, driven by Playwright): sign in, untick, name, submit."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from annotate_fixtures import add_annotator, free_port, make_store, start_server

from unitscope.annotate.store import Store


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Store, str, str]]:
    db = tmp_path / "a.db"
    store = make_store(db, n_units=3)
    token = add_annotator(store, "alice")
    port = free_port()
    server = start_server(db, port)
    yield store, f"http://127.0.0.1:{port}", token
    server.send_signal(signal.SIGKILL)
    server.wait()


def test_annotator_unticks_names_and_submits(browser: Any, served: tuple[Store, str, str], tmp_path: Path) -> None:
    store, base, token = served
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{base}/task")
    assert "sign in" in page.content().lower()  # 401 page points to /login
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_selector("#task-form")
    boxes = page.locator("input[name=marked]")
    assert boxes.count() == 60
    assert all(boxes.nth(i).is_checked() for i in range(60))  # every image starts ticked
    task = store.task(int(page.url.rsplit("/", 1)[1]))
    assert task is not None
    catch = {im.id for im in task.images if im.is_catch}
    real = [im.id for im in task.images if not im.is_catch]
    # first: leave a planted catch image ticked → refused with the reason shown
    page.fill("#concept", "dog")
    page.check("input[name=category][value='2']")
    page.click("#submit")
    page.wait_for_selector("#reason")
    assert "still ticked" in page.inner_text("#reason")
    page.screenshot(path=str(tmp_path / "refused.png"))
    # then untick the catches and 17 real images by clicking their thumbnails
    for image_id in [*catch, *real[:17]]:
        page.click(f"input[value='{image_id}'] + img")
    assert page.locator("input[name=marked]:checked").count() == 40
    page.fill("#concept", "Dog head")
    page.check("input[name=category][value='4']")
    page.click("#submit")
    page.wait_for_selector("#title")
    assert page.inner_text("#title") == "Recorded"
    [saved] = store.annotations()
    assert (saved.concept, saved.category) == ("dog head", 4)
    assert saved.precision == pytest.approx(40 / 57)
    # the next task: untick down to 9 marked → refused for too few images
    page.click("#next")
    page.wait_for_selector("#task-form")
    checked = page.locator("input[name=marked]:checked")
    while checked.count() > 9:
        checked.first.uncheck()
    page.fill("#concept", "sky")
    page.check("input[name=category][value='3']")
    page.click("#submit")
    page.wait_for_selector("#reason")
    assert "only 9 images are marked" in page.inner_text("#reason")
    assert page.locator("input[name=marked]:checked").count() == 9  # the annotator's ticks survive the refusal
    assert store.count("annotations") == 1
