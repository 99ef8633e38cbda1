"""A tiny annotation store written by the tests: units whose images are 8x8 single-colour PNGs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from unitscope.annotate.protocol import N_CATCH, N_REAL
from unitscope.annotate.security import new_opaque_id, new_token, token_hash
from unitscope.annotate.store import Store
from unitscope.annotate.tasks import png_bytes


def tiny_png(value: int) -> bytes:
    return png_bytes(np.full((8, 8, 3), value % 256, dtype=np.uint8))


def make_store(path: Path, n_units: int = 4, layer: str = "conv5", per_unit: int = 3,
               n_real: int = N_REAL, n_catch: int = N_CATCH) -> Store:
    """A store with ``n_units`` units of ``n_real`` real images then ``n_catch`` catch images each."""
    store = Store(path)
    store.set_meta("per_unit", str(per_unit))
    png = tiny_png(128)
    for unit in range(n_units):
        images = [(new_opaque_id(), i, i >= n_real, png) for i in range(n_real + n_catch)]
        store.add_unit(layer, unit, images)
    return store


def add_annotator(store: Store, name: str) -> str:
    token = new_token()
    store.add_annotator(name, token_hash(token))
    return token


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER_CODE = ("import sys, uvicorn; from unitscope.annotate.app import create_app; "
               "from unitscope.annotate.store import Store; "
               "uvicorn.run(create_app(Store(sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]), "
               "log_level='error')")


def start_server(db: Path, port: int) -> subprocess.Popen[bytes]:
    """A uvicorn server on 127.0.0.1:``port`` in a subprocess, returned once it answers."""
    import os
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(db), str(port)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the annotation server did not start")
