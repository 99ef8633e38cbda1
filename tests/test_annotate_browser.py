"""The annotation app in a real Chromium (Debian's, driven by Playwright): sign in, untick, name, submit."""

from __future__ import annotations

import io
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from annotate_fixtures import add_annotator, free_port, make_store, start_server
from annotate_world import BoxesProbe, dissect_boxes, expected_region
from PIL import Image

from unitscope.annotate.runview import read_run
from unitscope.annotate.store import Store
from unitscope.annotate.tasks import build_tasks


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
    page.wait_for_selector("#recorded")  # straight on to the next unit, the answer confirmed in one line
    assert "recorded as “dog head” (precision 0.70)" in page.inner_text("#recorded")
    [saved] = store.annotations()
    assert (saved.concept, saved.category) == ("dog head", 4)
    assert saved.precision == pytest.approx(40 / 57)
    # the next task: untick down to 9 marked → refused for too few images
    page.wait_for_selector("#task-form")
    assert page.locator("input[name=marked]:checked").count() == 60
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


def sign_in(browser: Any, base: str, token: str) -> tuple[Any, Any]:
    """A fresh browser context (its own cookie jar) signed in with ``token``, on its first task page."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_selector("#task-form")
    return context, page


def shown_order(page: Any) -> list[str]:
    return [str(v) for v in page.locator("input[name=marked]").evaluate_all("els => els.map(e => e.value)")]


def progress(page: Any) -> tuple[int, int, int]:
    found = re.fullmatch(r"Unit (\d+) of (\d+), (\d+) images left to judge", " ".join(page.inner_text(
        "#progress").split()))
    assert found is not None, page.inner_text("#progress")
    return int(found[1]), int(found[2]), int(found[3])


def test_two_annotators_see_masked_regions_in_orders_of_their_own(browser: Any, tmp_path: Path) -> None:
    """The paper's protocol in a real browser: two annotators, a real run's masked regions, progress, zoom."""
    run = dissect_boxes(tmp_path, topk=60)
    view = read_run(run)
    db = tmp_path / "a.db"
    store = Store(db)
    store.set_meta("per_unit", "3")
    assert build_tasks(view, store, "0", max_units=2, data=BoxesProbe()) == 2
    alice, bob = add_annotator(store, "alice"), add_annotator(store, "bob")
    thresholds = view.units["0"].set_index("unit")["threshold"]
    port = free_port()
    server = start_server(db, port)
    base = f"http://127.0.0.1:{port}"
    try:
        a_context, a_page = sign_in(browser, base, alice)
        assert progress(a_page) == (1, 2, 120)
        a_task = store.task(int(a_page.url.rsplit("/", 1)[1]))
        assert a_task is not None
        alice_order = shown_order(a_page)
        assert alice_order == [im.id for im in a_task.images]
        # a served image: the region as the unit's map cut at its threshold, the rest dimmed
        real = next(im for im in a_task.images if not im.is_catch)
        with sqlite3.connect(db) as con:
            (index,) = con.execute("SELECT probe_index FROM images WHERE id = ?", (real.id,)).fetchone()
        reply = a_page.request.get(f"{base}/image/{real.id}")
        assert reply.status == 200
        served = np.asarray(Image.open(io.BytesIO(reply.body())).convert("RGB")).astype(int)
        original = BoxesProbe()[int(index)].image.astype(int)
        region = expected_region(BoxesProbe()[int(index)].image, a_task.unit, float(thresholds[a_task.unit]))
        assert region.any() and (~region).any()
        assert (served[region] == original[region]).all()
        outside_served, outside_original = served[~region], original[~region]
        assert (outside_served <= outside_original * 0.3 + 21).all()  # dimmed to 30 % (+ 0.7 of the shade)
        assert outside_served.mean() < 0.6 * outside_original.mean()
        # click to zoom: the enlarged image fills the screen, a click closes it
        position = alice_order.index(real.id) + 1
        assert not a_page.is_visible(f"#zoom-{position}")
        a_page.click(f"#cell-{position} .zoom-link")
        assert a_page.is_visible(f"#zoom-{position} img")
        a_page.screenshot(path=str(tmp_path / "zoomed.png"))
        a_page.click(f"#zoom-{position} a")
        assert not a_page.is_visible(f"#zoom-{position}")
        # alice answers (catches unticked): the next unit opens at once and the progress line counts down
        for im in a_task.images:
            if im.is_catch:
                a_page.click(f"input[value='{im.id}'] + img")
        a_page.fill("#concept", "blue box")
        a_page.check("input[name=category][value='2']")
        a_page.click("#submit")
        a_page.wait_for_selector("#recorded")
        assert progress(a_page) == (2, 2, 60)
        assert int(a_page.url.split("/task/")[1].split("?")[0]) != a_task.assignment_id
        # bob is given the unit alice did first: same images, his own order and catch positions
        b_context, b_page = sign_in(browser, base, bob)
        b_task = store.task(int(b_page.url.rsplit("/", 1)[1]))
        assert b_task is not None and b_task.unit == a_task.unit
        bob_order = shown_order(b_page)
        assert sorted(bob_order) == sorted(alice_order) and bob_order != alice_order
        catches = {im.id for im in a_task.images if im.is_catch}
        assert [k for k, i in enumerate(bob_order) if i in catches] != \
               [k for k, i in enumerate(alice_order) if i in catches]
        assert {o[2] for o in store.orders()} == {"alice", "bob"}  # each order recorded with its seed
        a_context.close()
        b_context.close()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
