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


def config_name_problem(cfg, target: str | None = None) -> tuple[str, str] | None:
    """(key, message) of the first of the data section's column names that contradict each other (the
    target also an id, dropped, a feature or typed; a name listed twice; a feature also dropped or the
    id), judged from the config alone: `validate` asks it before any data is read, and the loader
    before it looks the names up in the data. `target`: the target a bundled file implies when
    data.target is not given."""
    data = cfg.data
    target = data.target or target
    if data.id is not None and data.id == target:
        return "data.id", f"'{target}' is the target; the id column must be another column"
    for i, name in enumerate(data.drop):
        if name == target:
            return f"data.drop.{i}", f"'{name}' is the target and cannot be dropped"
        if name in data.drop[:i]:
            return f"data.drop.{i}", f"'{name}' is listed twice"
    features = list(data.features) if data.features is not None else []
    for i, name in enumerate(features):
        key = f"data.features.{i}"
        if name == target:
            return key, f"'{name}' is the target; it cannot also be a feature"
        if data.id is not None and name == data.id:
            return key, f"'{name}' is the id column (data.id); it cannot also be a feature"
        if name in data.drop:
            return key, f"'{name}' is listed in both data.features and data.drop; keep one"
        if name in features[:i]:
            return key, f"'{name}' is listed twice"
    if data.features is not None and not features:
        return "data.features", "an empty list leaves no feature column; list the columns to use, or remove the key"
    if target is not None and target in data.columns:
        return (f"data.columns.{target}", f"'{target}' is the target; data.columns types feature columns. Choose "
                "classification or regression with data.task")
    return None

