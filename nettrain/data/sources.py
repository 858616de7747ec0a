"""Where the raw table comes from: files, bundled sklearn sets, the local Keras cache, generators.

Every reader returns a pandas DataFrame with named columns; nothing here knows about features,
tasks or splits. No TensorFlow and no Keras: Keras sets are read from Keras's cache folder with
numpy, and nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nettrain.data.kinds import (COMPRESSIONS, TABLE_EXTENSIONS, kind_problem,  # noqa: F401 - the one rule,
                                 table_kind)  # also sources'
from nettrain.config.loader import URL
from nettrain.data.npz import NpzReader
from nettrain.errors import DataError
from nettrain.words import did_you_mean, list_names, reason, show_name

# pandas reads these compressed text files transparently (data.csv.gz, data.jsonl.zst, ...)

SKLEARN_SETS = {  # name -> (loader, classification)
    "iris": ("load_iris", True),
    "breast_cancer": ("load_breast_cancer", True),
    "wine": ("load_wine", True),
    "digits": ("load_digits", True),
    "diabetes": ("load_diabetes", False),
}
DEFAULT_TARGET = "target"


@dataclass
class RawData:
    """The raw table(s) of a config's data section, before any column is chosen."""

    frames: dict[str, pd.DataFrame]        # "source", or "train" / "validation" / "test"
    description: str                        # path, bundled name or generator call
    paths: dict[str, str] = field(default_factory=dict)  # part -> file, for messages
    default_target: str | None = None       # bundled sets and generators name their target
    kinds: dict[str, str] = field(default_factory=dict)  # column -> kind the source implies
    task_hint: str | None = None            # bundled sets whose labels are known
    # a source with its own train/test split (Keras sets, an .npz with x_train ... y_test): frames
    # "train" and "test"; this says where the split comes from, for notes and messages
    official: str | None = None
    # data.validation / data.test files, checked but not read yet (part -> path): `read_later` reads
    # them once the training file's columns are typed, so that their cells are typed by its types
    later: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------- files

def read_table(path: str | os.PathLike, text: list[str] | None = None) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader by extension.

    .csv, .tsv (tab separated), .parquet, .jsonl (one JSON object per line), .npz (arrays
    `x`/`X` and `y`, or `x_train`, `y_train`, `x_test`, `y_test`, read as one table: the train
    rows, then the test rows; extra dimensions of x are flattened into columns x0..xN and y
    becomes the column `target`). Raises DataError with the
    path for a missing, unreadable, empty or header-only file, for an unknown extension, and for
    a file that parses but cannot be used as a table: duplicate column names, a row with more
    fields than the header, NUL bytes (binary data), nested JSON or parquet values, JSON lines
    that are not objects, and .npz arrays that hold Python objects (nothing is ever unpickled).

    `text`: columns of a CSV/TSV read as the text of their cells (None where missing), for a reader
    that types them by a stored cell type (`data.cells.typed`).
    """
    return _read(path, split=False, text=text)[SOURCE]


def read_parts(path: str | os.PathLike, text: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Like `read_table`, but an .npz holding its own split (x_train, y_train, x_test, y_test)
    comes back as {"train": ..., "test": ...}; every other file as {"source": table}."""
    return _read(path, split=True, text=text)


SOURCE = "source"


def part_name(path, part: str) -> str:
    """How messages name one part of an .npz with its own split: `d.npz (x_test, y_test)`."""
    return f"{path} (x_{part}, y_{part})"


def _read(path: str | os.PathLike, split: bool, text: list[str] | None = None) -> dict[str, pd.DataFrame]:
    p = Path(path)
    kind = table_kind(p)
    problem = kind_problem(p)
    if problem:
        raise DataError(f"{p}: {problem}")
    check_file(p)
    if kind in (".csv", ".tsv", ".jsonl") and p.suffix.lower() not in COMPRESSIONS:
        sniff_text(p, kind)
    try:
        if kind == ".npz":
            return _read_npz(p, split)
        elif kind in (".csv", ".tsv"):
            frame = _read_delimited(p, text)
        elif kind == ".parquet":
            frame = _read_parquet(p)
        else:
            frame = _read_jsonl(p)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from None
    except Exception as e:  # parser, arrow, json, OS errors: one line, no traceback
        raise DataError(f"{p}: cannot read it as {kind[1:]}: {reason(e)}") from None
    if frame.shape[1] == 0:
        raise DataError(f"{p}: no columns found")
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1):
        # parquet may restore a saved index: keep a named one as a column; rows are numbered by position
        named = [str(n) for n in frame.index.names if n is not None]
        check_unique(p, [str(c) for c in frame.columns] + named)
        frame = frame.reset_index(drop=not named)
    frame.columns = [str(c) for c in frame.columns]
    check_unique(p, list(frame.columns))
    if len(frame) == 0:
        raise DataError(f"{p}: the file has a header but no rows (columns: {list_names(frame.columns)})")
    _check_cells(p, frame)
    return {SOURCE: frame}


def sniff_text(p: Path, kind: str) -> None:
    """A binary file (an image, a spreadsheet, UTF-16 text) under a text extension: say so up front."""
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError as e:
        raise DataError(f"{p}: cannot read it: {e.strerror or e}") from None
    at = head.find(b"\x00")
    if at >= 0:
        raise DataError(f"{p}: holds a NUL byte at byte {at}: a binary file, or text not saved as UTF-8 "
                        f"(UTF-16?); nettrain reads {kind[1:]} files as UTF-8 text")


def check_unique(p: Path, names: list[str]) -> None:
    """Two columns of one name (`a,a` in a header; columns 1 and "1"): refused, never renamed."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    dups = [n for n, k in seen.items() if k > 1]
    if dups:
        counts = ", ".join(f"'{show_name(n)}' ({seen[n]} times)" for n in dups[:10])
        raise DataError(f"{p}: duplicate column name{'s' if len(dups) > 1 else ''} {counts}; every column "
                        "needs its own name: rename or remove the copies")


def _read_delimited(p: Path, text: list[str] | None = None) -> pd.DataFrame:
    """A CSV/TSV file read whole, as `dialect` says it is written (delimiter, decimal mark; the text of
    a file with decimal commas gets decimal points, as the chunk reader gives it). A row with more or
    fewer fields than the header is refused with its line, as the chunk reader refuses it: pandas
    would take the extra leading fields of longer rows for an index (also one of row numbers, which
    looks like none) and fill the missing fields of a shorter row (a line cut short) with gaps."""
    import warnings

    from nettrain.data.chunks import bad_line, decimal_points
    from nettrain.data.dialect import dialect

    form = dialect(p)
    sep = form.delimiter
    with warnings.catch_warnings():   # (rows longer than the header are refused below)
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        frame = pd.read_csv(p, sep=sep, decimal=form.decimal, index_col=False,
                            dtype={name: object for name in text} if text else None)
    try:  # (index_col=False: a first data row longer than the header has its end dropped, or ignored
        # when empty, a delimiter at the end of each line: that row read with the header as two rows)
        pd.read_csv(p, sep=sep, header=None, nrows=2, dtype=str, keep_default_na=False)
    except pd.errors.ParserError:
        first = pd.read_csv(p, sep=sep, header=None, skiprows=1, nrows=1, dtype=str, keep_default_na=False)
        ends = first.shape[1] > frame.shape[1] and first.iloc[0, -1] == ""
        raise DataError(f"{p}: the data rows have {first.shape[1]} fields (line 2) but the header has "
                        f"{frame.shape[1]} names; give every column a name in the first line"
                        f"{' (or delete the delimiter at the end of each line)' if ends else ''}") from None
    if frame.shape[1] and frame.iloc[:, -1].isna().any():   # (a row cut short leaves its last cell empty)
        wrong = bad_line(p)
        if wrong is not None:
            raise wrong
    if form.decimal_comma:
        for name in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[name].dtype):  # (booleans are numeric to pandas)
                frame[name] = decimal_points(frame[name])
    columns = [str(c) for c in frame.columns]
    present = set(columns)
    if any(m and m.group(1) in present for m in map(_MANGLED.match, columns)):
        # pandas renames a repeated header name `a` to `a.1`: read the header as written
        raw = pd.read_csv(p, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
        check_unique(p, [n for n in raw.iloc[0].tolist() if n != ""])
    return frame


_MANGLED = re.compile(r"^(.*)\.\d+$", re.S)


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    schema = pq.read_schema(p)
    check_unique(p, [str(n) for n in schema.names])
    check_flat(p, schema)
    return pd.read_parquet(p)


def check_flat(p: Path, schema) -> None:
    """A parquet file's columns (its pyarrow `schema`) hold one number or string per cell: a nested
    column (lists, structs, maps) is a DataError naming it."""
    from pyarrow import types as pat

    for f in schema:
        if pat.is_nested(f.type) or (pat.is_dictionary(f.type) and pat.is_nested(f.type.value_type)):
            raise DataError(f"{p}: column '{show_name(f.name)}' holds nested values ({show_name(str(f.type), 80)}); "
                            "nettrain reads flat columns: one number or string per cell")


def _read_jsonl(p: Path) -> pd.DataFrame:
    import io

    from pandas.io.common import get_handle

    with get_handle(p, "r", encoding="utf-8", compression="infer") as handle:
        text = handle.handle.read()
    _check_json_lines(p, text)
    return pd.read_json(io.StringIO(text), lines=True)


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


_JSON = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def _check_json_lines(p: Path, text: str) -> None:
    """Every line of a .jsonl file is valid JSON holding one object with distinct keys.

    pandas alone would turn a line such as ["ab"] into {"a": "b"} and keep the last of two
    equal keys: both would lose data silently.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = _JSON.decode(line)
        except _DuplicateKey as e:
            raise DataError(f"{p}: line {number}: key '{show_name(e.args[0])}' appears twice in one object; "
                            "every column needs its own name") from None
        except RecursionError:
            raise DataError(f"{p}: line {number} is nested too deeply") from None
        except ValueError as e:
            raise DataError(f"{p}: cannot read it as jsonl: line {number} is not valid JSON "
                            f"({show_name(getattr(e, 'msg', e), 120)})") from None
        if not isinstance(value, dict):
            what = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
                type(value), "a number")
            raise DataError(f"{p}: line {number} is {what}, not a JSON object; a .jsonl file holds one "
                            'object per line: {"column": value, ...}')


_NESTED = (dict, list, tuple, set, np.ndarray)


def _check_cells(p: Path, frame: pd.DataFrame) -> None:
    """NUL bytes (binary data, UTF-16 text) and nested values (JSON objects or arrays) are refused."""
    from pandas.api.types import infer_dtype, is_string_dtype

    for name in frame.columns:
        if "\x00" in name:
            raise DataError(f"{p}: column name '{show_name(name)}' holds a NUL byte: binary data, or text not "
                            "saved as UTF-8 (UTF-16?); save the file as UTF-8 text")
    for name in frame.columns:
        series = frame[name]
        if series.dtype != object and not is_string_dtype(series.dtype):
            continue
        if series.dtype != object or infer_dtype(series, skipna=True) in ("string", "empty"):
            hit = series.str.contains("\x00", regex=False, na=False).to_numpy(dtype=bool)
            if hit.any():
                _bad_cell(p, name, int(np.argmax(hit)), "a NUL byte: binary data, or text not saved as UTF-8 "
                          "(UTF-16?); save the file as UTF-8 text")
            continue
        for pos, value in enumerate(series.to_numpy()):
            if isinstance(value, _NESTED):
                what = "an object" if isinstance(value, dict) else "a list"
                _bad_cell(p, name, pos, f"{what} ({show_name(repr(value), 40)}); nettrain reads flat values: "
                          "one number or string per column, no nested JSON")
            if isinstance(value, str) and "\x00" in value:
                _bad_cell(p, name, pos, "a NUL byte: binary data, or text not saved as UTF-8; save the file "
                          "as UTF-8 text")


def _bad_cell(p: Path, name: str, pos: int, what: str):
    raise DataError(f"{p}: column '{show_name(name)}', row {pos + 1}: holds {what}")


# ------------------------------------------------------------------------------- .npz

def _read_npz(path: Path, split: bool = False) -> dict[str, pd.DataFrame]:
    """{"source": table}; with `split`, {"train", "test"} for an archive that holds both parts."""
    with NpzReader(path) as npz:
        names = npz.names
        if "x_train" in names and "y_train" in names:
            for a, b in (("x_test", "y_test"), ("y_test", "x_test")):
                if a in names and b not in names:
                    raise DataError(f"{path}: holds {a} but no {b}; give both or neither")
            parts = ["train"] + (["test"] if "x_test" in names else [])
            xs = [npz.load(f"x_{part}") for part in parts]
            ys = [npz.load(f"y_{part}") for part in parts]
            for a, b, part in zip(xs, ys, parts):
                check_rows(path, a, f"x_{part}")
                check_rows(path, b, f"y_{part}")
                if len(a) != len(b):
                    raise DataError(f"{path}: x_{part} has {len(a)} rows but y_{part} has {len(b)}")
            if split and len(parts) == 2:
                same_shapes(path, xs, "x", parts)
                same_shapes(path, ys, "y", parts)
                return {part: arrays_to_frame(a, b, part_name(path, part)) for part, a, b in zip(parts, xs, ys)}
            x, y = _concat(path, xs, "x", parts), _concat(path, ys, "y", parts)
        else:
            xkey = "x" if "x" in names else "X" if "X" in names else None
            ykey = "y" if "y" in names else "Y" if "Y" in names else None
            if xkey is None or ykey is None:
                raise DataError(f"{path}: expected arrays 'x' and 'y' (or x_train, y_train, x_test, "
                                f"y_test); the archive holds: {list_names(names) or 'nothing'}")
            x, y = npz.load(xkey), npz.load(ykey)
            check_rows(path, x, xkey)
            check_rows(path, y, ykey)
    return {SOURCE: arrays_to_frame(x, y, str(path))}


def npz_x_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The shape of x (x_train, x or X) in an .npz archive, from the array's header alone (nothing is
    loaded); None when there is no such array or the file cannot be read so."""
    import zipfile

    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as archive:
            names = {i.filename[:-4]: i.filename for i in archive.infolist() if i.filename.endswith(".npy")}
            key = next((k for k in ("x_train", "x", "X") if k in names), None)
            if key is None:
                return None
            with archive.open(names[key]) as fp:
                version = npy.read_magic(fp)
                header = npy.read_array_header_1_0(fp) if version == (1, 0) else npy.read_array_header_2_0(fp)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    return tuple(int(n) for n in header[0])


def npz_row_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The shape of one row of x in an .npz archive (`npz_x_shape`); None for rows that are plain
    vectors or a file that cannot be read so."""
    shape = npz_x_shape(path)
    return shape[1:] if shape is not None and len(shape) > 2 else None


def row_shape(cfg) -> tuple[int, ...] | None:
    """The row shape of x of a config's .npz data (data.source or data.train, or a Keras set's cached
    file) when its rows have more than one dimension ((28, 28) for keras:mnist), else None."""
    src = cfg.data.source if cfg.data.source is not None else cfg.data.train
    if not isinstance(src, str):
        return None
    if src.startswith("keras:"):
        from nettrain.data.keras_sets import keras_cache_dirs

        found = [d / f"{src[6:]}.npz" for d in keras_cache_dirs() if (d / f"{src[6:]}.npz").is_file()]
        return npz_row_shape(found[0]) if found else None
    return npz_row_shape(src) if table_kind(src) == ".npz" else None


def check_rows(path, a: np.ndarray, name: str) -> None:
    if a.ndim == 0:
        raise DataError(f"{path}: array '{name}' is a single value (a 0-d array); expected one row per "
                        "example, shape (n, ...)")


def same_shapes(path, arrays: list[np.ndarray], what: str, parts: list[str]) -> None:
    shapes = [a.shape[1:] for a in arrays]
    if len(set(shapes)) > 1:
        detail = ", ".join(f"{what}_{p} rows {s}" for p, s in zip(parts, shapes))
        raise DataError(f"{path}: the parts have rows of different shapes ({detail}); they must match")


def _concat(path, arrays: list[np.ndarray], what: str, parts: list[str]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    same_shapes(path, arrays, what, parts)
    return np.concatenate(arrays)


def arrays_to_frame(x: np.ndarray, y: np.ndarray, where: str) -> pd.DataFrame:
    """Features x (n, ...) flattened into columns x0..xN, labels y (n,) as column `target`."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{where}: {'x' if x.ndim == 0 else 'y'} is a single value (a 0-d array); expected "
                        "one row per example, shape (n, ...)")
    n = len(x)
    if n == 0:
        raise DataError(f"{where}: the arrays have no rows")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: x must hold numbers, got dtype {x.dtype}")
    if y.dtype.kind == "S":
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: y holds byte strings that are not UTF-8 text") from None
    if y.dtype.kind not in "biufU":
        raise DataError(f"{where}: y must hold numbers or text labels, got dtype {y.dtype}")
    if len(y) != n:
        raise DataError(f"{where}: x has {n} rows but y has {len(y)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: y has shape {y.shape}; nettrain expects one label per row, shape ({n},)")
    flat = x.reshape(n, -1)  # a view for contiguous arrays: no copy
    frame = pd.DataFrame(flat, columns=[f"x{i}" for i in range(flat.shape[1])], copy=False)
    frame[DEFAULT_TARGET] = y
    return frame


# ------------------------------------------------------------------------- the config

def read_source(cfg) -> RawData:
    """The raw table(s) a config's `data` section names. Mistakes raise cfg.error / DataError.

    Of separate files, data.train is read; data.validation and data.test are checked (a known file
    type that exists) and left to `read_later`."""
    data = cfg.data
    if data.source is None:
        paths = {part: getattr(data, part) for part in ("train", "validation", "test")
                 if getattr(data, part) is not None}
        frames = {"train": _read_file(cfg, "data.train", paths["train"])}
        later = {part: path for part, path in paths.items() if part != "train"}
        for part, path in later.items():
            _check_path(cfg, f"data.{part}", path)
        desc = ", ".join(f"{k}={v}" for k, v in paths.items())
        return RawData(frames, desc, paths,
                       default_target=DEFAULT_TARGET if table_kind(data.train) == ".npz" else None, later=later)
    src = data.source
    if not isinstance(src, str):
        return _generate(cfg, src)
    if src.startswith("sklearn:"):
        return _read_sklearn(cfg, src.split(":", 1)[1])
    if src.startswith("keras:"):
        from nettrain.data.keras_sets import read_keras

        return read_keras(cfg, src.split(":", 1)[1])
    frames = _read_parts(cfg, "data.source", src)
    default = DEFAULT_TARGET if table_kind(src) == ".npz" else None
    if SOURCE in frames:
        return RawData(frames, src, {SOURCE: src}, default_target=default)
    return RawData(frames, src, {part: part_name(src, part) for part in frames}, default_target=default,
                   official=f"{src} holds its own split (x_train, y_train / x_test, y_test)")


def read_later(cfg, raw: RawData, text: list[str]) -> dict[str, pd.DataFrame]:
    """{part: table} of the files `read_source` left for later (data.validation, data.test), the
    columns `text` of a CSV/TSV read as the text of their cells (`data.cells.text_columns` of the
    training file's schema), to be typed by the training file's cell types (`data.cells.typed_table`)."""
    return {part: _read_file(cfg, f"data.{part}", path, text) for part, path in raw.later.items()}


def _check_path(cfg, key: str, path: str) -> Path:
    p = Path(path)
    problem = kind_problem(path, named=True, sets=key == "data.source")
    if problem:
        raise cfg.error(key, problem)
    if not p.exists():
        raise cfg.error(key, f"data file not found: {path}")
    return p


def _read_parts(cfg, key: str, path: str, text: list[str] | None = None) -> dict[str, pd.DataFrame]:
    return read_parts(_check_path(cfg, key, path), text=text)


def _read_file(cfg, key: str, path: str, text: list[str] | None = None) -> pd.DataFrame:
    """One file of data.train / data.validation / data.test: a plain table. An .npz holding its own
    train/test split is refused there: its test rows would silently join this part."""
    frames = _read_parts(cfg, key, path, text)
    if SOURCE not in frames:
        raise cfg.error(key, f"{path} holds its own train/test split (x_train, y_train, x_test, y_test); give it "
                        "as data.source, where its x_test rows become the test split, or save the rows of "
                        "this part alone as arrays x and y")
    return frames[SOURCE]


def _read_sklearn(cfg, name: str) -> RawData:
    if name not in SKLEARN_SETS:
        raise cfg.error("data.source", f"unknown bundled set 'sklearn:{name}'; {did_you_mean(name, SKLEARN_SETS)}"
                        f"allowed: {', '.join('sklearn:' + n for n in SKLEARN_SETS)}")
    import sklearn.datasets  # slow (~1 s): only when a bundled set is used

    loader, classification = SKLEARN_SETS[name]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.copy() if bunch.frame is not None else bunch.data.assign(target=bunch.target)
    frame.columns = [str(c) for c in frame.columns]
    if classification:
        names = np.asarray([str(t) for t in bunch.target_names], dtype=object)
        frame[DEFAULT_TARGET] = names[np.asarray(bunch.target, dtype=np.int64)]
    return RawData({"source": frame}, f"sklearn:{name}", default_target=DEFAULT_TARGET,
                   task_hint=None if classification else "regression")


# -------------------------------------------------------------------------- generators

def _generate(cfg, src) -> RawData:
    import sklearn.datasets  # slow (~1 s): only when a generator is used

    kwargs: dict[str, Any] = src.kwargs()
    kwargs.setdefault("random_state", cfg.seed)
    for key in ("centers", "cluster_std", "center_box", "weights", "shift", "scale"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = np.asarray(kwargs[key], dtype=float)
    if src.generator == "make_blobs" and isinstance(kwargs.get("n_samples"), list):
        kwargs["n_samples"] = [int(v) for v in kwargs["n_samples"]]
    try:
        result = getattr(sklearn.datasets, src.generator)(**kwargs)
    except (TypeError, ValueError) as e:
        raise cfg.error("data.source", f"{src.generator} refused its arguments: {e}") from None
    if isinstance(result, tuple):
        x, y = result[0], result[1]
    else:  # a Bunch (return_X_y: false)
        x, y = result.data, result.target
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        raise cfg.error("data.source", f"{src.generator} made {y.shape[1]} targets per row; nettrain "
                        "trains one target: use n_targets: 1")
    args = ", ".join(f"{k}={v!r}" for k, v in src.kwargs().items())
    frame = arrays_to_frame(np.asarray(x), y, src.generator)
    return RawData({"source": frame}, f"{src.generator}({args})", default_target=DEFAULT_TARGET,
                   task_hint="regression" if src.generator == "make_regression" else None)


def check_file(p: Path) -> None:
    """A data file exists, can be accessed, is a file and is not empty (else a DataError naming it)."""
    try:
        exists, is_file = p.exists(), p.is_file()
        size = p.stat().st_size if is_file else 0
    except OSError as e:  # a name too long, a folder without access
        raise DataError(f"{p}: cannot access it: {e.strerror or e}") from None
    if not exists:
        if URL.match(str(p)):  # (its // made / by Path)
            raise DataError(f"data file not found: {p} (a URL? nettrain reads local files only: download it and "
                            f"give the file's path)")
        raise DataError(f"data file not found: {p}")
    if not is_file:
        if not p.is_dir():  # a pipe (mkfifo, <(...)) or a device: a data file is read more than once
            raise DataError(f"{p} is not a regular file (a pipe or a device); nettrain reads a data file more "
                            f"than once: save the data to a file and give its path")
        raise DataError(f"not a file: {p}")
    if size == 0:
        raise DataError(f"{p}: the file is empty")

