"""Where the raw table comes from: files, bundled sklearn sets, the local Keras cache, generators.

Every reader returns a pandas DataFrame with named columns; nothing here knows about features,
tasks or splits. No TensorFlow and no Keras: Keras sets are read from Keras's cache folder with
numpy, and nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nettrain.errors import DataError

TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".jsonl", ".npz")
# pandas reads these compressed text files transparently (data.csv.gz, data.jsonl.zst, ...)
COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")

SKLEARN_SETS = {  # name -> (loader, classification)
    "iris": ("load_iris", True),
    "breast_cancer": ("load_breast_cancer", True),
    "wine": ("load_wine", True),
    "digits": ("load_digits", True),
    "diabetes": ("load_diabetes", False),
}
KERAS_SETS = {  # name -> task of its labels (integers that auto-inference could misread)
    "mnist": "multiclass",
    "imdb": "binary",
    "reuters": "multiclass",
    "boston_housing": "regression",
}
DEFAULT_TARGET = "target"
TEXT_COLUMN = "text"


@dataclass
class RawData:
    """The raw table(s) of a config's data section, before any column is chosen."""

    frames: dict[str, pd.DataFrame]        # "source", or "train" / "validation" / "test"
    description: str                        # path, bundled name or generator call
    paths: dict[str, str] = field(default_factory=dict)  # part -> file, for messages
    default_target: str | None = None       # bundled sets and generators name their target
    kinds: dict[str, str] = field(default_factory=dict)  # column -> kind the source implies
    task_hint: str | None = None            # bundled sets whose labels are known


# ------------------------------------------------------------------------------- files

def table_kind(path: str | os.PathLike) -> str:
    """The extension that decides how a file is read ('.csv', ...), compression suffix ignored."""
    name = Path(path).name.lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp) and name[: -len(comp)].endswith((".csv", ".tsv", ".jsonl")):
            name = name[: -len(comp)]
            break
    return Path(name).suffix


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader by extension.

    .csv, .tsv (tab separated), .parquet, .jsonl (one JSON object per line), .npz (arrays
    `x`/`X` and `y`, or `x_train`, `y_train`, `x_test`, `y_test`; extra dimensions of x are
    flattened into columns x0..xN and y becomes the column `target`). Raises DataError with the
    path for a missing, unreadable, empty or header-only file and for an unknown extension.
    """
    p = Path(path)
    kind = table_kind(p)
    if kind not in TABLE_EXTENSIONS:
        raise DataError(f"{p}: unknown data file type {kind or '(no extension)'!r}; allowed: "
                        f"{', '.join(TABLE_EXTENSIONS)} (also .csv/.tsv/.jsonl compressed with "
                        f"{', '.join(COMPRESSIONS)})")
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if not p.is_file():
        raise DataError(f"not a file: {p}")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: the file is empty")
    try:
        if kind == ".npz":
            frame = _read_npz(p)
        elif kind in (".csv", ".tsv"):
            frame = pd.read_csv(p, sep="\t" if kind == ".tsv" else ",")
        elif kind == ".parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_json(p, lines=True)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from None
    except Exception as e:  # parser, arrow, json, OS errors: one line, no traceback
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{p}: cannot read it as {kind[1:]}: {reason}") from None
    if frame.shape[1] == 0:
        raise DataError(f"{p}: no columns found")
    if len(frame) == 0:
        raise DataError(f"{p}: the file has a header but no rows (columns: {_list(frame.columns)})")
    frame.columns = [str(c) for c in frame.columns]
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1):
        # parquet may restore a saved index: keep a named one as a column; rows are numbered by position
        named = any(name is not None for name in frame.index.names)
        frame = frame.reset_index(drop=not named)
        frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_npz(path: Path) -> pd.DataFrame:
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    with arrays:
        names = list(arrays.files)
        try:
            if "x_train" in names and "y_train" in names:
                xs = [arrays["x_train"]] + ([arrays["x_test"]] if "x_test" in names else [])
                ys = [arrays["y_train"]] + ([arrays["y_test"]] if "y_test" in names else [])
                for a, b, part in zip(xs, ys, ("train", "test")):
                    if len(a) != len(b):
                        raise DataError(f"{path}: x_{part} has {len(a)} rows but y_{part} has {len(b)}")
                x = np.concatenate([a.reshape(len(a), -1) for a in xs]) if len(xs) > 1 else xs[0]
                y = np.concatenate([b.reshape(len(b), -1) for b in ys]) if len(ys) > 1 else ys[0]
            else:
                xkey = "x" if "x" in names else "X" if "X" in names else None
                ykey = "y" if "y" in names else "Y" if "Y" in names else None
                if xkey is None or ykey is None:
                    raise DataError(f"{path}: expected arrays 'x' and 'y' (or x_train, y_train, x_test, "
                                    f"y_test); the archive holds: {_list(names) or 'nothing'}")
                x, y = arrays[xkey], arrays[ykey]
        except ValueError as e:
            if "allow_pickle" in str(e):
                raise DataError(f"{path}: holds Python objects; nettrain reads only plain numeric "
                                "arrays from .npz files (pickled data can run code)") from None
            raise
    return arrays_to_frame(x, y, str(path))


def arrays_to_frame(x: np.ndarray, y: np.ndarray, where: str) -> pd.DataFrame:
    """Features x (n, ...) flattened into columns x0..xN, labels y (n,) as column `target`."""
    x = np.asarray(x)
    y = np.asarray(y)
    n = len(x)
    if n == 0:
        raise DataError(f"{where}: the arrays have no rows")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: x must hold numbers, got dtype {x.dtype}")
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
    """The raw table(s) a config's `data` section names. Mistakes raise cfg.error / DataError."""
    data = cfg.data
    if data.source is None:
        frames, paths = {}, {}
        for part in ("train", "validation", "test"):
            path = getattr(data, part)
            if path is not None:
                frames[part] = _read_file(cfg, f"data.{part}", path)
                paths[part] = path
        desc = ", ".join(f"{k}={v}" for k, v in paths.items())
        return RawData(frames, desc, paths,
                       default_target=DEFAULT_TARGET if table_kind(data.train) == ".npz" else None)
    src = data.source
    if not isinstance(src, str):
        return _generate(cfg, src)
    if src.startswith("sklearn:"):
        return _read_sklearn(cfg, src.split(":", 1)[1])
    if src.startswith("keras:"):
        return _read_keras(cfg, src.split(":", 1)[1])
    frame = _read_file(cfg, "data.source", src)
    default = DEFAULT_TARGET if table_kind(src) == ".npz" else None
    return RawData({"source": frame}, src, {"source": src}, default_target=default)


def _read_file(cfg, key: str, path: str) -> pd.DataFrame:
    p = Path(path)
    if table_kind(p) not in TABLE_EXTENSIONS:
        raise cfg.error(key, f"unknown data file type {table_kind(p) or '(no extension)'!r} ({path}); "
                        f"allowed: {', '.join(TABLE_EXTENSIONS)}, sklearn:NAME, keras:NAME or a generator")
    if not p.exists():
        raise cfg.error(key, f"data file not found: {path}")
    return read_table(p)


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


# ------------------------------------------------------------------------------ Keras

def keras_cache_dirs() -> list[Path]:
    """Folders where Keras keeps downloaded datasets, in the order Keras itself uses them."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return [Path(home).expanduser() / "datasets"]
    return [Path("~/.keras").expanduser() / "datasets", Path("/tmp/.keras/datasets")]


def _read_keras(cfg, name: str) -> RawData:
    if name not in KERAS_SETS:
        raise cfg.error("data.source", f"unknown Keras set 'keras:{name}'; {did_you_mean(name, KERAS_SETS)}"
                        f"allowed: {', '.join('keras:' + n for n in KERAS_SETS)}")
    file = f"{name}.npz"
    dirs = keras_cache_dirs()
    path = next((d / file for d in dirs if (d / file).is_file()), None)
    if path is None:
        raise cfg.error("data.source", f"keras:{name} needs the file {dirs[0] / file} (the Keras cache, "
                        "$KERAS_HOME/datasets or ~/.keras/datasets) and it is absent; nettrain does not "
                        f"download: fetch it once with keras.datasets.{name}.load_data() on a machine "
                        "with network access and copy it there")
    # imdb and reuters hold ragged token-id sequences (object arrays), as Keras itself stores them
    pickled = name in ("imdb", "reuters")
    try:
        with np.load(path, allow_pickle=pickled) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"{path}: not a readable Keras dataset file ({e}); delete it and fetch it again") from None
    try:
        if "x_train" in arrays:
            x = [arrays["x_train"]] + ([arrays["x_test"]] if "x_test" in arrays else [])
            y = [arrays["y_train"]] + ([arrays["y_test"]] if "y_test" in arrays else [])
        else:
            x, y = [arrays["x"]], [arrays["y"]]
    except KeyError as e:
        raise DataError(f"{path}: missing array {e}; it holds {_list(arrays)}. Delete it and fetch it "
                        "again") from None
    y_all = np.concatenate([np.asarray(a).reshape(-1) for a in y])
    kinds: dict[str, str] = {}
    if pickled:
        texts = np.empty(sum(len(a) for a in x), dtype=object)
        i = 0
        for part in x:
            for seq in part:
                texts[i] = " ".join(map(str, seq))
                i += 1
        frame = pd.DataFrame({TEXT_COLUMN: texts})
        frame[DEFAULT_TARGET] = y_all
        kinds[TEXT_COLUMN] = "text"
    else:
        x_all = np.concatenate([a.reshape(len(a), -1) for a in x]) if len(x) > 1 else x[0]
        frame = arrays_to_frame(x_all, y_all, str(path))
    return RawData({"source": frame}, f"keras:{name}", {"source": str(path)},
                   default_target=DEFAULT_TARGET, kinds=kinds, task_hint=KERAS_SETS[name])


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


# ----------------------------------------------------------------------------- helpers

def did_you_mean(word: str, choices) -> str:
    """"did you mean 'x'? " for the closest choice, or "" (case and '_' insensitive as a fallback)."""
    import difflib

    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        folded = {c.lower().replace("_", "").replace(" ", ""): c for c in choices}
        hit = difflib.get_close_matches(word.lower().replace("_", "").replace(" ", ""), list(folded), n=1,
                                        cutoff=0.6)
        close = [folded[h] for h in hit]
    return f"did you mean '{close[0]}'? " if close else ""


def _list(names, limit: int = 20, quote: bool = False) -> str:
    names = [f"'{n}'" if quote else str(n) for n in names]
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names)} in all)" if len(names) > limit else "")


list_names = _list
