"""The app's one store: SQLite in WAL mode, every accepted answer committed (synchronous=FULL) before replying.

Each assignment records the seed and the image order its annotator saw (table ``orders``; see
:func:`unitscope.annotate.protocol.order_seed`), so every judgement can be audited and replayed.

A connection per operation keeps threads apart; writes take the lock up front (``BEGIN IMMEDIATE``) so
two annotators asking for work at once cannot both get the last open slot of a unit. ``UNIQUE`` keys
make a duplicated submission impossible rather than unlikely.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from unitscope.annotate.protocol import ANNOTATIONS_PER_UNIT, Annotation, image_order, order_seed
from unitscope.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_hash TEXT UNIQUE NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    id INTEGER PRIMARY KEY, layer TEXT NOT NULL, unit INTEGER NOT NULL, UNIQUE (layer, unit));
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, unit_id INTEGER NOT NULL REFERENCES units(id), slot INTEGER NOT NULL,
    probe_index INTEGER NOT NULL, is_catch INTEGER NOT NULL, png BLOB NOT NULL, UNIQUE (unit_id, slot));
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY, annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    unit_id INTEGER NOT NULL REFERENCES units(id), form_token TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, UNIQUE (annotator_id, unit_id));
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY, assignment_id INTEGER UNIQUE NOT NULL REFERENCES assignments(id),
    concept TEXT NOT NULL, category INTEGER NOT NULL, precision REAL NOT NULL, marked TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    assignment_id INTEGER PRIMARY KEY REFERENCES assignments(id), seed TEXT NOT NULL, slots TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY, assignment_id INTEGER NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL);
"""


@dataclass(frozen=True)
class TaskImage:
    """One image of a task, known to the client only by its opaque id."""

    id: str
    slot: int
    is_catch: bool


@dataclass(frozen=True)
class Task:
    """An open assignment: who, which unit, the per-task form token, and the images in display order."""

    assignment_id: int
    annotator_id: int
    layer: str
    unit: int
    form_token: str
    done: bool
    images: tuple[TaskImage, ...]
    seed: int | None = None  # the seed of this annotator's image order (None: an assignment made before orders)


@dataclass(frozen=True)
class Progress:
    """Where an annotator stands: units done, units left for them (the open one included), images left."""

    done: int
    units_left: int
    images_left: int

    @property
    def current(self) -> int:
        return self.done + 1

    @property
    def total(self) -> int:
        return self.done + self.units_left


class Store:
    """Tasks, annotators, assignments and answers in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise UsageError(f"{self.path} is not a file; give --db a file path")
        if not self.path.parent.is_dir():
            raise UsageError(f"cannot create {self.path}: {self.path.parent} does not exist")
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=60000")
        except sqlite3.DatabaseError as err:
            raise UsageError(f"{self.path} is not an annotation database ({err})") from None
        return db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the lock from the start; committed (durably) on exit."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- set-up -------------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def per_unit(self) -> int:
        return int(self.meta("per_unit", str(ANNOTATIONS_PER_UNIT)) or ANNOTATIONS_PER_UNIT)

    def add_annotator(self, name: str, token_hash: str) -> int:
        with self._write() as db:
            if db.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise UsageError(f"annotator {name!r} exists already; choose another name")
            cur = db.execute("INSERT INTO annotators (name, token_hash, created) VALUES (?, ?, ?)",
                             (name, token_hash, time.time()))
            return int(cur.lastrowid or 0)

    def annotator_by_hash(self, token_hash: str) -> tuple[int, str] | None:
        with self._read() as db:
            row = db.execute("SELECT id, name FROM annotators WHERE token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def add_unit(self, layer: str, unit: int, images: Sequence[tuple[str, int, bool, bytes]]) -> bool:
        """Store a unit's task images (id, probe index, is_catch, png) in display order; False if present."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM units WHERE layer = ? AND unit = ?", (layer, unit)).fetchone():
                return False
            unit_id = db.execute("INSERT INTO units (layer, unit) VALUES (?, ?)", (layer, unit)).lastrowid
            db.executemany("INSERT INTO images (id, unit_id, slot, probe_index, is_catch, png) VALUES (?,?,?,?,?,?)",
                           [(i, unit_id, slot, p, int(c), png) for slot, (i, p, c, png) in enumerate(images)])
        return True

    def units(self) -> list[tuple[str, int]]:
        with self._read() as db:
            return [(str(r[0]), int(r[1])) for r in db.execute("SELECT layer, unit FROM units ORDER BY id")]

    # --- serving ------------------------------------------------------------------------------------------
    def assign(self, annotator_id: int, form_token: str, layer: str | None = None) -> int | None:
        """The annotator's open assignment, or a new one on the least-covered unit they have not seen.

        A unit takes at most ``per_unit`` assignments (open or done); None when nothing is left.
        """
        with self._write() as db:
            row = db.execute("SELECT id FROM assignments WHERE annotator_id = ? AND done = 0 ORDER BY id LIMIT 1",
                             (annotator_id,)).fetchone()
            if row is not None:
                return int(row[0])
            row = db.execute(
                "SELECT u.id FROM units u LEFT JOIN assignments a ON a.unit_id = u.id "
                "WHERE (? IS NULL OR u.layer = ?) AND u.id NOT IN "
                "(SELECT unit_id FROM assignments WHERE annotator_id = ?) "
                "GROUP BY u.id HAVING COUNT(a.id) < ? ORDER BY COUNT(a.id), u.id LIMIT 1",
                (layer, layer, annotator_id, self.per_unit())).fetchone()
            if row is None:
                return None
            unit_id = int(row[0])
            cur = db.execute("INSERT INTO assignments (annotator_id, unit_id, form_token, created) VALUES (?,?,?,?)",
                             (annotator_id, unit_id, form_token, time.time()))
            assignment = int(cur.lastrowid or 0)
            name = db.execute("SELECT name FROM annotators WHERE id = ?", (annotator_id,)).fetchone()[0]
            where = db.execute("SELECT layer, unit FROM units WHERE id = ?", (unit_id,)).fetchone()
            n = int(db.execute("SELECT COUNT(*) FROM images WHERE unit_id = ?", (unit_id,)).fetchone()[0])
            salt = db.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()
            seed = order_seed(str(name), str(where[0]), int(where[1]), "0" if salt is None else str(salt[0]))
            db.execute("INSERT INTO orders (assignment_id, seed, slots) VALUES (?,?,?)",
                       (assignment, str(seed), json.dumps(image_order(seed, n))))
            return assignment

    def task(self, assignment_id: int) -> Task | None:
        with self._read() as db:
            row = db.execute("SELECT a.annotator_id, u.layer, u.unit, a.form_token, a.done, u.id FROM assignments a "
                             "JOIN units u ON u.id = a.unit_id WHERE a.id = ?", (assignment_id,)).fetchone()
            if row is None:
                return None
            images = tuple(TaskImage(str(r[0]), int(r[1]), bool(r[2])) for r in db.execute(
                "SELECT id, slot, is_catch FROM images WHERE unit_id = ? ORDER BY slot", (int(row[5]),)))
            order = db.execute("SELECT seed, slots FROM orders WHERE assignment_id = ?", (assignment_id,)).fetchone()
        seed = None
        if order is not None and sorted(json.loads(order[1])) == list(range(len(images))):
            seed = int(order[0])
            images = tuple(images[k] for k in json.loads(order[1]))
        return Task(assignment_id, int(row[0]), str(row[1]), int(row[2]), str(row[3]), bool(row[4]), images, seed)

    def progress(self, annotator_id: int, layer: str | None = None) -> Progress:
        """The annotator's units done, and the units and images still open to them (their open task included)."""
        with self._read() as db:
            done = int(db.execute(
                "SELECT COUNT(*) FROM assignments a JOIN units u ON u.id = a.unit_id "
                "WHERE a.annotator_id = ? AND a.done = 1 AND (? IS NULL OR u.layer = ?)",
                (annotator_id, layer, layer)).fetchone()[0])
            open_units = [int(r[0]) for r in db.execute(
                "SELECT u.id FROM units u LEFT JOIN assignments a ON a.unit_id = u.id "
                "WHERE (? IS NULL OR u.layer = ?) AND u.id NOT IN "
                "(SELECT unit_id FROM assignments WHERE annotator_id = ?) "
                "GROUP BY u.id HAVING COUNT(a.id) < ?", (layer, layer, annotator_id, self.per_unit()))]
            open_units += [int(r[0]) for r in db.execute(
                "SELECT a.unit_id FROM assignments a JOIN units u ON u.id = a.unit_id "
                "WHERE a.annotator_id = ? AND a.done = 0 AND (? IS NULL OR u.layer = ?)",
                (annotator_id, layer, layer))]
            images = sum(int(db.execute("SELECT COUNT(*) FROM images WHERE unit_id = ?", (u,)).fetchone()[0])
                         for u in open_units)
        return Progress(done, len(open_units), images)

    def answer(self, assignment_id: int, annotator_id: int) -> tuple[str, float] | None:
        """The (concept, precision) this annotator recorded for ``assignment_id``, or None."""
        with self._read() as db:
            row = db.execute("SELECT n.concept, n.precision FROM annotations n JOIN assignments a "
                             "ON a.id = n.assignment_id WHERE a.id = ? AND a.annotator_id = ?",
                             (assignment_id, annotator_id)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def orders(self) -> list[tuple[str, int, str, int, list[int]]]:
        """Every recorded order: (layer, unit, annotator, seed, stored slots in display order)."""
        with self._read() as db:
            rows = db.execute("SELECT u.layer, u.unit, p.name, o.seed, o.slots FROM orders o "
                              "JOIN assignments a ON a.id = o.assignment_id JOIN units u ON u.id = a.unit_id "
                              "JOIN annotators p ON p.id = a.annotator_id ORDER BY o.assignment_id").fetchall()
        return [(str(r[0]), int(r[1]), str(r[2]), int(r[3]), [int(k) for k in json.loads(r[4])]) for r in rows]

    def image_for(self, image_id: str, annotator_id: int) -> bytes | None:
        """The PNG of ``image_id`` if it belongs to a unit assigned to this annotator, else None."""
        with self._read() as db:
            row = db.execute("SELECT i.png FROM images i JOIN assignments a ON a.unit_id = i.unit_id "
                             "WHERE i.id = ? AND a.annotator_id = ?", (image_id, annotator_id)).fetchone()
        return None if row is None else bytes(row[0])

    def record(self, assignment_id: int, form_token: str, concept: str, category: int, precision: float,
               marked: str) -> bool:
        """Store an accepted answer and close its assignment in one transaction; False if already answered."""
        with self._write() as db:
            row = db.execute("SELECT done, form_token FROM assignments WHERE id = ?", (assignment_id,)).fetchone()
            if row is None or int(row[0]) or str(row[1]) != form_token:
                return False
            db.execute("INSERT INTO annotations (assignment_id, concept, category, precision, marked, created) "
                       "VALUES (?,?,?,?,?,?)", (assignment_id, concept, category, precision, marked, time.time()))
            db.execute("UPDATE assignments SET done = 1 WHERE id = ?", (assignment_id,))
        return True

    def refuse(self, assignment_id: int, reason: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO refusals (assignment_id, reason, created) VALUES (?,?,?)",
                       (assignment_id, reason, time.time()))

    # --- reading answers ----------------------------------------------------------------------------------
    def annotations(self) -> list[Annotation]:
        with self._read() as db:
            rows = db.execute(
                "SELECT u.layer, u.unit, p.name, n.concept, n.category, n.precision FROM annotations n "
                "JOIN assignments a ON a.id = n.assignment_id JOIN units u ON u.id = a.unit_id "
                "JOIN annotators p ON p.id = a.annotator_id ORDER BY u.id, n.id").fetchall()
        return [Annotation(str(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), float(r[5])) for r in rows]

    def count(self, table: str) -> int:
        if table not in ("annotations", "assignments", "refusals", "units", "annotators", "images", "orders"):
            raise UsageError(f"no table {table!r}")
        with self._read() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # table name checked above
