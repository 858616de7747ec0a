"""What kind of data a path or a config names, decided from names alone (no numpy, pandas or
pyarrow): `validate` asks these before any data library is imported, and the readers use the same
rules (`sources.table_kind`, `chunks.streamable`, `images.is_image_config` are these functions)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nettrain.config.loader import BUNDLED_PREFIXES

COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
STREAMABLE = (".csv", ".tsv", ".parquet")
# Compressions the chunk reader cannot open (pyarrow detects gzip and bz2 only): such files are read whole.
NOT_STREAMED = (".xz", ".zip", ".zst")
TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".jsonl", ".npz")


def table_kind(path: str | os.PathLike) -> str:
    """The extension that decides how a file is read ('.csv', ...), compression suffix ignored."""
    name = Path(path).name.lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp) and name[: -len(comp)].endswith((".csv", ".tsv", ".jsonl")):
            name = name[: -len(comp)]
            break
    return Path(name).suffix


def kind_problem(path: str | os.PathLike, *, named: bool = False, sets: bool = False) -> str | None:
    """What is wrong with a data file's type, judged by its name, else None. `named`: the path in the
    message; `sets`: a config's data.source, which may also name a bundled set or a generator."""
    kind = table_kind(path)
    if kind in TABLE_EXTENSIONS:
        return None
    also = ", sklearn:NAME, keras:NAME or a generator" if sets else ""
    return (f"unknown data file type {kind or '(no extension)'!r}{f' ({path})' if named else ''}; allowed: "
            f"{', '.join(TABLE_EXTENSIONS)}{also} (.csv, .tsv, .jsonl also compressed with {', '.join(COMPRESSIONS)})")


def streamable(path: str | os.PathLike) -> bool:
    """Whether a data file can be read in chunks: CSV/TSV (also gzip/bz2-compressed) and Parquet."""
    return table_kind(path) in STREAMABLE and not Path(path).name.lower().endswith(NOT_STREAMED)


def is_image_folder(source: Any) -> bool:
    """A `data.source` that names a folder (an image folder), not a file or a bundled set."""
    return isinstance(source, str) and os.path.isdir(source)


def is_image_config(config: Any) -> bool:
    """Whether a config (a Config or its saved dict) trains on an image folder."""
    data = (config.get("data") or {}) if isinstance(config, dict) else config.data
    if isinstance(data, dict):
        source, images = data.get("source"), data.get("images")
    else:
        source, images = data.source, getattr(data, "images", None)
    return images is not None or is_image_folder(source)


def config_kind_problem(cfg) -> tuple[str, str] | None:
    """(key, message) of the first data file of a config whose name no reader takes (`validate` asks it
    before any data is read). A folder, or a name without an extension that does not exist yet (an image
    folder to come), is left to the readers."""
    data = cfg.data
    for key in ("source", "train", "validation", "test"):
        path = getattr(data, key, None)
        if not isinstance(path, str) or path.startswith(BUNDLED_PREFIXES) or os.path.isdir(path):
            continue
        if not table_kind(path) and not os.path.exists(path):
            continue
        problem = kind_problem(path, named=True, sets=key == "source")
        if problem:
            return f"data.{key}", problem
    return None

