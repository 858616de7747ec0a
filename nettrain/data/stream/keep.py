"""A streamed run's prepared evaluation rows kept after training (`.cache/<split>.bin` + `.json`), so
`evaluate RUN` does not parse the source file again (`kept_rows`).

Training parses a streamed file once per session and keeps every split's prepared rows in the run's
`.cache/` folder while it trains (`SplitCache`). At the end of the session the caches of the splits
in `KEPT_SPLITS` stay, when complete and at most `keep_limit()` bytes each (default `KEEP_BYTES`; the
environment variable `NETTRAIN_KEEP_ROWS` sets another limit in bytes, or e.g. `200MB`; 0 keeps
none): `<split>.bin` holds the arrays as they lie in memory (float32 inputs, the targets), chunk
after chunk, and `<split>.json` (format `FORMAT`) says what: the split, its rows, each chunk's
arrays (name, shape, dtype, order) and the file(s) the rows came from with their size, modification
time and inode. `evaluate RUN` reads them back when every file is still the one training read, and
parses the file again otherwise (saying why). Deleting `.cache/` is always safe: nothing but
evaluate's speed depends on it; `nettrain clean RUN` does it (`remove_kept`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nettrain.data.stream.cache import read_splits
from nettrain.data.stream.path import parse_bytes
from nettrain.data.stream.reader import Stamp
from nettrain.data.types import Split
from nettrain.store import atomic, rundir

FORMAT = "nettrain-split-cache/1"
KEPT_SPLITS = ("test", "validation")
KEEP_BYTES = 1 << 30       # the largest split cache kept after training
KEEP_ENV = "NETTRAIN_KEEP_ROWS"


def keep_limit() -> int:
    """The largest cache of a split kept after training, in bytes (`NETTRAIN_KEEP_ROWS`, else KEEP_BYTES)."""
    text = os.environ.get(KEEP_ENV, "").strip()
    size = parse_bytes(text) if text else None
    return KEEP_BYTES if size is None else size


def describe(path: Path, split: str, chunks: list, parts: list, codes: list[int]) -> None:
    """Write the `<split>.json` of a kept cache (see the module)."""
    files = []
    for part in parts:
        stamp = part.stamp or Stamp.of(part.path)
        if stamp is None or stamp.change(Stamp.of(part.path)) is not None:
            raise ValueError(f"{part.path} changed or cannot be read")   # (a run that failed on it): kept no more
        files.append({"path": os.path.abspath(part.path), "name": part.name, "size": stamp.size,
                      "mtime_ns": stamp.mtime_ns, "inode": list(stamp.inode)})
    rows = 0
    layouts = []
    for layout, y in chunks:
        inputs = [[name, list(shape), dtype, order] for name, shape, dtype, order in layout]
        rows += int(layout[0][1][0]) if layout else (int(y[0][0]) if y else 0)
        layouts.append({"inputs": inputs, "y": None if y is None else [list(y[0]), y[1], y[2]]})
    atomic.write_json(path, {"format": FORMAT, "split": split, "rows": rows, "codes": codes,
                             "source": ", ".join(str(p.path) for p in parts), "files": files, "chunks": layouts})


@dataclass
class KeptRows:
    """A kept split cache that is still valid: its rows, read back chunk by chunk."""

    split: str
    rows: int
    source: str
    data: Path
    chunks: list

    def splits(self) -> Iterator[Split]:
        return read_splits(self.data, self.chunks)


def kept_rows(folder: Path, split: str) -> tuple[KeptRows | None, str | None]:
    """(the kept rows of `split` in a run's `.cache` folder, None) when they are there and every file
    they came from is unchanged; (None, why not, in words) when they are there but stale or
    unreadable; (None, None) when there are none."""
    meta_path, data = Path(folder) / f"{split}.json", Path(folder) / f"{split}.bin"
    if not meta_path.is_file() or not data.is_file():
        return None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("split") != split:
            return None, f"{meta_path} is not a cache this nettrain reads"
        for f in meta["files"]:
            then = Stamp(int(f["size"]), int(f["mtime_ns"]), tuple(int(i) for i in f["inode"]))
            change = then.change(Stamp.of(Path(f["path"])))
            if change is not None:
                return None, f"{f['path']} changed since training ({change})"
        chunks = [([(name, tuple(shape), dtype, order) for name, shape, dtype, order in c["inputs"]],
                   None if c["y"] is None else (tuple(c["y"][0]), c["y"][1], c["y"][2])) for c in meta["chunks"]]
        expected = sum(_nbytes(*how) for layout, y in chunks for how in [*(h[1:] for h in layout)] + ([y] if y else []))
        if data.stat().st_size != expected:
            return None, f"{data} does not hold what {meta_path.name} describes"
        return KeptRows(split, int(meta["rows"]), str(meta.get("source", "")), data, chunks), None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{meta_path} cannot be read ({type(e).__name__})"


def _nbytes(shape, dtype, order="C") -> int:
    import numpy as np

    n = 1
    for d in shape:
        n *= int(d)
    return n * np.dtype(dtype).itemsize


def cache_folders(run_dir: Path) -> list[Path]:
    """The `.cache` folders of a run and of its folds (`fold-<i>/`), those that exist."""
    run_dir = Path(run_dir)
    found = [run_dir / rundir.CACHE] + sorted(run_dir.glob(f"fold-*/{rundir.CACHE}"))
    return [f for f in found if f.is_dir() and not f.is_symlink()]


def remove_kept(run_dir: Path) -> tuple[int, int]:
    """Remove the `.cache` folders of a run and of its folds (the caller holds the run's lock): (files,
    bytes) removed. Only speed depends on them (see the module)."""
    files = size = 0
    for folder in cache_folders(run_dir):
        for entry in folder.rglob("*"):
            if entry.is_file() and not entry.is_symlink():
                files += 1
                size += entry.stat().st_size
        shutil.rmtree(folder)
    return files, size
