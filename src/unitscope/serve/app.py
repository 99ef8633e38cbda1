"""The serve web app: FastAPI routes over the runs given at start, their comparisons and uploads.

Every route but the login needs the server's token (the HttpOnly SameSite=Strict cookie set by ``/login``, or
``Authorization: Bearer``). Run files come only from the allow-lists built at start (:mod:`.files`); uploads
are capped, decoded under a pixel limit and worked on in a bounded pool (:mod:`.uploads`, :mod:`.pool`).
Errors are one short page, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from unitscope.errors import UsageError
from unitscope.serve.compare_cache import CompareCache
from unitscope.serve.files import FileList
from unitscope.serve.pool import Busy, WorkPool
from unitscope.serve.results import Result, Results
from unitscope.serve.security import COOKIE, headers, same_token, template_script_hashes
from unitscope.serve.sight_adapter import Seer, SightView
from unitscope.serve.uploads import read_upload

LOG = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")
MAX_FORM = 4096
MB = 1024 * 1024


@dataclass
class ServeSettings:
    """The server's limits."""

    max_upload: int = 20 * MB
    max_pixels: int = 40_000_000
    workers: int = 1
    waiting: int = 3
    secure_cookie: bool = False


@dataclass
class ServedRun:
    """One run as served: its URL name, folder, allow-listed files and all-in-one system."""

    name: str
    directory: Path
    files: FileList
    seer: Seer
    layers: tuple[str, ...] = field(default_factory=tuple)


def _templates() -> jinja2.Environment:
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES),
                                  jinja2.PackageLoader("unitscope.report", "templates")])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    for name in ("home.html", "message.html", "login.html", "sight.html"):
        env.get_template(name)
    return env


class ServeApp:
    """Routes' shared state."""

    def __init__(self, runs: list[ServedRun], token: str, settings: ServeSettings) -> None:
        self.runs = {run.name: run for run in runs}
        self.token = token
        self.settings = settings
        self.env = _templates()
        self.pool = WorkPool(settings.workers, settings.waiting)
        self.results = Results()
        self.compares = CompareCache({run.name: run.directory for run in runs}, self.pool)
        self.run_headers = headers(template_script_hashes())
        self.headers = headers()

    def page(self, template: str, status: int = 200, extra: dict[str, str] | None = None,
             **context: object) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers={**self.headers, **(extra or {})})

    def require(self, request: Request) -> None:
        """401 unless the request carries the server's token."""
        token = request.cookies.get(COOKIE)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not same_token(token, self.token):
            raise HTTPException(401, "sign in with the server's token at /login (printed when it started)")

    def signed_in(self, target: str) -> Response:
        response = RedirectResponse(target, status_code=303, headers=self.headers)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", secure=self.settings.secure_cookie,
                            max_age=7 * 24 * 3600, path="/")
        return response

    def served(self, files: FileList | None, path: str) -> Response:
        found = files.read(path) if files is not None else None
        if found is None:
            raise HTTPException(404, "no such page in the runs this server was given")
        body, media = found
        return Response(body, media_type=media, headers=self.run_headers)

    def run(self, name: str) -> ServedRun:
        found = self.runs.get(name)
        if found is None:
            raise HTTPException(404, "no such run on this server")
        return found

    def sight_page(self, key: str, result: Result) -> HTMLResponse:
        run = self.runs[result.run]
        boxes = []
        for b in result.view.boxes:
            units = [{"layer": u.layer, "unit": u.unit, "label": u.label, "detector": u.detector,
                      "href": _unit_href(run, u.layer, u.unit)} for u in b.units]
            boxes.append({"label": b.label, "score": b.score, "style": _box_style(b.box), "units": units,
                          "href": next((u["href"] for u in units if u["href"]), None)})
        captions = {"segmentation": "segmentation (the run's concept vectors)",
                    "cam": f"class activation map of {result.view.scenes[0].label if result.view.scenes else '?'} "
                           f"({result.view.cam})"}
        pictures = [(name, captions.get(name, name)) for name in result.view.pictures if name != "image"]
        return self.page("sight.html", key=key, result=result, run=run, scenes=result.view.scenes, boxes=boxes,
                         pictures=pictures, legend=result.view.legend)


def _box_style(box: tuple[float, float, float, float]) -> str:
    x0, y0, x1, y1 = box
    return (f"position:absolute;border:2px solid #e4572e;box-sizing:border-box;left:{100 * x0:.2f}%;"
            f"top:{100 * y0:.2f}%;width:{100 * (x1 - x0):.2f}%;height:{100 * (y1 - y0):.2f}%")


def _unit_href(run: ServedRun, layer: str, unit: int) -> str | None:
    path = f"units/{layer}/{unit}.html"
    return f"/runs/{run.name}/{path}" if path in run.files else None


def _check_origin(request: Request) -> None:
    """Refuse cross-site posts: an Origin (or Referer) header must name this host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is not None and urlsplit(source).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site posts are refused")


async def _login_form(request: Request) -> str:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form url-encoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HTTPException(413, "the form is too large")
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=4)).get("token", "").strip()
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form could not be read") from None


def create_app(runs: list[ServedRun], token: str, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``runs`` to whoever holds ``token``."""
    state = ServeApp(runs, token, settings or ServeSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.pool.shutdown()
        state.compares.close()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, debug=False, lifespan=lifespan)
    app.state.serve = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return state.page("message.html", exc.status_code, extra=dict(exc.headers or {}), title=f"{exc.status_code}",
                          text=str(exc.detail))

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> Response:
        LOG.exception("request failed")
        return state.page("message.html", 500, title="500", text="internal error; the server's log says more")

    @app.get("/login")
    def login_page(token: str | None = None) -> Response:
        if token is None:
            return state.page("login.html")
        if not same_token(token, state.token):
            raise HTTPException(401, "this token is not the server's; check it and sign in again")
        return state.signed_in("/")

    @app.post("/login")
    async def login(request: Request) -> Response:
        _check_origin(request)
        if not same_token(await _login_form(request), state.token):
            raise HTTPException(401, "this token is not the server's; check it and sign in again")
        return state.signed_in("/")

    @app.get("/")
    def home(request: Request) -> Response:
        state.require(request)
        names = list(state.runs)
        return state.page("home.html", runs=list(state.runs.values()), names=names,
                          limit_mb=state.settings.max_upload // MB)

    @app.get("/runs/{name}/{path:path}")
    def run_file(name: str, path: str, request: Request) -> Response:
        state.require(request)
        return state.served(state.run(name).files, path)

    @app.get("/compare")
    async def compare(request: Request, a: str = "", b: str = "") -> Response:
        state.require(request)
        state.run(a), state.run(b)
        if a == b:
            raise HTTPException(422, "choose two different runs to compare")
        try:
            found = await state.compares.compute((a, b))
        except Busy as busy:
            raise HTTPException(503, f"the server is busy; try again in {busy.retry_after} s",
                                headers={"Retry-After": str(busy.retry_after)}) from None
        if found.files is None:
            raise HTTPException(409, f"these runs cannot be compared: {found.refusal}")
        return RedirectResponse(f"/compare/{a}/{b}/report.html", status_code=303, headers=state.headers)

    @app.get("/compare/{a}/{b}/{path:path}")
    def compare_file(a: str, b: str, path: str, request: Request) -> Response:
        state.require(request)
        found = state.compares.get((a, b))
        return state.served(found.files if found is not None else None, path)

    @app.post("/see")
    async def see(request: Request) -> Response:
        state.require(request)
        _check_origin(request)
        try:
            place = state.pool.reserve()
        except Busy as busy:
            raise HTTPException(503, f"the server is busy with other images; try again in {busy.retry_after} s",
                                headers={"Retry-After": str(busy.retry_after)}) from None
        try:
            upload = await read_upload(request, state.settings.max_upload, state.settings.max_pixels)
            run = state.runs.get(upload.run) if upload.run else next(iter(state.runs.values()))
            if run is None:
                raise HTTPException(422, "choose one of the runs this server was given")
            start = time.perf_counter()
            future = place.submit(lambda: run.seer.see(upload.image, upload.filename))
        finally:
            place.close()
        try:
            view: SightView = await asyncio.wrap_future(future)
        except UsageError as err:  # the run's model cannot be reopened as given: the user's one line
            raise HTTPException(409, f"run {run.name} cannot see images: {err}") from None
        key = state.results.add(Result(run.name, upload.filename, time.perf_counter() - start, view))
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"result": f"/see/{key}", "scenes": [s.label for s in view.scenes],
                                 "boxes": len(view.boxes)}, headers=state.headers)
        return RedirectResponse(f"/see/{key}", status_code=303, headers=state.headers)

    @app.get("/see/{key}")
    def sight(key: str, request: Request) -> Response:
        state.require(request)
        result = state.results.get(key)
        if result is None:
            raise HTTPException(404, "no such result (results are kept for the newest uploads only)")
        return state.sight_page(key, result)

    @app.get("/see/{key}/{picture}.png")
    def picture(key: str, picture: str, request: Request) -> Response:
        state.require(request)
        result = state.results.get(key)
        png = result.view.pictures.get(picture) if result is not None else None
        if png is None:
            raise HTTPException(404, "no such picture")
        return Response(png, media_type="image/png", headers={**state.headers, "Cache-Control": "private, max-age=600"})

    @app.get("/status")
    def status(request: Request) -> Response:
        state.require(request)
        return JSONResponse({"pool": state.pool.snapshot(), "runs": list(state.runs)}, headers=state.headers)

    return app
