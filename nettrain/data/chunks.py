"""Tables read in bounded memory: chunks of rows from a CSV/TSV (pyarrow's streaming reader with
small blocks) or a Parquet file (one row group at a time), as pandas frames with the number of
their first row, so every later stage can say which line a bad value is on.

Measured here (2M x 20 CSV): pyarrow's CSV reader holds about 37 times its block size while it
parses (10 MB at 256 kB blocks, 38 MB at 1 MB, 76 MB at 2 MB), and 256 kB blocks joined into
64k-row chunks read the file in 1.97 s against 1.91 s at 1 MB (128 kB: 2.11 s), as fast as pandas
reads it whole. A chunk's numeric columns are copied out of each block's batch as it arrives (the
batch is let go at once), so a chunk is held once, as float64 arrays, not twice (Arrow batches plus
their pandas copy). `ParquetFile.iter_batches()` without `row_groups` buffers the whole file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from nettrain.data.cells import FALSE_TEXT, NA_TEXT, TRUE_TEXT  # noqa: F401 - the one rule's words
from nettrain.data.dialect import DECIMAL_COMMA, dialect, head_text
from nettrain.data.kinds import NOT_STREAMED, STREAMABLE, streamable, table_kind  # noqa: F401
from nettrain.errors import DataError
from nettrain.words import list_names, reason, show_name

CHUNK_ROWS = 65_536
BLOCK_BYTES = 1 << 18
# A block of a file of wide lines holds at least this many of them, up to MAX_BLOCK_BYTES (`block_bytes`)
ROWS_PER_BLOCK = 128
WIDE_BYTES = 1 << 18        # ROWS_PER_BLOCK lines of more bytes than this: a file of wide lines
MAX_BLOCK_BYTES = 1 << 22


@dataclass
class Chunk:
    start: int             # number of the chunk's first data row (0 = the row after the header)
    frame: pd.DataFrame    # the rows; the frame's index is the row number in the file

    def line(self, position: int) -> int:
        """The file line of the row at `position` in this chunk (line 1 is a CSV's header)."""
        return self.start + position + 2


def kind_of(path: str | os.PathLike) -> str:
    return table_kind(path)


def header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV/TSV/Parquet file, read without reading its rows."""
    p = Path(path)
    if kind_of(p) == ".parquet":
        import pyarrow.parquet as pq

        try:
            return [str(n) for n in pq.read_schema(p).names]
        except Exception as e:  # noqa: BLE001 - not parquet, truncated
            raise DataError(f"{p}: cannot read it as parquet: {reason(e, all_lines=True)}") from None
    return unnamed(written_header(p))


def block_bytes(p: Path) -> int:
    """The bytes of a block a CSV/TSV is parsed in: BLOCK_BYTES, or for a file of wide lines, where a
    block of BLOCK_BYTES would hold fewer than ROWS_PER_BLOCK of them, that many lines' bytes (at most
    MAX_BLOCK_BYTES). The work of each block is done column by column: a 2,000-column file (39 kB a
    line) held 6 lines a block, and its chunks were read 6x slower than with 4 MB blocks (measured:
    3,000 lines, 5.7 s against 0.9 s). The memory held by the parse grows with the block, as the
    lines' width does."""
    try:
        lines = head_text(p).split("\n")
    except Exception:  # noqa: BLE001 - unreadable: the reader says why
        return BLOCK_BYTES
    whole = lines[1:-1]   # (the header and the last, maybe cut, line left out)
    line = max(map(len, whole)) if whole else sum(map(len, lines))
    wide = ROWS_PER_BLOCK * (line + 1)
    return min(MAX_BLOCK_BYTES, wide) if wide > WIDE_BYTES else BLOCK_BYTES


def written_header(p: Path) -> list[str]:
    """A CSV/TSV file's header cells as written (an empty one as '')."""
    try:
        row = pd.read_csv(p, sep=dialect(p).delimiter, header=None, nrows=1, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{p}: cannot read its header: {reason(e, all_lines=True)}") from None
    return [str(n) for n in row.iloc[0].tolist()]


def unnamed(names: list[str]) -> list[str]:
    """Column names with an empty header cell named as pandas names it when it reads the file whole
    (`Unnamed: <position>`), so every reader gives a column the same name."""
    return [n if n != "" else f"Unnamed: {i}" for i, n in enumerate(names)]


def _given_names(p: Path) -> tuple[list[str], dict[str, Any]]:
    """(a CSV/TSV file's column names, pyarrow's ReadOptions that give them): pyarrow names an empty
    header cell '', so where one is empty the names are given to it and the header line skipped."""
    written = written_header(p)
    names = unnamed(written)
    return names, ({"column_names": names, "skip_rows": 1} if names != written else {})


def decimal_points(column: pd.Series) -> pd.Series:
    """The text of a column of a file written with decimal commas, its numbers with decimal points
    (`7,4` -> `7.4`, `1.234,5` -> `1234.5`), so that every later rule reads them as the numbers they
    are; other values as they were."""
    values = column.to_numpy(dtype=object)
    out = values.copy()
    for i, v in enumerate(values):
        if isinstance(v, str) and "," in v and DECIMAL_COMMA.match(v):
            out[i] = v.strip().replace(".", "").replace(",", ".")
    return pd.Series(out, index=column.index, name=column.name, dtype=column.dtype)


def iter_chunks(path: str | os.PathLike, *, numeric: list[str] | None = None, columns: list[str] | None = None,
                rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The file's rows in chunks of about `rows`, in file order.

    `numeric` columns are read as float64 (a value that is not a number is a DataError naming its
    line and column), every other column as text (None where empty); `columns` limits what is
    read (default: all). A CSV chunk ends with the block that brings it to `rows` rows; a Parquet
    chunk holds `rows` rows, fewer at the end of a row group.
    """
    p = Path(path)
    if kind_of(p) == ".parquet":
        yield from _parquet_chunks(p, numeric or [], columns, rows)
    else:
        yield from _csv_chunks(p, numeric or [], columns, rows)


def exact_chunks(path: str | os.PathLike, *, numeric: list[str] | None = None, columns: list[str] | None = None,
                 rows: int = CHUNK_ROWS, ahead: int = 0) -> Iterator[Chunk]:
    """`iter_chunks`, but a CSV chunk holds exactly `rows` rows (the last one fewer) wherever the
    blocks end: what a stream reads, so its chunks, shuffle windows and batches do not depend on
    BLOCK_BYTES (a Parquet file's chunks end at its row groups' ends, as in `iter_chunks`). `ahead`:
    a CSV is parsed by threads of its own, that many blocks' bytes ahead of the chunk being made: in
    byte ranges by a thread a core where it can be (`stream.ranges`), else block by block by one
    (pyarrow parses without the GIL, so the parse overlaps the caller's work; the same chunks)."""
    p = Path(path)
    if kind_of(p) == ".parquet":
        yield from _parquet_chunks(p, numeric or [], columns, rows)
    else:
        yield from _csv_chunks(p, numeric or [], columns, rows, exact=True, ahead=ahead)


class _AsText(Exception):
    """A numeric column holds a value pyarrow's parse of numbers refuses and the one rule reads as a
    number (`1,234`, `$5`, `12%`, `?` for unknown): the column is read again as text."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def _csv_chunks(p: Path, numeric: list[str], columns: list[str] | None, rows: int,
                exact: bool = False, ahead: int = 0) -> Iterator[Chunk]:
    """The chunks of a CSV/TSV. A numeric column is parsed by pyarrow as numbers; where a later row
    holds a number written otherwise (`1,234`: what `columns.to_numbers`, the rule of the file read
    whole, reads as a number), the read starts again at the chunk it failed in, with that column
    read as text and converted by the one rule (a column at a time; the chunks already given stay)."""
    text: set[str] = set()
    start = 0
    while True:
        try:
            for chunk in _csv_read(p, numeric, columns, rows, exact, ahead, text, start):
                start = chunk.start + len(chunk.frame)
                yield chunk
            return
        except _AsText as again:
            text.add(again.column)


def _csv_read(p: Path, numeric: list[str], columns: list[str] | None, rows: int, exact: bool, ahead: int,
              text: set[str], first_row: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pc

    names, named = _given_names(p)
    wanted = columns or names
    form = dialect(p)
    # pyarrow reads no `1.234,5`: a file with decimal commas has its numbers read as text, then given
    # decimal points and parsed by the one rule (`columns.to_numbers`); so is a column in `text`
    as_text = form.decimal_comma
    types = {c: (pa.float64() if c in numeric and not as_text and c not in text else pa.string()) for c in wanted}
    delimiter = form.delimiter
    options = dict(parse_options=pc.ParseOptions(delimiter=delimiter),
                   convert_options=pc.ConvertOptions(column_types=types, include_columns=wanted,
                                                     strings_can_be_null=True, quoted_strings_can_be_null=False,
                                                     null_values=list(NA_TEXT)))

    block = block_bytes(p)

    def serial():  # pyarrow's streaming reader (the first block is read here)
        return pc.open_csv(pa.input_stream(str(p), compression="detect"),
                           read_options=pc.ReadOptions(block_size=block, skip_rows_after_names=first_row, **named),
                           **{**options, "parse_options": serial_parse(delimiter)})

    batches = None
    if ahead and not first_row:  # byte ranges parsed by several threads, else blocks parsed ahead by one
        from nettrain.data.stream.ahead import read_ahead  # (data.stream imports this module)
        from nettrain.data.stream.ranges import range_batches

        batches = range_batches(p, delimiter, options, lambda: _batches(serial()), ahead, block)
    if batches is None:
        try:
            reader = serial()
        except pa.ArrowInvalid as e:
            raise _bad_value(p, first_row, numeric, wanted, e, text) from None
        batches = _batches(reader)
        if ahead:
            batches = read_ahead(batches, depth=ahead)
    numbers = [c for c in wanted if c in numeric and not as_text and c not in text]

    def done_chunk(rows_of: _Pending, first: int) -> Chunk:
        chunk = rows_of.chunk(first)
        for name in (c for c in wanted if c in numeric and c not in numbers):
            chunk.frame[name] = _as_numbers(p, chunk, name)
        return chunk

    start, pending = first_row, None
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            raise _bad_value(p, start + (pending.rows if pending else 0), numeric, wanted, e, text) from None
        while batch is not None:
            if pending is None:
                pending = _Pending(wanted, numbers, rows if exact else rows + 2 * batch.num_rows, form.decimal_comma)
            if exact and pending.rows + batch.num_rows > rows:  # the rest of the batch starts the next chunk
                head, batch = batch.slice(0, rows - pending.rows), batch.slice(rows - pending.rows)
            else:
                head, batch = batch, None
            pending.add(head)
            del head
            if pending.rows >= rows:  # (no reference to a chunk is kept while its consumer works on it)
                done, pending = pending, None
                start += done.rows
                yield done_chunk(done, start - done.rows)
    if pending is not None:
        yield done_chunk(pending, start)


def _batches(reader) -> Iterator:
    """The record batches of a pyarrow CSV reader, one per block."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        yield batch
        del batch


class _Pending:
    """The rows of a chunk being read: each batch's numeric columns are copied into float64 arrays
    as it arrives (what `Table.to_pandas` gives them: NaN where empty) and the batch is let go; its
    other columns are kept as Arrow batches and converted by `to_pandas` when the chunk is complete."""

    def __init__(self, wanted: list[str], numbers: list[str], capacity: int, decimal_comma: bool = False):
        self.wanted, self.numbers, self.decimal_comma = wanted, set(numbers), decimal_comma
        self.arrays = {c: np.empty(capacity, dtype=np.float64) for c in numbers}
        self.others: list = []   # the batches' other columns
        self.rows = 0

    def add(self, batch) -> None:
        n = batch.num_rows
        end = self.rows + n
        for name, column in zip(batch.schema.names, batch.columns):
            if name not in self.numbers:
                continue
            values = self.arrays[name]
            if end > len(values):  # a chunk longer than foreseen (a block of short lines)
                grown = np.empty(max(end, 2 * len(values)), dtype=np.float64)
                grown[:self.rows] = values[:self.rows]
                values = self.arrays[name] = grown
            values[self.rows:end] = column.to_numpy(zero_copy_only=False)
        if len(self.numbers) < len(self.wanted):
            self.others.append(batch.select([c for c in self.wanted if c not in self.numbers]))
        self.rows = end

    def chunk(self, start: int) -> Chunk:
        import pyarrow as pa

        n = self.rows
        other = pa.Table.from_batches(self.others).to_pandas() if self.others else None
        self.others = []
        columns = {c: (self.arrays[c][:n] if c in self.numbers else
                       decimal_points(other[c]) if self.decimal_comma else other[c]) for c in self.wanted}
        self.arrays = {}
        frame = pd.DataFrame(columns, copy=False)
        frame.columns = [str(c) for c in frame.columns]
        frame.index = pd.RangeIndex(start, start + n)
        return Chunk(start, frame)


def _parquet_chunks(p: Path, numeric: list[str], columns: list[str] | None, rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(p)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{p}: cannot read it as parquet: {reason(e, all_lines=True)}") from None
    import pyarrow as pa

    start = 0
    for group in range(f.num_row_groups):  # row_groups=[i]: iter_batches would otherwise buffer the file
        first = start
        batches = f.iter_batches(batch_size=rows, row_groups=[group], columns=columns)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as e:  # a damaged row group (pyarrow does not say which)
                size = f.metadata.row_group(group).num_rows
                raise DataError(f"{p}: cannot read row group {group + 1} of {f.num_row_groups} (rows {first + 1}-"
                                f"{first + size}): {reason(e, all_lines=True)}") from None
            chunk = _chunk(pa.Table.from_batches([batch]), start)
            for name in numeric:
                chunk.frame[name] = _as_numbers(p, chunk, name)
            start += batch.num_rows
            del batch
            yield chunk


def _chunk(table, start: int) -> Chunk:
    frame = table.to_pandas()
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.RangeIndex(start, start + len(frame))
    return Chunk(start, frame)


def _as_numbers(p: Path, chunk: Chunk, name: str) -> np.ndarray:
    from nettrain.data.columns import to_numbers

    values, bad = to_numbers(chunk.frame[name])
    if bad.any():
        pos = int(np.argmax(bad))
        # a parquet file has no lines: its rows are counted from 1, as `columns.row_label` counts them
        where = f"row {chunk.start + pos + 1}" if kind_of(p) == ".parquet" else f"line {chunk.line(pos)}"
        raise DataError(f"{p}: {where}, column '{show_name(name)}': "
                        f"{show_name(repr(chunk.frame[name].iloc[pos]), 60)} is not a number "
                        "(the column holds numbers in the rows read before)")
    return values


def serial_parse(delimiter: str):
    """The parse options of pyarrow's streaming reader: values may hold line ends inside their quotes
    (pandas writes a text with line ends so; without this option such a value fails wherever a block
    ends inside it: "Expected 10 columns, got 6"). The byte ranges (`stream.ranges`) keep only rows
    shown to be one line each, so they parse without it (faster), and a file with such values is read
    by this reader."""
    import pyarrow.csv as pc

    return pc.ParseOptions(delimiter=delimiter, newlines_in_values=True)


def _bad_value(p: Path, first_row: int, numeric: list[str], columns: list[str], err: Exception,
               text: set[str] = frozenset()) -> Exception:
    """The line and column of the value pyarrow could not convert (it does not say): the block from
    `first_row` is read again as text and the first value that is not a number is found. Where every
    value is a number to the one rule but one pyarrow refuses (`1,234`): `_AsText` of its column."""
    import pyarrow as pa
    import pyarrow.csv as pc

    from nettrain.data.columns import to_numbers

    form = dialect(p)
    try:
        _, named = _given_names(p)
        reader = pc.open_csv(
            pa.input_stream(str(p), compression="detect"),
            read_options=pc.ReadOptions(block_size=block_bytes(p), skip_rows_after_names=first_row, **named),
            parse_options=serial_parse(form.delimiter),
            convert_options=pc.ConvertOptions(column_types={c: pa.string() for c in columns},
                                              include_columns=columns, strings_can_be_null=True,
                                              null_values=list(NA_TEXT)))
        offset, comma, people = 0, form.decimal_comma, None
        for batch in reader:
            frame = batch.to_pandas()
            for name in numeric:
                if name not in frame.columns:
                    continue
                _, bad = to_numbers(decimal_points(frame[name]) if comma else frame[name])
                if not bad.any() and name not in text and not comma:
                    plain = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                    if np.isnan(plain[frame[name].notna().to_numpy()]).any():  # `1,234`, `?` for unknown
                        people = people if people is not None else name
                if bad.any():
                    pos = int(np.argmax(bad))
                    return DataError(f"{p}: line {first_row + offset + pos + 2}, column '{show_name(name)}': "
                                     f"{show_name(repr(frame[name].iloc[pos]), 60)} is not a number (the column "
                                     "holds numbers in the rows read before)")
            offset += len(frame)
            if people is not None:
                return _AsText(people)
    except Exception:  # noqa: BLE001 - the first error is the one to report
        pass
    return unreadable(p, first_row, err)


def unreadable(p: Path, count: int, err: BaseException) -> DataError:
    """What a read that failed after `count` rows says: of a CSV/TSV, the first line its parser
    refuses (`bad_line`), else the line it got past; of a Parquet file, the row after those read."""
    kind = kind_of(p)
    if kind == ".parquet":
        return DataError(f"{p}: cannot read it as parquet after row {count}: {reason(err, all_lines=True)}")
    if count == 0 and _header_only(p):  # pyarrow cannot skip a header line that has no line end
        return DataError(f"{p}: the file has a header but no rows (columns: {list_names(header(p))})")
    return bad_line(p) or DataError(f"{p}: cannot read it as {kind[1:]} past line {count + 1} (the rows up to "
                                    f"there were read): {reason(err, all_lines=True)}")


def _header_only(p: Path) -> bool:
    """Whether a text file holds one line and nothing else but blank space (read on an error path only)."""
    import pyarrow as pa

    try:
        with pa.input_stream(str(p), compression="detect") as f:
            seen_end = False
            while True:
                block = f.read(1 << 20)
                if not block:
                    return True
                if seen_end:
                    if block.strip():
                        return False
                    continue
                end = block.find(b"\n")
                if end >= 0:
                    seen_end = True
                    if block[end + 1:].strip():
                        return False
    except Exception:  # noqa: BLE001 - the caller reports the read's own error
        return False


FIELD_LIMIT = 1 << 24  # characters in one value that `bad_line` reads (pyarrow reads none longer than a block)


def bad_line(p: Path) -> DataError | None:
    """The first line of a CSV/TSV that pyarrow's parser refuses, which it does not name: the file
    read again with Python's csv module (quoted values, also across lines, as pyarrow reads them) up
    to the first record whose number of fields is not the header's, or a line that is not UTF-8.
    Lines are numbered as in a text editor, from 1 (the header); a record that spans lines is named by
    its first. None when no such line is found (the caller then says what pyarrow said)."""
    import csv

    kind = kind_of(p)
    count = [0]  # lines read
    limit = csv.field_size_limit(FIELD_LIMIT)
    lines = _text_lines(p, count)
    try:
        delimiter = dialect(p).delimiter
        reader = csv.reader(lines, delimiter=delimiter)
        width, line = None, 1
        for record in reader:
            if record:  # (pyarrow skips empty lines)
                if width is None:
                    width = len(record)
                elif len(record) != width:
                    return _wrong_width(p, kind, delimiter, line, width, record, _at_end(reader))
            line = reader.line_num + 1
    except UnicodeDecodeError as e:
        return DataError(f"{p}: line {count[0]} is not UTF-8 text ({e.reason} at byte {e.start} of the line); "
                         "save the file as UTF-8")
    except csv.Error as e:
        return DataError(f"{p}: cannot read it as {kind[1:]}: line {line}: {reason(e, all_lines=True)}")
    except Exception:  # noqa: BLE001 - unreadable otherwise (a damaged .gz): the caller says what pyarrow said
        return None
    finally:
        lines.close()
        csv.field_size_limit(limit)
    return None


def _at_end(reader) -> bool:
    """Whether `reader` has no record left (False when what follows cannot be read)."""
    try:
        return not any(record for record in reader)  # (stops at the first record that is not empty)
    except Exception:  # noqa: BLE001
        return False


def _wrong_width(p: Path, kind: str, delimiter: str, line: int, width: int, record: list[str],
                 last: bool) -> DataError:
    seen = len(record)
    last = last and seen < width
    text = show_name(repr(delimiter.join(record)), 60)
    return DataError(f"{p}: cannot read it as {kind[1:]}: expected {width} fields in line {line}, saw {seen}"
                     f"{' (the last line: the file looks cut short)' if last else ''}: {text}")


def _text_lines(p: Path, count: list[int]) -> Iterator[str]:
    """The file's lines as text (gzip/bz2 opened as pyarrow opens them); `count[0]`: lines read."""
    import bz2
    import gzip

    name = p.name.lower()
    opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    with opener(p, "rb") as f:
        for raw in f:
            count[0] += 1
            yield raw.decode("utf-8-sig" if count[0] == 1 else "utf-8")




MMAP_THRESHOLD = 1 << 20  # bytes: glibc's malloc maps allocations this large on their own


def large_blocks_mapped() -> None:
    """Have glibc's malloc map every allocation of MMAP_THRESHOLD bytes or more on its own, so that
    freeing it gives the memory back at once. By default the threshold rises to the size of the
    largest block freed (up to 32 MB), after which a stream's chunk-sized arrays come from the heaps,
    where what they leave behind keeps the process's resident set up (measured: 15-20 MB more at
    the peak of a streamed fit, growing with the run). Process-wide; nothing happens without glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Give the memory freed by a pass over a file back to the system: pyarrow's pool keeps freed
    blocks for reuse, and so does glibc's malloc, so a process's RSS would stay at its peak."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass

