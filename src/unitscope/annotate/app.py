"""The annotation web app: FastAPI routes over the :class:`~unitscope.annotate.store.Store`.

Every route but the login needs an annotator token (HttpOnly SameSite=Strict cookie set by ``/login``,
or ``Authorization: Bearer``). Posts carry the task's own form token and must come from this origin
(CSRF). Images are fetched by opaque id, checked against the annotator's own assignments; nothing a
client sends is ever used as a path. Errors are one short HTML message, never a traceback.

A task page shows where the annotator stands ("unit 3 of 40, 180 images left to judge"); an accepted answer
moves straight on to the next unit (the page then confirms the previous answer in one line).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from unitscope.annotate.protocol import CATEGORY_TITLES, TASK_IMAGES, clean_concept, refusal
from unitscope.annotate.security import (
    COOKIE,
    new_opaque_id,
    same_secret,
    token_hash,
    valid_opaque,
    valid_token,
)
from unitscope.annotate.store import Store, Task
from unitscope.errors import UsageError

LOG = logging.getLogger(__name__)
MAX_BODY = 16 * 1024
MAX_FIELDS = 80
TEMPLATES = Path(__file__).with_name("templates")
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
                                      "form-action 'self'; frame-ancestors 'none'",
           "Cache-Control": "no-store"}


def _templates() -> jinja2.Environment:
    # the app's pages first, then the shared base template and stylesheet of every unitscope page
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), jinja2.PackageLoader("unitscope.report",
                                                                                             "templates")])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    for name in ("task.html", "message.html", "login.html"):
        env.get_template(name)  # load every template at start, not on a request
    return env


class AnnotationApp:
    """Routes and their shared state (store, templates, the layer served)."""

    def __init__(self, store: Store, layer: str | None = None, secure_cookie: bool = False) -> None:
        self.store = store
        self.layer = layer
        self.secure_cookie = secure_cookie
        self.env = _templates()

    def page(self, template: str, status: int = 200, **context: object) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=status, headers=HEADERS)

    def annotator(self, request: Request) -> tuple[int, str]:
        """The caller's (id, name) from the cookie or bearer token; 401 without a valid one."""
        token = request.cookies.get(COOKIE)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not valid_token(token):
            raise HTTPException(401, "sign in with your annotator token at /login")
        found = self.store.annotator_by_hash(token_hash(str(token)))
        if found is None:
            raise HTTPException(401, "this token is not known; ask for a new one")
        return found

    def owned_task(self, assignment_id: int, annotator_id: int) -> Task:
        task = self.store.task(assignment_id)
        if task is None:
            raise HTTPException(404, "no such task")
        if task.annotator_id != annotator_id:
            raise HTTPException(403, "this task belongs to another annotator")
        return task

    def task_page(self, task: Task, name: str, status: int = 200, reason: str | None = None,
                  marked: set[str] | None = None, concept: str = "", category: int | None = None,
                  recorded: str | None = None) -> HTMLResponse:
        progress = self.store.progress(task.annotator_id, self.layer)
        n_catch = sum(im.is_catch for im in task.images)
        small = len(task.images) < TASK_IMAGES
        return self.page("task.html", status, name=name, task=task, reason=reason, categories=CATEGORY_TITLES,
                         marked=marked, concept=concept, category=category, progress=progress, recorded=recorded,
                         size_note=(f"{len(task.images)} images per task (the run kept "
                                    f"{len(task.images) - n_catch} top images per unit; the paper's tasks "
                                    f"show {TASK_IMAGES})") if small else None)

    def recorded_line(self, previous: str | None, annotator_id: int, name: str) -> str | None:
        """One line confirming the answer just recorded (``?recorded=<assignment>``), or None."""
        if previous is None or not previous.isdigit() or len(previous) > 12:
            return None
        found = self.store.answer(int(previous), annotator_id)
        if found is None:
            return None
        concept, precision = found
        return f"Previous unit recorded as “{concept}” (precision {precision:.2f}). Thank you, {name}."


def _check_origin(request: Request) -> None:
    """Refuse cross-site posts: an Origin (or Referer) header must name this host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return  # non-browser clients; the cookie is SameSite=Strict and the form token is still required
    if urlsplit(source).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site form posts are refused")


async def _form(request: Request) -> list[tuple[str, str]]:
    """The url-encoded form fields, refusing large, chunked or other-typed bodies."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form url-encoded")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(411, "a Content-Length is required")
    if int(length) > MAX_BODY:
        raise HTTPException(413, f"the form is larger than {MAX_BODY} bytes")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"the form is larger than {MAX_BODY} bytes")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                         max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form could not be read") from None


def _answer(task: Task, fields: list[tuple[str, str]]) -> tuple[str, int, set[str]]:
    """(concept, category, marked image ids) from the posted fields; HTTPException 422 on any bad field."""
    allowed = {"form_token", "concept", "category", "marked"}
    names = [k for k, _ in fields]
    if set(names) - allowed or any(names.count(k) > 1 for k in ("form_token", "concept", "category")):
        raise HTTPException(422, "the form holds unknown or repeated fields")
    values = dict(fields)
    if not same_secret(values.get("form_token", ""), task.form_token):
        raise HTTPException(403, "this form is stale or forged; reload the task")
    category_text = values.get("category", "")
    if category_text not in {"1", "2", "3", "4", "5", "6"}:
        raise HTTPException(422, "pick one of the six categories")
    own = {im.id for im in task.images}
    marked = [v for k, v in fields if k == "marked"]
    if any(not valid_opaque(v) or v not in own for v in marked) or len(set(marked)) != len(marked):
        raise HTTPException(422, "a marked image does not belong to this task")
    try:
        concept = clean_concept(values.get("concept", ""))
    except UsageError as err:
        raise HTTPException(422, str(err)) from None
    return concept, int(category_text), set(marked)


def create_app(store: Store, layer: str | None = None, secure_cookie: bool = False) -> FastAPI:
    """The FastAPI application serving ``store``'s tasks (of ``layer`` only, when given)."""
    state = AnnotationApp(store, layer, secure_cookie)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, debug=False)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return state.page("message.html", exc.status_code, title=f"{exc.status_code}", text=str(exc.detail))

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> Response:
        LOG.exception("request failed")
        return state.page("message.html", 500, title="500", text="internal error; the server log says more")

    @app.get("/login")
    def login_form() -> HTMLResponse:
        return state.page("login.html")

    @app.post("/login")
    async def login(request: Request) -> Response:
        _check_origin(request)
        fields = dict(await _form(request))
        token = fields.get("token", "").strip()
        if not valid_token(token) or await run_in_threadpool(store.annotator_by_hash, token_hash(token)) is None:
            raise HTTPException(401, "this token is not known; check it or ask for a new one")
        response = RedirectResponse("/task", status_code=303, headers=HEADERS)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=state.secure_cookie,
                            max_age=30 * 24 * 3600)
        return response

    @app.get("/")
    def root() -> Response:
        return RedirectResponse("/task", status_code=303)

    @app.get("/task")
    def next_task(request: Request, recorded: str | None = None) -> Response:
        annotator_id, name = state.annotator(request)
        assignment = store.assign(annotator_id, new_opaque_id(), layer)
        if assignment is None:
            line = state.recorded_line(recorded, annotator_id, name)
            return state.page("message.html", title="All done",
                              text=f"{line + ' ' if line else ''}Thank you, {name}: no unit is left for you.")
        after = f"?recorded={recorded}" if recorded is not None and recorded.isdigit() and len(recorded) <= 12 else ""
        return RedirectResponse(f"/task/{assignment}{after}", status_code=303, headers=HEADERS)

    @app.get("/task/{assignment_id}")
    def show_task(assignment_id: int, request: Request, recorded: str | None = None) -> Response:
        annotator_id, name = state.annotator(request)
        task = state.owned_task(assignment_id, annotator_id)
        if task.done:
            return RedirectResponse("/task", status_code=303, headers=HEADERS)
        return state.task_page(task, name, recorded=state.recorded_line(recorded, annotator_id, name))

    @app.post("/task/{assignment_id}")
    async def submit(assignment_id: int, request: Request) -> Response:
        annotator_id, name = await run_in_threadpool(state.annotator, request)
        _check_origin(request)
        task = await run_in_threadpool(state.owned_task, assignment_id, annotator_id)
        if task.done:
            raise HTTPException(409, "this task is answered already")
        fields = await _form(request)
        concept, category, marked = _answer(task, fields)
        catch_ids = {im.id for im in task.images if im.is_catch}
        n_real = len(task.images) - len(catch_ids)
        marked_real = len(marked - catch_ids)
        reason = refusal(marked_real, len(marked & catch_ids))
        if reason is not None:
            await run_in_threadpool(store.refuse, assignment_id, reason)
            return state.task_page(task, name, 422, reason, marked, concept, category)
        precision = marked_real / n_real
        stored = await run_in_threadpool(store.record, assignment_id, task.form_token, concept, category, precision,
                                         json.dumps(sorted(marked)))
        if not stored:
            raise HTTPException(409, "this task is answered already")
        return RedirectResponse(f"/task?recorded={assignment_id}", status_code=303, headers=HEADERS)

    @app.get("/image/{image_id}")
    def image(image_id: str, request: Request) -> Response:
        annotator_id, _ = state.annotator(request)
        if not valid_opaque(image_id):
            raise HTTPException(404, "no such image")
        png = store.image_for(image_id, annotator_id)
        if png is None:
            raise HTTPException(404, "no such image")
        return Response(png, media_type="image/png", headers={**HEADERS, "Cache-Control": "private, max-age=3600"})

    return app
