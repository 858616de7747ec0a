"""A data file as a stream (and `data.rows`) meets it before and besides its rows: the checks
`read_table` makes of a whole file (`check_table_file`), the first chunk the column kinds are
decided from (`first_chunk`), its row count (`count_rows`) and the sha256 of its bytes (`FileHash`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import Iterable

import pandas as pd

from nettrain.data import chunks as C
from nettrain.data.cells import NA_TEXT, typed_like_read_csv
from nettrain.data.stream.reader import PARSE_AHEAD, Part
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


def first_chunk(p: Path, exact: Iterable[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the first chunk typed like read_csv, the same rows as read) of a file: what column kinds are
    decided from. A Parquet file's chunks end at its row groups' ends: small row groups are joined
    until they hold `chunks.CHUNK_ROWS` rows, as a CSV's first chunk does (the kinds count values).

    `exact`: the columns typed by `typed_like_read_csv` itself (None: all). Any other column whose
    every present cell is a number to pyarrow (`plain_numbers`) is typed from pyarrow's parse of it,
    the way the pass reads it (3x faster): the same dtype and missing cells as read_csv gives,
    values that may differ from pandas's in the last digit (pandas rounds some exponents off), which
    the column kinds and cell types do not look at."""
    part = Part(name="first", path=p, splitter=None, text=C.kind_of(p) != ".parquet")
    it = part.chunks(ahead=PARSE_AHEAD)  # (what is parsed past the chunk is let go unread)
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
    exact = set(raw.columns if exact is None else exact)

    def typing(name: str) -> pd.Series:
        fast = None if name in exact else plain_numbers(raw[name])
        return typed_like_read_csv(raw[name]) if fast is None else fast

    typed = pd.DataFrame({name: typing(name) for name in raw.columns}, index=raw.index)
    return typed, raw


# Cells of at most NUMBER_CHARS characters that pyarrow parses as a number other than NaN are numbers
# to pandas.to_numeric too (fuzzed against it: 55,000 such cells over digits, signs, points,
# exponents, inf, nan and infinity words, spaces and other digits; only NaN words differ). Whole
# numbers are int64 to pandas, as they are here; those of 16 digits or more are left to pandas.
_WHOLE = r"^[+-]?[0-9]+$"
NUMBER_CHARS = 40


def plain_numbers(series: pd.Series) -> pd.Series | None:
    """A text column whose present cells (`cells.NA_TEXT` and None are missing) are all numbers to
    pyarrow (see `NUMBER_CHARS`), as `typed_like_read_csv` types it: int64 when every cell is a whole
    number below 10^15, else float64 with NaN where missing (the values as pyarrow parses them).
    None otherwise: let `typed_like_read_csv` decide."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(series, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return None
    present = pc.fill_null(pc.and_(pc.is_valid(text), pc.invert(pc.is_in(text, value_set=pa.array(NA_TEXT)))),
                           False)
    if not pc.any(present).as_py():
        return None
    cells = pc.if_else(present, text, pa.scalar(None, pa.string()))
    if (pc.max(pc.utf8_length(cells)).as_py() or 0) > NUMBER_CHARS:
        return None
    try:
        values = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None  # a cell that is no number
    cell = present.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        if np.isnan(values[cell]).any():
            return None  # a NaN word that is not missing to pandas
        big = cell & ~(np.abs(values) < 1e15)  # (16 digits or more)
        integral = bool(cell.all() and (np.mod(values, 1) == 0).all())
    if big.any() or integral:  # (a column of fractions needs no more)
        whole = pc.fill_null(pc.match_substring_regex(cells, _WHOLE), False).to_numpy(zero_copy_only=False)
        if (whole & big).any():
            return None  # (pandas keeps long whole numbers exact, as int64 or uint64)
        if integral and whole.all():
            values = values.astype(np.int64)
    return pd.Series(values, index=series.index, name=series.name)


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
    return sum(len(chunk.frame) for chunk in part.chunks(ahead=PARSE_AHEAD))


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
