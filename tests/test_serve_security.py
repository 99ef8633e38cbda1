"""The serve app's guards: the token, paths (only the runs' allow-listed files), uploads (images only, capped),
bounded work, short error pages, CSP. The see system is a stand-in here (test_serve_browser.py uses the real one)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from PIL import Image
from serve_fixtures import TOKEN, FakeSeer, free_port, png_bytes, raw_get, start_serve, tiny_run, token_file

from unitscope.serve.app import ServeSettings, create_app
from unitscope.serve.files import list_files, read_inside
from unitscope.serve.pool import Busy, WorkPool
from unitscope.serve.runs import open_runs
from unitscope.serve.security import read_token_file
from unitscope.serve.uploads import capped, decode_image

SECRET = "TOP-SECRET-OUTSIDE-THE-RUN"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run beside a secret file, with links out of the run (refused) and one link inside it (kept)."""
    directory = tiny_run(tmp_path_factory)
    outside = directory.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.html").write_text(SECRET)
    (outside / "page.html").write_text(SECRET)
    links = {directory / "units" / "leak.html": outside / "secret.html", directory / "leakdir": outside,
             directory / "units" / "abs.png": Path("/etc/hostname"),
             directory / "inside.html": directory / "report.html"}
    for link, target in links.items():
        if not link.is_symlink():
            link.symlink_to(target)
    return directory


@pytest.fixture(scope="module")
def server(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``unitscope serve RUN`` in a subprocess (the see system is never opened by these tests); its port."""
    port = free_port()
    proc = start_serve([run], port, token_file(tmp_path_factory.mktemp("token")))
    yield port
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) in (0, 130)  # Ctrl-C stops it by itself


@pytest.fixture()
def client(run: Path) -> Iterator[tuple[TestClient, FakeSeer]]:
    served = open_runs([run])
    seer = FakeSeer()
    served[0].seer = seer  # type: ignore[assignment]
    with TestClient(create_app(served, TOKEN), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c, seer


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def upload(c: TestClient, data: bytes, name: str = "a.png", kind: str = "image/png", **kw: object) -> object:
    return c.post("/see", files={"image": (name, data, kind)}, data={"run": "runA"}, follow_redirects=False, **kw)


def test_every_route_needs_the_token(client: tuple[TestClient, FakeSeer]) -> None:
    c, seer = client
    routes = ["/", "/runs/runA/report.html", "/runs/runA/units/conv5/0.html", "/compare?a=runA&b=runA", "/status",
              "/see/" + "A" * 22, "/see/" + "A" * 22 + "/image.png"]
    for path in routes:
        r = c.get(path)
        assert r.status_code == 401 and "sign in" in r.text and "Traceback" not in r.text, path
        assert c.get(path, headers=bearer("y" * 43)).status_code == 401, path
    assert upload(c, png_bytes()).status_code == 401 and seer.calls == 0
    assert c.get("/login?token=" + "y" * 43).status_code == 401
    assert c.get("/runs/runA/report.html", headers=bearer()).status_code == 200


def test_login_sets_an_httponly_strict_cookie(client: tuple[TestClient, FakeSeer]) -> None:
    c, _ = client
    r = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert c.get("/").status_code == 200  # the cookie now signs every request in
    c.cookies.clear()
    r = c.get(f"/login?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/" and "httponly" in r.headers["set-cookie"].lower()
    assert c.post("/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"}).status_code == 403


def test_every_response_carries_the_csp_and_runs_only_the_reports_own_script(
        client: tuple[TestClient, FakeSeer]) -> None:
    c, _ = client
    for path in ("/", "/runs/runA/report.html", "/nowhere", "/runs/runA/units/conv5/0.jpg"):
        r = c.get(path, headers=bearer())
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
    report = c.get("/runs/runA/report.html", headers=bearer())
    script_src = report.headers["content-security-policy"].split("script-src ")[1].split(";")[0]
    assert script_src.startswith("'sha256-") and "unsafe-inline" not in script_src
    home = c.get("/", headers=bearer())
    assert "script-src 'none'" in home.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["../outside/secret.html", "%2e%2e/outside/secret.html", "..%2foutside%2fsecret.html",
                                  "%2e%2e%2f%2e%2e%2foutside%2fsecret.html", "units/leak.html", "leakdir/page.html",
                                  "units/abs.png", "/etc/hostname", "%2fetc%2fhostname", "summary.json",
                                  "conv5/top_maps.npy", "units/conv5/../../../outside/secret.html"])
def test_paths_out_of_the_run_are_refused_and_never_read(client: tuple[TestClient, FakeSeer], run: Path, path: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    c, _ = client
    opened: list[str] = []
    real_open = os.open

    def spy(file: object, *args: object, **kwargs: object) -> int:
        opened.append(os.fspath(file))  # type: ignore[arg-type]
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    r = c.get(f"/runs/runA/{path}", headers=bearer())
    assert r.status_code in (403, 404) and SECRET not in r.text
    assert not any("outside" in p or "hostname" in p or "summary.json" in p for p in opened), opened


def test_raw_traversal_against_a_real_server(server: int) -> None:
    """The same paths sent byte for byte (no client normalises them) to a real server; a link inside the run is kept."""
    port = server
    for target in ("/runs/runA/../outside/secret.html", "/runs/runA/..%2f..%2foutside/secret.html",
                   "/runs/runA/%2e%2e/%2e%2e/outside/secret.html", "/runs/runA/%252e%252e%252foutside%252fsecret.html",
                   "/runs/runA//etc/hostname", "/runs/runA/units/leak.html", "/runs/runA/leakdir/page.html",
                   "/runs/../../../../etc/hostname", "/runs/runA/units/abs.png", "/runs/%2e%2e/outside/secret.html",
                   "/compare/runA/runA/../../runs/runA/summary.json", "/see/..%2f..%2foutside%2fsecret.html"):
        status, body = raw_get(port, target)
        assert status in (400, 403, 404) and SECRET.encode() not in body, target
    status, body = raw_get(port, "/runs/runA/inside.html")
    assert status == 200 and b"unitscope" in body  # a link that stays inside the run is served
    assert raw_get(port, "/runs/runA/report.html", token="z" * 43)[0] == 401


def test_the_allow_list_and_a_file_swapped_for_a_link_later(run: Path, tmp_path: Path) -> None:
    listed = list_files(run)
    assert listed.refused == 2  # leak.html and abs.png; a linked directory (leakdir) is not entered at all
    assert "units/leak.html" not in listed and "units/abs.png" not in listed and "inside.html" in listed
    assert all(real.is_relative_to(run.resolve()) for real in listed.files.values())
    assert not any(key.startswith("leakdir") for key in listed.files)
    # a listed file replaced by a link out of the run after start is refused when served
    copy = tmp_path / "copy"
    (copy / "units").mkdir(parents=True)
    (copy / "units" / "a.html").write_text("fine")
    (tmp_path / "secret.html").write_text(SECRET)
    files = list_files(copy)
    assert files.read("units/a.html") == (b"fine", "text/html; charset=utf-8")
    (copy / "units" / "a.html").unlink()
    (copy / "units" / "a.html").symlink_to(tmp_path / "secret.html")
    assert files.read("units/a.html") is None
    from unitscope.serve.files import Unsafe

    with pytest.raises(Unsafe):
        read_inside(files.files["units/a.html"], copy.resolve())


@pytest.mark.parametrize("data,name,kind", [
    (b"just some text", "a.txt", "text/plain"),
    (b"<html><script>alert(1)</script></html>", "a.png", "image/png"),  # a page named like an image
    (png_bytes()[:60], "cut.png", "image/png"),  # a PNG cut short
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a.pdf", "application/pdf"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "a.svg", "image/svg+xml"),
], ids=["text", "html-named-png", "cut-png", "pdf", "svg"])
def test_uploads_that_are_not_images_are_415(client: tuple[TestClient, FakeSeer], data: bytes, name: str,
                                             kind: str) -> None:
    c, seer = client
    r = upload(c, data, name, kind, headers=bearer())
    assert r.status_code == 415 and "not an image" in r.text and "Traceback" not in r.text
    assert seer.calls == 0


def test_a_good_image_is_seen_and_its_box_links_to_its_unit_page(client: tuple[TestClient, FakeSeer]) -> None:
    c, seer = client
    r = upload(c, png_bytes(), headers=bearer())
    assert r.status_code == 303 and seer.calls == 1
    page = c.get(r.headers["location"], headers=bearer())
    assert page.status_code == 200 and 'id="scene-label">street<' in page.text
    assert 'class="box" data-label="car" href="/runs/runA/units/conv5/3.html"' in page.text
    assert c.get("/runs/runA/units/conv5/3.html", headers=bearer()).status_code == 200
    assert c.get(r.headers["location"] + "/image.png", headers=bearer()).content.startswith(b"\x89PNG")
    assert c.get(r.headers["location"] + "/../../runs.png", headers=bearer()).status_code == 404
    assert c.post("/see", content=png_bytes(), headers={**bearer(), "content-type": "image/png"}).status_code == 415


def _bomb_png(side: int) -> bytes:
    """A valid PNG header of side × side pixels with a tiny compressed body (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = zlib.compress(b"\x00" * (side + 1) * 64, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_a_50_mb_upload_and_too_many_pixels_are_413(client: tuple[TestClient, FakeSeer]) -> None:
    c, seer = client
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * MB)
    r = upload(c, big, headers=bearer())
    assert r.status_code == 413 and "20 MB" in r.text
    r = upload(c, _bomb_png(20_000), headers=bearer())  # 400 million pixels in a few kB
    assert r.status_code == 413 and "pixels" in r.text
    with pytest.raises(HTTPException) as refused:
        decode_image(_bomb_png(7000), max_pixels=40_000_000)
    assert refused.value.status_code == 413
    assert seer.calls == 0


def test_a_body_without_content_length_is_read_only_up_to_the_cap() -> None:
    """A chunked 50 MB body: reading stops one chunk past 20 MB, not after 50 MB."""
    read = 0

    class Chunked:
        headers: ClassVar[dict[str, str]] = {}

        async def stream(self) -> object:
            nonlocal read
            for _ in range(50):
                read += MB
                yield b"\0" * MB

    async def consume() -> None:
        async for _ in capped(Chunked(), 20 * MB):  # type: ignore[arg-type]
            pass

    with pytest.raises(HTTPException) as refused:
        asyncio.run(consume())
    assert refused.value.status_code == 413 and read == 21 * MB


def test_a_real_server_refuses_50_mb_from_its_content_length_without_reading_it(server: int) -> None:
    port = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        boundary = "b0undary"
        sock.sendall((f"POST /see HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {50 * MB}\r\n\r\n").encode() + b"\0" * MB)
        start = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - start < 5
    status, body = raw_get(port, "/status")
    assert status == 200 and b'"finished":0' in body.replace(b" ", b"")  # nothing reached the workers


def test_the_pool_is_bounded_and_says_when_to_retry() -> None:
    pool = WorkPool(workers=1, waiting=1)
    first, second = pool.reserve(), pool.reserve()
    with pytest.raises(Busy) as busy:
        pool.reserve()
    assert busy.value.retry_after >= 1
    first.close()
    third = pool.reserve()  # a closed place is free again
    done = second.submit(lambda: 7)
    assert done.result(timeout=5) == 7
    third.close()
    time.sleep(0.05)
    snap = pool.snapshot()
    assert snap["taken"] == 0 and snap["peak"] == 2 and snap["refused"] == 1 and snap["finished"] == 1
    pool.shutdown()


def test_a_busy_server_answers_503_with_retry_after(run: Path) -> None:
    served = open_runs([run])
    seer = FakeSeer(seconds=1.0)
    served[0].seer = seer  # type: ignore[assignment]
    app = create_app(served, TOKEN, ServeSettings(workers=1, waiting=0))
    state = app.state.serve
    held = state.pool.reserve()  # the only place is taken
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        r = upload(c, png_bytes(), headers=bearer())
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1 and "try again" in r.text
        held.close()
        assert upload(c, png_bytes(), headers=bearer()).status_code == 303
    assert seer.calls == 1


def test_a_failure_is_a_short_page_never_a_traceback(run: Path) -> None:
    served = open_runs([run])
    served[0].seer = FakeSeer(fail=RuntimeError("internal detail /secret/path"))  # type: ignore[assignment]
    with TestClient(create_app(served, TOKEN), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        r = upload(c, png_bytes(), headers=bearer())
        assert r.status_code == 500 and "internal error" in r.text
        assert "Traceback" not in r.text and "/secret/path" not in r.text
        assert c.get("/status", headers=bearer()).json()["pool"]["taken"] == 0  # the place was given back


def test_token_file_rules(tmp_path: Path) -> None:
    good = tmp_path / "t"
    good.write_text(TOKEN + "\n")
    assert read_token_file(good) == TOKEN
    from unitscope.errors import UsageError

    for text in ("short", "has spaces in it " * 3, ""):
        good.write_text(text)
        with pytest.raises(UsageError, match="token-file"):
            read_token_file(good)


def test_non_image_bytes_decode_refused_directly() -> None:
    image = Image.new("RGB", (10, 10))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    assert decode_image(out.getvalue(), 1000).size == (10, 10)
    with pytest.raises(HTTPException) as refused:
        decode_image(out.getvalue(), 99)  # 100 pixels over a limit of 99
    assert refused.value.status_code == 413


def test_compare_two_runs_on_request_once_into_a_folder_of_its_own(run: Path,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tiny_run(tmp_path_factory, "runB")
    served = open_runs([run, other])
    app = create_app(served, TOKEN)
    cache = app.state.serve.compares
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        assert c.get("/compare?a=runA&b=runA", headers=bearer()).status_code == 422
        assert c.get("/compare?a=runA&b=nope", headers=bearer()).status_code == 404
        assert c.get("/compare/runA/runB/report.html", headers=bearer()).status_code == 404  # not computed yet
        r = c.get("/compare?a=runA&b=runB", headers=bearer(), follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/compare/runA/runB/report.html"
        page = c.get(r.headers["location"], headers=bearer())
        assert page.status_code == 200 and 'data-page="compare"' in page.text
        assert cache.folder.is_dir() and not cache.folder.is_relative_to(run.parent)  # the server's own temp dir
        computed = app.state.serve.pool.counts.finished
        assert c.get("/compare?a=runA&b=runB", headers=bearer(), follow_redirects=False).status_code == 303
        assert app.state.serve.pool.counts.finished == computed  # cached: not computed again
        assert c.get("/compare/runA/runB/../../runs/runA/summary.json", headers=bearer()).status_code == 404
        folder = cache.folder
    assert not folder.exists()  # removed when the server stops


def _own_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (none on a machine without a network)."""
    found: set[str] = set()
    for name in (socket.gethostname(), socket.getfqdn()):
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None, socket.AF_INET))
        except OSError:
            continue
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it picks the outgoing interface
            found.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def test_the_server_listens_on_loopback_only(server: int) -> None:
    assert raw_get(server, "/login")[0] == 200
    addresses = _own_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback address to try")
    for address in addresses:
        with pytest.raises(OSError), socket.create_connection((address, server), timeout=2):
            pass


def test_cli_refusals_are_one_line_before_any_work(capsys: pytest.CaptureFixture[str], run: Path,
                                                   tmp_path: Path) -> None:
    from cli_helpers import assert_usage_error, run_cli

    assert_usage_error(run_cli(capsys, "serve", str(tmp_path / "nope")), "does not exist")
    assert_usage_error(run_cli(capsys, "serve", str(run), "--workers", "3"), "at most 2")
    assert_usage_error(run_cli(capsys, "serve", str(run), "--token-file", str(tmp_path / "none")), "--token-file")
    (tmp_path / "weak").write_text("abc\n")
    assert_usage_error(run_cli(capsys, "serve", str(run), "--token-file", str(tmp_path / "weak")), "32-128")
