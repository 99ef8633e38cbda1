"""Every kind of page a tiny run writes, opened in a real Chromium: it stands on the shared base template and
stylesheet, shows its pictures, logs no console error, and leaves a screenshot to look at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from unitscope.annotate.app import _templates
from unitscope.cli.main import main
from unitscope.demo import DemoConfig, run_demo

# page kind → its file, relative to the demo's output folder (ablate and annotate are added by the fixture)
PAGES: dict[str, str] = {
    "demo": "index.html", "report": "scene-net/report.html", "unit": "", "compare": "compare/report.html",
    "segment": "segment/report.html", "cam": "cam/report.html", "minimal": "minimal/report.html",
    "rf": "rf/report.html", "explain": "explain/explain.html", "ablate": "ablate/report.html",
    "annotate": "annotate/login.html",
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("look") / "demo"
    run_demo(DemoConfig.quick(out))
    try:
        main(["ablate", "--model", "sceneworld-scene", "--run", str(out / "scene-net"), "--layer", "conv5",
              "--n", "40", "--seeds", "2", "--out", str(out / "ablate")])
    except SystemExit as exit_:
        assert not exit_.code
    (out / "annotate").mkdir()
    (out / "annotate" / "login.html").write_text(_templates().get_template("login.html").render())
    found = {kind: out / path for kind, path in PAGES.items() if path}
    found["unit"] = sorted((out / "scene-net" / "units").rglob("*.html"))[0]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PAGES))
def test_each_page_kind_loads_on_the_shared_base(kind: str, pages: dict[str, Path], browser: Any,
                                                 tmp_path: Path) -> None:
    path = pages[kind]
    html = path.read_text()
    for src in re.findall(r'src="([^":#]+)"', html):  # every linked picture is there
        assert (path.parent / src).is_file(), src
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    assert page.locator('meta[name="generator"][content="unitscope"]').count() == 1
    assert page.locator("header#unitscope-header .brand").inner_text() == "unitscope"
    assert page.locator("body").get_attribute("data-page") == kind
    # the shared stylesheet is in force: the header's dark bar and the page background
    assert page.eval_on_selector("header#unitscope-header", "e => getComputedStyle(e).backgroundColor") \
        == "rgb(29, 39, 51)"
    assert page.eval_on_selector("body", "e => getComputedStyle(e).backgroundColor") == "rgb(244, 246, 248)"
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    broken = page.evaluate(
        "Array.from(document.images).filter(i => i.getAttribute('src') && i.complete && i.naturalWidth === 0).length")
    assert broken == 0
    assert "nan–nan" not in page.inner_text("body")
    page.screenshot(path=str(tmp_path / f"{kind}.png"), full_page=True)
    assert not errors, errors
