"""Every file of a run folder is untrusted input, like a checkpoint: the checks that read them.

A run folder may come from someone else, be damaged or be older. ``read_record`` and ``DissectionResult.load``
read each file through these checks, so every consumer (report, compare, explain, segment, annotate, the API)
gets one ``UsageError`` naming the file and what is wrong with it — never a traceback, a table whose missing
column reads as "unlabelled", or a file from outside the run (a layer ``directory`` of ``../other``, an
absolute path, a symlink out). numpy files are read with ``allow_pickle=False``. The engine checks its
resume state (``RUN.partial/work``) here too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

from unitscope.errors import UsageError

if TYPE_CHECKING:  # pandas and numpy load with the first table or array read: summary.json alone stays quick
    import numpy as np
    import pandas as pd

Kind = Literal["int", "number", "number-or-nan", "bool", "str"]
MEND = "run dissect again with --overwrite (or get an intact copy of the run)"
MAX_LABEL = 2**20  # label numbers above this are damage (Broden has 1,197; label_pixels is a dense array)

# units.csv: the columns every consumer reads (a missing one must not read as "unlabelled") …
UNITS_COLUMNS: dict[str, Kind] = {"unit": "int", "label": "str", "category": "str", "iou": "number-or-nan",
                                  "detector": "bool"}
# … and columns that, when present, must hold what their readers expect.
LABEL_STATS_COLUMNS: dict[str, Kind] = {"number": "int", "label_area": "number"}  # label_stats.csv (older runs)
UNITS_OPTIONAL: dict[str, Kind] = {"threshold": "number", "max_activation": "number", "iou_detector": "bool",
                                   "control_iou": "number-or-nan", "survives_control": "bool"}
TOP_IMAGES_COLUMNS: dict[str, Kind] = {"unit": "int", "rank": "int", "image": "int", "score": "number",
                                       "peak_y": "int", "peak_x": "int"}
CONCEPTS_COLUMNS: dict[str, Kind] = {"number": "int", "name": "str", "category": "str", "pixels": "number-or-nan"}


def corrupt(path: Path | str, problem: str) -> UsageError:
    """The one error for a damaged run file."""
    return UsageError(f"{path} is corrupt ({problem}); {MEND}")


# ---------------------------------------------------------------- summary.json
def type_problem(value: Any, kind: Any, where: str) -> str | None:
    """Why ``value`` (as ``read_record`` built it from JSON) is not of the annotated ``kind``; None if it is."""
    origin, args = get_origin(kind), get_args(kind)
    if kind is Any:
        return None
    if origin in (Union, types.UnionType):
        if any(type_problem(value, alternative, where) is None for alternative in args):
            return None
        return f"{where} is {_shown(value)}, expected {_named(kind)}"
    if kind is type(None):
        return None if value is None else f"{where} is {_shown(value)}, expected null"
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, kind):
            return f"{where} is {_shown(value)}, expected an object"
        hints = get_type_hints(kind)
        for field in dataclasses.fields(kind):
            problem = type_problem(getattr(value, field.name), hints[field.name],
                                   f"{where}.{field.name}" if where else field.name)
            if problem is not None:
                return problem
        return None
    if origin is tuple:
        return _tuple_problem(value, args, where)
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where} is {_shown(value)}, expected an object"
        key_kind, value_kind = args if args else (Any, Any)
        for key, item in value.items():
            problem = type_problem(key, key_kind, f"{where} key") or type_problem(item, value_kind, f"{where}.{key}")
            if problem is not None:
                return problem
        return None
    if not _scalar_fits(value, kind):
        return f"{where} is {_shown(value)}, expected {_named(kind)}"
    return None


def _tuple_problem(value: Any, args: tuple[Any, ...], where: str) -> str | None:
    if not isinstance(value, tuple):
        return f"{where} is {_shown(value)}, expected a list"
    if len(args) == 2 and args[1] is Ellipsis:
        kinds = [args[0]] * len(value)
    elif len(value) != len(args):
        return f"{where} has {len(value)} items, expected {len(args)}"
    else:
        kinds = list(args)
    for i, (item, item_kind) in enumerate(zip(value, kinds, strict=True)):
        problem = type_problem(item, item_kind, f"{where}[{i}]")
        if problem is not None:
            return problem
    return None


def _scalar_fits(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # a form this checker does not know: read_record's conversion decided


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _named(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def record_problem(record: Any) -> str | None:
    """What is wrong with a typed run record beyond its types: sizes, layer names and folders, skipped images."""
    for name in ("image_size", "label_size", "input_size"):
        if any(v <= 0 for v in getattr(record, name)):
            return f"{name} is {list(getattr(record, name))}, expected positive sizes"
    if record.n_images < 0:
        return f"n_images is {record.n_images}"
    for key in record.skipped:
        if not key.isdigit() or int(key) >= record.n_images:
            return f"skipped image {key!r} is not an image of the run's {record.n_images}"
    seen: set[str] = set()
    for i, layer in enumerate(record.layers):
        where = f"layers[{i}]"
        if layer.name in ("", ".", "..") or layer.name in seen:
            return f"{where}.name {layer.name!r} is empty, a path or repeated"
        seen.add(layer.name)
        if layer.units < 1 or any(v < 1 for v in layer.map_size):
            return f"{where} has {layer.units} units of {list(layer.map_size)} maps, expected positive sizes"
        for key in ("directory", "top_maps", "histogram"):
            value = getattr(layer, key)
            if value is not None and not plain_name(value):
                return f"{where}.{key} {value!r} is not a plain name inside the run"
    return None


def plain_name(name: str) -> bool:
    """A single file or folder name: not empty, not ``.``/``..``, no separator (so never an absolute path)."""
    return bool(name) and name not in (".", "..") and not any(ch in name for ch in ("/", "\\", "\0"))


# ---------------------------------------------------------------- files of the run folder
class RunFiles:
    """The files of one run folder, each checked before it is read; a path outside the folder is refused."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.root = Path(os.path.realpath(self.directory))

    def path(self, *parts: str) -> Path:
        """``directory/parts…``, refused when it (following symlinks) lies outside the run folder."""
        path = self.directory.joinpath(*parts)
        real = Path(os.path.realpath(path))
        if real != self.root and not real.is_relative_to(self.root):
            raise UsageError(f"{path} points outside the run {self.directory} (to {real}); a run reads only its "
                             f"own files: {MEND}")
        return path

    def table(self, path: Path, columns: Mapping[str, Kind], optional: Mapping[str, Kind] | None = None,
              **read: Any) -> pd.DataFrame:
        """A CSV file of the run whose ``columns`` exist and hold values of their kinds (``optional``: when present)."""
        import pandas as pd

        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size:
                    handle.seek(-1, os.SEEK_END)
                ends_whole = size > 0 and handle.read(1) == b"\n"
            frame = pd.read_csv(path, **read)
        except FileNotFoundError:
            raise UsageError(f"{path} is missing; {MEND}") from None
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise corrupt(path, f"{type(err).__name__}: {_first_line(err)}") from None
        if not ends_whole:
            raise corrupt(path, "it ends in the middle of a row")
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise corrupt(path, f"no column {', '.join(missing)}")
        kinds = {**columns, **{k: v for k, v in (optional or {}).items() if k in frame.columns}}
        for name, kind in kinds.items():
            frame[name] = _column(frame[name], kind, path, name)
        return frame

    def array(self, path: Path, dtype: Literal["float", "int"], shape: tuple[int | None, ...],
              mmap: bool = False) -> np.ndarray:
        """A ``.npy`` file of the run with ``dtype`` values and ``shape`` (None: any length on that axis)."""
        import numpy as np

        try:
            array: np.ndarray = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise UsageError(f"{path} is missing; {MEND}") from None
        except (OSError, ValueError, EOFError) as err:
            raise corrupt(path, f"{type(err).__name__}: {_first_line(err)}") from None
        return check_array(array, path, dtype, shape)

    def npz_entry(self, path: Path, key: str, dtype: Literal["float", "int"], shape: tuple[int | None, ...]
                  ) -> np.ndarray:
        """Array ``key`` of a ``.npz`` file of the run, checked like :meth:`array`."""
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as stored:
                array: np.ndarray = stored[key]
        except FileNotFoundError:
            raise UsageError(f"{path} is missing; {MEND}") from None
        except (OSError, ValueError, EOFError, KeyError, AttributeError, zipfile.BadZipFile) as err:
            raise corrupt(path, f"{type(err).__name__}: {_first_line(err)}") from None
        return check_array(array, path, dtype, shape, f"{key}: ")


def check_array(array: np.ndarray, path: Path, dtype: Literal["float", "int"], shape: tuple[int | None, ...],
                what: str = "") -> np.ndarray:
    """``array`` if it holds ``dtype`` values in ``shape``; else one error naming ``path``."""
    import numpy as np

    wanted = np.floating if dtype == "float" else np.integer
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, wanted):
        raise corrupt(path, f"{what}{getattr(array, 'dtype', type(array).__name__)} values, expected {dtype}")
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape,
                                                                                           strict=True)):
        expected = "×".join("any" if s is None else str(s) for s in shape)
        raise corrupt(path, f"{what}shape {tuple(array.shape)}, expected {expected}")
    return array


def _column(values: pd.Series, kind: Kind, path: Path, name: str) -> pd.Series:
    """A column converted to ``kind``, or one error naming the file, the column and the first bad row."""
    import numpy as np
    import pandas as pd

    if len(values) == 0:
        return values
    converted: pd.Series
    if kind == "str":
        bad = values.isna()
        converted = values.astype(str)
    elif kind == "bool":
        text = values.astype(str).str.lower()
        bad = ~text.isin(("true", "false"))
        converted = text == "true"
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if kind == "int":
            bad = numbers.isna() | (numbers != numbers.round()) | pd.api.types.is_bool_dtype(values)
            converted = numbers.fillna(0).astype(np.int64)
        else:
            empty = values.isna() | values.astype(str).str.strip().str.lower().isin(("", "nan"))
            bad = (numbers.isna() & ~empty) | np.isinf(numbers) | pd.api.types.is_bool_dtype(values)
            if kind == "number":
                bad |= empty
            converted = numbers
    if bool(bad.any()):
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise corrupt(path, f"column {name} on line {row + 2} holds {values.iloc[row]!r}, expected {_KIND_TEXT[kind]}")
    return converted


_KIND_TEXT: dict[str, str] = {"int": "a whole number", "number": "a finite number",
                              "number-or-nan": "a number or nothing", "bool": "True or False", "str": "text"}


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"


# ---------------------------------------------------------------- rows that must agree with the record
def check_units(units: pd.DataFrame, path: Path, count: int) -> None:
    """units.csv: one row per unit 0 … count-1."""
    import numpy as np

    numbers = units["unit"].to_numpy()
    if len(units) != count or not np.array_equal(np.sort(numbers), np.arange(count)):
        raise corrupt(path, f"{len(units)} rows for units {_span(numbers)}, the run records units 0-{count - 1}")


def check_top_images(top: pd.DataFrame, path: Path, units: int, map_size: tuple[int, int], n_images: int) -> None:
    """top_images.csv: units, images and peaks inside the layer and the probe set."""
    limits = {"unit": units, "image": n_images, "peak_y": map_size[0], "peak_x": map_size[1], "rank": 2**31}
    for name, limit in limits.items():
        values = top[name].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= limit):
            raise corrupt(path, f"column {name} holds {_span(values)}, outside 0-{limit - 1}")


def check_concepts(frame: pd.DataFrame, path: Path, categories: Collection[str]) -> None:
    """concepts.csv: distinct label numbers in 0 … MAX_LABEL, categories of the run, non-negative pixel counts."""
    numbers = frame["number"].to_numpy()
    if len(numbers) and (numbers.min() < 0 or numbers.max() > MAX_LABEL):
        raise corrupt(path, f"label numbers {_span(numbers)}, expected 0-{MAX_LABEL}")
    if len(set(numbers.tolist())) != len(numbers):
        raise corrupt(path, "a label number is listed twice")
    unknown = sorted(set(frame["category"]) - set(categories))
    if unknown:
        raise corrupt(path, f"category {unknown[0]!r} is not one of the run's ({', '.join(categories)})")
    if len(frame) and bool((frame["pixels"] < 0).any()):
        raise corrupt(path, "a negative pixel count")


def check_iou(iou: np.ndarray, path: Path) -> np.ndarray:
    """iou.npy: every value a finite IoU in [0, 1]."""
    import numpy as np

    if iou.size and (not bool(np.isfinite(iou).all()) or float(iou.min()) < 0 or float(iou.max()) > 1 + 1e-6):
        raise corrupt(path, "values outside [0, 1]")
    return iou


def _span(values: np.ndarray) -> str:
    return f"{values.min()}-{values.max()}" if len(values) else "none"


# ---------------------------------------------------------------- resume state (RUN.partial/work)
def check_resume_state(state: object, path: Path, layers: Collection[str], n_images: int,
                       sections: tuple[str, ...]) -> dict[str, Any]:
    """A pass's checkpoint as the engine reads it: ``next_index`` in 0 … n_images, and per section (``layers``,
    ``evidence``) a table of the run's layers — all of them once images were counted (a missing layer would
    restart from zero beside the others' counts)."""

    def refuse(problem: str) -> UsageError:
        return UsageError(f"cannot resume from {path} ({problem}); pass --overwrite to start afresh")

    if not isinstance(state, dict):
        raise refuse(f"it holds {type(state).__name__}, not a checkpoint")
    index = state.get("next_index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= n_images:
        raise refuse(f"next_index {_shown(index)} is not an image count 0-{n_images}")
    skipped = state.get("skipped", {})
    if not isinstance(skipped, dict) or not all(isinstance(k, int) and 0 <= k < n_images and isinstance(v, str)
                                                for k, v in skipped.items()):
        raise refuse("its skipped images are not image numbers with reasons")
    if not isinstance(state.get("labels", {}), dict):
        raise refuse("its label cache state is not a table")
    counted = index - len(skipped)
    for section in sections:
        table = state.get(section, {})
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise refuse(f"{section} is not a table of layer states")
        extra = sorted(set(table) - set(layers), key=str)
        if extra:
            raise refuse(f"{section} holds layer {extra[0]!r}, which this run does not dissect")
        if counted > 0 and set(table) != set(layers):
            missing = sorted(set(layers) - set(table))
            raise refuse(f"{section} lacks layer {missing[0]!r} after {index} images")
    return state


def check_layer_shape(shape: object, path: Path, name: str) -> tuple[int, int, int]:
    """A checkpointed layer shape: three positive sizes."""
    if (not isinstance(shape, tuple | list) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise UsageError(f"cannot resume from {path} (layer {name!r} has shape {_shown(shape)}); "
                         "pass --overwrite to start afresh")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def check_cache_file(path: Path, expected: int, state: Path) -> None:
    """An activation cache beside a checkpoint: present and holding at least the rows it claims (rows appended
    after the checkpoint are cut off on resume)."""
    size = path.stat().st_size if path.is_file() else None
    if size is None or size < expected:
        found = "missing" if size is None else f"{size:,} bytes"
        raise UsageError(f"cannot resume from {state}: {path.name} is {found}, expected {expected:,} bytes or more; "
                         "pass --overwrite to start afresh")
