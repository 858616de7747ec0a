"""Keras's own datasets (`keras:mnist`, `keras:imdb`, `keras:reuters`, `keras:boston_housing`),
read from the local Keras cache with numpy: nothing is ever downloaded, and the text sets' pickled
object arrays go through `NpzReader`'s numpy-only unpickler. Each set keeps its official split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from nettrain.data.npz import NpzReader
from nettrain.data.sources import (DEFAULT_TARGET, RawData, check_rows, same_shapes, arrays_to_frame,
                                   part_name)
from nettrain.errors import DataError
from nettrain.words import did_you_mean, list_names, show_name

KERAS_SETS = {  # name -> task of its labels (integers that auto-inference could misread)
    "mnist": "multiclass",
    "imdb": "binary",
    "reuters": "multiclass",
    "boston_housing": "regression",
}
# keras:reuters and keras:boston_housing are cached as one table (x, y); Keras's load_data() shuffles
# it with this seed and keeps the last share as its test split
KERAS_TEST_SPLIT = {"reuters": 0.2, "boston_housing": 0.2}
KERAS_SPLIT_SEED = 113
MAX_TOKENS = 500_000_000  # keras:imdb holds about 12 million token ids
TEXT_COLUMN = "text"
RAGGED = ("imdb", "reuters")  # token-id sequences stored as numpy object arrays, as Keras stores them
AGAIN = "; delete it and fetch it again"


def keras_cache_dirs() -> list[Path]:
    """Folders where Keras keeps downloaded datasets, in the order Keras itself uses them."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return [Path(home).expanduser() / "datasets"]
    return [Path("~/.keras").expanduser() / "datasets", Path("/tmp/.keras/datasets")]


def read_keras(cfg, name: str) -> RawData:
    if name not in KERAS_SETS:
        raise cfg.error("data.source", f"unknown Keras set 'keras:{name}'; {did_you_mean(name, KERAS_SETS)}"
                        f"allowed: {', '.join('keras:' + n for n in KERAS_SETS)}")
    path = _cached_file(cfg, name)
    keys, x, y = _arrays(path, ragged=name in RAGGED)
    kinds: dict[str, str] = {}
    if name in RAGGED:
        frames = _text_frames(path, keys, x, y)
        kinds[TEXT_COLUMN] = "text"
    else:
        for (xk, _), part in zip(keys, x):
            check_rows(path, part, xk)
        same_shapes(path, x, "x", [k[2:] if k != "x" else "x" for k, _ in keys])
        frames = [arrays_to_frame(xa, ya, str(path)) for xa, ya in zip(x, y)]
    common = dict(default_target=DEFAULT_TARGET, kinds=kinds, task_hint=KERAS_SETS[name])
    if len(frames) == 2:  # x_train ... y_test: the official split
        return RawData({"train": frames[0], "test": frames[1]}, f"keras:{name}",
                       {part: part_name(path, part) for part in ("train", "test")},
                       official=f"keras:{name} keeps its official split", **common)
    if name in KERAS_TEST_SPLIT and keys == [("x", "y")]:
        split = _keras_split(path, name, frames[0], common)
        if split is not None:
            return split
    return RawData({"source": frames[0]}, f"keras:{name}", {"source": str(path)}, **common)


def _cached_file(cfg, name: str) -> Path:
    file = f"{name}.npz"
    dirs = keras_cache_dirs()
    path = next((d / file for d in dirs if _is_file(d / file)), None)
    if path is None:
        raise cfg.error("data.source", f"keras:{name} needs the file {dirs[0] / file} (the Keras cache, "
                        "$KERAS_HOME/datasets or ~/.keras/datasets) and it is absent; nettrain does not "
                        f"download: fetch it once with keras.datasets.{name}.load_data() on a machine "
                        "with network access and copy it there")
    return path


def _arrays(path: Path, ragged: bool) -> tuple[list[tuple[str, str]], list[np.ndarray], list[np.ndarray]]:
    """The (x, y) key pairs and arrays of the file: x_train/y_train(/x_test/y_test), or x/y."""
    try:
        with NpzReader(path, objects=ragged, what="Keras dataset file") as npz:
            if "x_train" in npz.names:
                keys = [("x_train", "y_train")] + ([("x_test", "y_test")] if "x_test" in npz.names else [])
            else:
                keys = [("x", "y")]
            lost = [k for pair in keys for k in pair if k not in npz.names]
            if lost:
                raise DataError(f"{path}: missing array{'s' if len(lost) > 1 else ''} {list_names(lost, quote=True)}; "
                                f"it holds {list_names(npz.names) or 'nothing'}")
            x = [npz.load(a) for a, _ in keys]
            y = [npz.load(b) for _, b in keys]
    except DataError as e:
        raise DataError(e.message + AGAIN) from None
    for (xk, yk), xa, ya in zip(keys, x, y):
        if ya.ndim != 1 or ya.dtype.kind not in "biuf" or len(ya) != (len(xa) if xa.ndim else -1):
            raise DataError(f"{path}: {yk} must be {len(xa) if xa.ndim else 'n'} numeric labels, got shape "
                            f"{ya.shape} and dtype {ya.dtype}{AGAIN}")
    return keys, x, y


def _text_frames(path: Path, keys, x: list[np.ndarray], y: list[np.ndarray]) -> list[pd.DataFrame]:
    """Token-id sequences as space-joined text (one column), checked to be lists of integers."""
    total = sum(len(seq) for part in x if part.ndim == 1 for seq in part if type(seq) is list)
    if total > MAX_TOKENS:
        raise DataError(f"{path}: holds {total} token ids, more than the {MAX_TOKENS} nettrain reads from a "
                        f"Keras text set{AGAIN}")
    frames = []
    for (xk, _), part, labels in zip(keys, x, y):
        if part.ndim != 1 or part.dtype != object:
            raise DataError(f"{path}: {xk} must be a 1-D array of token-id lists, got shape {part.shape} "
                            f"and dtype {part.dtype}{AGAIN}")
        texts = np.empty(len(part), dtype=object)
        for j, seq in enumerate(part):
            if type(seq) is not list or not all(t is int or (issubclass(t, np.integer) and t is not np.bool_)
                                                for t in set(map(type, seq))):
                raise DataError(f"{path}: {xk}[{j}] is not a list of integer token ids "
                                f"({show_name(repr(seq), 40)}){AGAIN}")
            texts[j] = " ".join(map(str, seq))
        frame = pd.DataFrame({TEXT_COLUMN: texts})
        frame[DEFAULT_TARGET] = labels
        frames.append(frame)
    return frames


def _keras_split(path: Path, name: str, frame: pd.DataFrame, common: dict) -> RawData | None:
    """The train/test split keras.datasets.<name>.load_data() makes of a one-table file."""
    n = len(frame)
    order = np.arange(n)
    np.random.RandomState(KERAS_SPLIT_SEED).shuffle(order)
    cut = int(n * (1 - KERAS_TEST_SPLIT[name]))
    if not 0 < cut < n:
        return None
    return RawData({"train": frame.iloc[order[:cut]], "test": frame.iloc[order[cut:]]}, f"keras:{name}",
                   {"train": f"{path} (Keras's training rows)", "test": f"{path} (Keras's test rows)"},
                   official=f"keras:{name} keeps the split of keras.datasets.{name}.load_data() "
                            f"(test_split={KERAS_TEST_SPLIT[name]}, seed={KERAS_SPLIT_SEED})", **common)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
