"""A labelling round through the real app in Chromium: Playwright acting as one annotator.

The answers (concept, category, which thumbnails — by their position on the page — to untick) are
decided by a person looking at each unit's task page; they are given in a JSON file
``{"<unit>": {"concept": ..., "category": 1-6, "untick": [positions]}}``. The script signs in, opens each
task in turn, unticks those thumbnails by clicking them, types the concept, picks the category, submits,
and saves a screenshot of every task page before submitting.
Run: .venv/bin/python bench/annotate_round.py BASE_URL TOKEN ANSWERS.json SCREENSHOT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    base, token, answers_path, shots = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    answers = json.loads(answers_path.read_text())
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/login")
        page.fill("#token", token)
        page.click("#signin")
        while page.locator("#task-form").count():
            task_no = page.url.rsplit("/", 1)[1]
            answer = answers.get(task_no)
            if answer is None:
                print(f"no answer prepared for task {task_no}; stopping")
                break
            boxes = page.locator("input[name=marked]")
            for position in answer["untick"]:
                boxes.nth(position).uncheck()
            page.fill("#concept", answer["concept"])
            page.check(f"input[name=category][value='{answer['category']}']")
            page.screenshot(path=str(shots / f"task{task_no}.png"), full_page=True)
            page.click("#submit")
            page.wait_for_load_state()
            if page.locator("#reason").count():
                print(f"task {task_no} refused: {page.inner_text('#reason')}")
                break
            print(f"task {task_no}: {page.inner_text('#text')}")
            page.goto(f"{base}/task")
        browser.close()


if __name__ == "__main__":
    main()
