"""A data file as a stream (and `data.rows`) meets it before and besides its rows: the checks
`read_table` makes of a whole file (`check_table_file`), the first chunk the column kinds are
decided from (`first_chunk`), its row count (`count_rows`) and the sha256 of its bytes (`FileHash`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path

import pandas as pd

from nettrain.data import chunks as C
from nettrain.data.cells import typed_like_read_csv
from nettrain.data.stream.reader import Part
from nettrain.words import list_names
from nettrain.errors import DataError


def check_table_file(p: Path) -> list[str]:
    """The checks `read_table` makes of a whole file, made before its first chunk (it exists, is not
    empty, is not binary, has no column name twice, no nested parquet column); its column names."""
    from nettrain.data.sources import check_unique, sniff_text, check_file, check_flat

    check_file(p)
    kind = C.kind_of(p)
    if kind != ".parquet" and p.suffix.lower() == kind:
        sniff_text(p, kind)
    names = C.header(p)
    check_unique(p, names)
    if kind == ".parquet":
        import pyarrow.parquet as pq

        check_flat(p, pq.read_schema(p))
    return names


def first_chunk(p: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the first chunk typed like read_csv, the same rows as read) of a file: what column kinds are
    decided from. A Parquet file's chunks end at its row groups' ends: small row groups are joined
    until they hold `chunks.CHUNK_ROWS` rows, as a CSV's first chunk does (the kinds count values)."""
    part = Part(name="first", path=p, splitter=None, text=C.kind_of(p) != ".parquet")
    it = part.chunks()
    frames, rows = [], 0
    with contextlib.closing(it):
        for chunk in it:
            frames.append(chunk.frame)
            rows += len(chunk.frame)
            if rows >= C.CHUNK_ROWS:
                break
    if not frames:
        raise DataError(f"{p}: the file has a header but no rows (columns: {list_names(C.header(p))})")
    raw = frames[0] if len(frames) == 1 else pd.concat(frames)
    if not part.text:
        return raw, raw
    typed = pd.DataFrame({name: typed_like_read_csv(raw[name]) for name in raw.columns}, index=raw.index)
    return typed, raw


def looks_boolean(series: pd.Series) -> bool:
    """A text column of true/false (numeric to nettrain): read as text, converted by prepare_inputs."""
    if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
        return False  # pandas 3 reads text as the `str` dtype, older pandas as object
    return bool(series.dropna().astype(str).str.strip().str.lower().isin(["true", "false"]).any())


def count_rows(p: Path) -> int:
    """Rows of a file (shuffle: false holds out its last rows, so the split needs the count first)."""
    if C.kind_of(p) == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(p).metadata.num_rows)
    first = C.header(p)[0]
    part = Part(name="count", path=p, splitter=None, text=True, columns=[first])
    return sum(len(chunk.frame) for chunk in part.chunks())


class FileHash(threading.Thread):
    """sha256 of the files' bytes, read in a thread of its own during the first pass."""

    def __init__(self, paths: list[Path]):
        super().__init__(name="nettrain-fingerprint", daemon=True)
        self.paths, self.digest, self.error = paths, None, None
        self.stop = threading.Event()

    def run(self):
        try:
            h = hashlib.sha256()
            for p in self.paths:
                h.update(f"file {p.name}\n".encode())
                with open(p, "rb") as f:
                    while not self.stop.is_set():
                        block = f.read(1 << 20)
                        if not block:
                            break
                        h.update(block)
            self.digest = h
        except OSError as e:
            self.error = e

    def result(self):
        self.join()
        if self.error is not None:
            raise DataError(f"cannot read {self.error.filename}: {self.error.strerror or self.error}")
        return self.digest
