"""A checkpoint's class names from a file (``--class-names FILE``), in the formats checkpoints ship with.

- Places365's ``categories_places365.txt``: ``/a/airfield 0`` per line; the ``/x/`` letter folder is dropped
  and the rest kept (``/a/apartment_building/outdoor 8`` → ``apartment_building/outdoor``), as NetDissect and
  the Places365 demo code do; the index column orders the names.
- ImageNet's class-index JSON: ``{"0": ["n01440764", "tench"], ...}`` (a plain ``{"0": "tench"}`` or a JSON
  list of names also reads).
- ImageNet's ``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca`` (the first name is kept).
- Anything else: one name per line, in output order.

The file is untrusted input: a size limit, indices that must be exactly 0…N-1, and every problem one
``UsageError`` naming the file and how to mend it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from unitscope.errors import UsageError

MAX_BYTES = 8 * 1024 * 1024  # ImageNet-21k's 21,843 names take ~0.5 MB
MAX_CLASSES = 100_000
FORMATS = ("Places365 categories (/a/airfield 0)", "one name per line", "ImageNet class-index JSON")
INDEXED = re.compile(r"^(\S+)\s+(\d+)$")  # "/a/airfield 0"
SYNSET = re.compile(r"^n\d{8}\s+(.+)$")  # "n01440764 tench, Tinca tinca"
LETTER_FOLDER = re.compile(r"^/[a-z]/")  # Places365's "/a/" in front of every name


def _error(path: Path, what: str, mend: str) -> UsageError:
    return UsageError(f"--class-names {path}: {what}; {mend}")


def no_class_names(command: str) -> UsageError:
    """The one line for a model that knows no class names while ``command`` needs them."""
    return UsageError(f"the model has no class names, which {command} needs; give --class-names FILE (Places365's "
                      "categories_places365.txt, one name per line, or ImageNet's class-index JSON), or a "
                      "file.py:callable model whose network has a class_names attribute")


def read_class_names(path: str | Path) -> list[str]:
    """The class names in ``path`` in the network's output order (see the module notes for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise _error(path, "no such file" if not path.exists() else "not a file",
                     "give the path of a class-names file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise _error(path, f"{size / 1e6:.1f} MB, over the {MAX_BYTES // (1024 * 1024)} MiB a class-names file "
                     "may be", "give a file of names only")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _error(path, f"not UTF-8 text (byte {err.start})", "save it as UTF-8") from None
    if not text.strip():
        raise _error(path, "empty", f"give one of: {', '.join(FORMATS)}")
    names = _from_json(path, text) if text.lstrip()[:1] in "{[" else _from_lines(path, text)
    if len(names) > MAX_CLASSES:
        raise _error(path, f"{len(names)} names, over {MAX_CLASSES}", "give the names of the model's classes only")
    return names


def _from_json(path: Path, text: str) -> list[str]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _error(path, f"not valid JSON ({str(err).splitlines()[0]})",
                     'write it as {"0": ["n01440764", "tench"], ...} or one name per line') from None
    if isinstance(data, list):
        return [_json_name(path, str(i), value) for i, value in enumerate(data)]
    if not isinstance(data, dict):
        raise _error(path, f"a JSON {type(data).__name__}", 'write {"0": ["n01440764", "tench"], ...}')
    indexed: dict[int, str] = {}
    for key, value in data.items():
        if not str(key).isdigit():
            raise _error(path, f"key {str(key)[:40]!r} is not a class index",
                         'key every entry by its output index: {"0": ["n01440764", "tench"], ...}')
        indexed[int(key)] = _json_name(path, str(key), value)  # JSON keys are unique once parsed
    return _ordered(path, indexed, "key")


def _json_name(path: Path, key: str, value: object) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = value[-1]  # ["n01440764", "tench"]: the readable name comes last
    if not isinstance(value, str) or not value.strip():
        raise _error(path, f"entry {key[:40]!r} is {json.dumps(value)[:40]}, not a name",
                     'give each index a name, e.g. "0": ["n01440764", "tench"]')
    return value.strip()


def _from_lines(path: Path, text: str) -> list[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    stripped = [line.strip() for line in lines]
    for number, line in enumerate(stripped, start=1):
        if not line:
            raise _error(path, f"line {number} is empty", "give one class name per line, in output order, "
                         "or remove the empty line")
    if all(INDEXED.match(line) for line in stripped) and any(line.startswith("/") for line in stripped):
        indexed: dict[int, str] = {}
        for number, line in enumerate(stripped, start=1):
            match = INDEXED.match(line)
            name, index = match.group(1), int(match.group(2))  # type: ignore[union-attr]
            if index in indexed:
                raise _error(path, f"line {number} repeats index {index}",
                             "give each index once (Places365's lines read /a/airfield 0)")
            indexed[index] = LETTER_FOLDER.sub("", name) or name
        return _ordered(path, indexed, "index")
    if all(SYNSET.match(line) for line in stripped):
        return [SYNSET.match(line).group(1).split(",")[0].strip() for line in stripped]  # type: ignore[union-attr]
    return stripped


def _ordered(path: Path, indexed: dict[int, str], what: str) -> list[str]:
    """The names by index, which must run 0…N-1 with no gap."""
    missing = next((i for i in range(len(indexed)) if i not in indexed), None)
    if missing is not None:
        raise _error(path, f"no class has {what} {missing} ({what} numbers must run 0…{len(indexed) - 1})",
                     f"give every {what} from 0 up once")
    return [indexed[i] for i in range(len(indexed))]
