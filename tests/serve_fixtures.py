"""What the serve tests share: a tiny run (built once per session), a stand-in for the see system, a real server."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitscope.serve.sight_adapter import Box, Scene, SightView, UnitRef, png

SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "serve-test-token-" + "x" * 26  # 43 characters


def tiny_run(factory: pytest.TempPathFactory, name: str = "runA") -> Path:
    """sceneworld-scene dissected on 20 SceneWorld images at conv5 and pool5, with its report; built once per
    session (a copy is made for a second name: the same run in another folder)."""
    base = factory.getbasetemp() / "serve-runs"
    first = base / "runA"
    if not (first / "report.html").is_file():
        from unitscope.api import dissect
        from unitscope.dissection.settings import DissectSettings

        dissect("sceneworld-scene", ("conv5", "pool5"), "sceneworld", first, n=20, report=True, progress=False,
                settings=DissectSettings(bootstrap=0, workers=0))
    if name == "runA":
        return first
    other = base / name
    if not other.exists():
        shutil.copytree(first, other)
    return other


def png_bytes(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def scene_png(index: int = 3, seed: int = 7) -> bytes:
    """A fresh SceneWorld scene (not a probe image of the run), as PNG bytes."""
    from unitscope.data import open_probe

    sample = open_probe("sceneworld", n=index + 1, seed=seed, size=112)[index]
    out = io.BytesIO()
    Image.fromarray(np.asarray(sample.image, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


class FakeSeer:
    """Stands in for a run's see system: one street scene with one car box backed by conv5 unit 3."""

    def __init__(self, fail: Exception | None = None, seconds: float = 0.0) -> None:
        self.fail = fail
        self.seconds = seconds
        self.calls = 0

    def see(self, image: Image.Image, name: str = "upload") -> SightView:
        self.calls += 1
        time.sleep(self.seconds)
        if self.fail is not None:
            raise self.fail
        return SightView((Scene("street", 0.7), Scene("beach", 0.2)),
                         (Box("car", 0.9, (0.1, 0.2, 0.5, 0.6), (UnitRef("conv5", 3, "car", True),)),),
                         {"image": png(image), "cam": png(image)}, (("car", "#ff0000"),), "cam at conv5")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(runs: list[Path], port: int, token_file: Path, *extra: str) -> subprocess.Popen[str]:
    """``unitscope serve RUNS --port PORT --token-file F`` in a subprocess, returned once it answers."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unitscope.cli", "serve", *map(str, runs), "--port", str(port),
                             "--token-file", str(token_file), *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"unitscope serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("unitscope serve did not start")


def token_file(folder: Path) -> Path:
    path = folder / "token.txt"
    path.write_text(TOKEN + "\n")
    return path


def raw_get(port: int, target: str, token: str = TOKEN) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalisation of ``..`` or ``%2e``): status and body."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                     "Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
