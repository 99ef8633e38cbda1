"""Results of uploads, kept in memory under random ids (the newest ``capacity`` of them, bounded in bytes)."""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from unitscope.serve.sight_adapter import SightView

RESULT_ID = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass(frozen=True)
class Result:
    run: str
    filename: str
    seconds: float
    view: SightView


class Results:
    """The newest results, least recently added dropped first, never more than ``max_bytes`` of pictures."""

    def __init__(self, capacity: int = 64, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Result] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, result: Result) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._items[key] = result
            self._bytes += result.view.nbytes
            while len(self._items) > self.capacity or (self._bytes > self.max_bytes and len(self._items) > 1):
                _, old = self._items.popitem(last=False)
                self._bytes -= old.view.nbytes
        return key

    def get(self, key: str) -> Result | None:
        if not RESULT_ID.fullmatch(key):
            return None
        with self._lock:
            return self._items.get(key)
