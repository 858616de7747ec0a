"""A CSV/TSV file's rows parsed by several threads at once, in byte ranges (issue 25): pyarrow's
streaming reader parses on one thread only ("always single-threaded", its docs say), and that parse
is the largest part of a stream's first pass.

The rows after the header are cut into ranges of about `range_bytes()` at line ends, each parsed
on its own by pyarrow's `read_csv` (the header's column names, the serial reader's options), on
`workers()` threads, and handed on in file order. A range's rows are kept only where its line ends
are shown to be all record ends (`one_line_records`), so they are the serial reader's rows (whose
blocks end at line ends too). Where that is not shown (a value over two lines, quotes it cannot
tell), or a range cannot be parsed (a bad value, a wrong number of fields, bytes that are not
UTF-8), the file is read by the serial reader from its start, the rows already handed on skipped:
the same rows, and the same error after the same rows, as the serial reader alone gives.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

# A range is RANGE_BLOCKS of the serial reader's blocks (chunks.BLOCK_BYTES): 1 MB, measured 5% faster
# than 4 MB and 45% faster than 16 MB (cache), 4x faster than 256 kB (the work of each `read_csv`);
# a pass that asks for blocks parsed ahead gets as many bytes parsed ahead, in ranges (the memory
# held by the parse scales with the block size as before).
RANGE_BLOCKS = 4
MAX_WORKERS = 4
_LINE_ENDS = (ord("\n"), ord("\r"))
_QUOTE = ord('"')


def range_bytes(block: int | None = None) -> int:
    """The bytes of a range: RANGE_BLOCKS of the serial reader's blocks (`block`, default chunks.BLOCK_BYTES)."""
    from nettrain.data import chunks as C

    return RANGE_BLOCKS * (block or C.BLOCK_BYTES)


def workers() -> int:
    """Threads that parse ranges: the cores this process may use, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def range_batches(path: Path, delimiter: str, options: dict, serial: Callable[[], Iterator],
                  ahead: int, block: int | None = None) -> Iterator | None:
    """The record batches of a plain (uncompressed) CSV/TSV, parsed in ranges by `workers()` threads,
    `ahead` blocks' bytes ahead of the range handed on (at least a range a thread): what `serial()`
    (the serial reader's batches) gives, row for row. `options`: the serial reader's keywords but its
    read options (`parse_options`, `convert_options`). None when ranges would not help or cannot be
    cut: one core, a compressed file, a file of fewer than two ranges, a header that does not end at
    the first line end (`_header`)."""
    import pyarrow as pa

    if workers() < 2 or ahead < 1:
        return None
    try:
        pa.Codec.detect(str(path))
        return None  # (compressed: its bytes are not its lines)
    except (TypeError, ValueError):
        pass
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # (the serial reader says why)
    try:
        size = os.fstat(fd).st_size
        start_names = _header(fd, delimiter, options) if size >= 2 * range_bytes(block) else None
    except Exception:  # noqa: BLE001 - whatever the header holds, the serial reader reads it
        start_names = None
    finally:
        os.close(fd)  # (the batches open the file again: a generator never started never closes it)
    if start_names is None:
        return None
    start, names = start_names
    return _batches(path, size, start, names, delimiter, options, serial, max(workers(), ahead // RANGE_BLOCKS),
                    range_bytes(block))


def _header(fd: int, delimiter: str, options: dict) -> tuple[int, list[str]] | None:
    """(where the rows start, the column names) when the header is the file's first line (its line end
    outside quotes, no carriage return but at its end), as pyarrow parses it alone; else None."""
    import pyarrow as pa
    import pyarrow.csv as pc

    head = os.pread(fd, 1 << 16, 0)
    end = head.find(b"\n")
    if end <= 0 or head[:1] == b"\r" or b"\r" in head[:end - 1] or not ends_outside_quotes(head[:end + 1], delimiter):
        return None
    table = pc.read_csv(pa.py_buffer(head[:end + 1]), read_options=pc.ReadOptions(use_threads=False),
                        parse_options=options["parse_options"])
    if table.num_rows:
        return None
    from nettrain.data.chunks import unnamed

    return end + 1, unnamed(table.column_names)


def _cuts(fd: int, size: int, start: int, length: int) -> Iterator[tuple[int, int]]:
    """(first byte, end) of each range: `length` bytes from its start to the next line end ('\\n')."""
    a = start
    while a < size:
        b = a + length
        while b < size:
            window = os.pread(fd, min(length, 1 << 16), b)
            if not window:
                break  # (the file got shorter: its last range is cut short, its parse says so)
            found = window.find(b"\n")
            if found >= 0:
                b += found + 1
                break
            b += len(window)
        b = min(b, size)
        yield a, b
        a = b


def _batches(path: Path, size: int, start: int, names: list[str], delimiter: str, options: dict,
             serial: Callable[[], Iterator], ahead: int, length: int) -> Iterator:
    import pyarrow as pa
    import pyarrow.csv as pc

    read = pc.ReadOptions(column_names=names, use_threads=False, block_size=2 * length)  # (one block)
    fd = os.open(path, os.O_RDONLY)

    def parse(a: int, b: int):
        data = os.pread(fd, b - a, a)
        if len(data) != b - a:
            return None
        table = pc.read_csv(pa.py_buffer(data), read_options=read, **options)
        return table.to_batches() if one_line_records(data, table.num_rows, delimiter) else None

    given, pending, failed = 0, [], False  # (given: rows handed on)
    pool = ThreadPoolExecutor(workers(), thread_name_prefix="nettrain-parse")
    try:
        cuts = _cuts(fd, size, start, length)
        while True:
            while len(pending) <= ahead:
                cut = next(cuts, None)
                if cut is None:
                    break
                pending.append(pool.submit(parse, *cut))
            if not pending:
                break
            try:
                batches = pending.pop(0).result()
            except Exception:  # noqa: BLE001 - the serial reader raises it again, after the same rows
                batches = None
            if batches is None:
                failed = True
                break
            for batch in batches:
                given += batch.num_rows
                yield batch
            del batches
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        os.close(fd)
    if failed:
        yield from _skipped(serial(), given)


def _skipped(batches: Iterator, rows: int) -> Iterator:
    """`batches` without their first `rows` rows."""
    for batch in batches:
        if rows >= batch.num_rows:
            rows -= batch.num_rows
            continue
        if rows:
            batch, rows = batch.slice(rows), 0
        yield batch


def one_line_records(data: bytes, rows: int, delimiter: str) -> bool:
    """Whether the `rows` records pyarrow parsed from `data` (from a record's start) end at its line
    ends, one record a line. Without a quote character, every line end ends a record. Else, with no
    carriage return: a record over several lines, or an empty line (skipped), makes fewer records
    than lines, but for a last record open to the end (pyarrow ends a quoted value there); so as
    many records as lines, and the last line's end outside quotes (`ends_outside_quotes`), show it.
    Otherwise the quotes must be shown to enclose values on one line (`plain_quotes`)."""
    if data.find(b'"') < 0:
        return True
    if data.find(b"\r") < 0:
        lines = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == _LINE_ENDS[0]))
        if rows == lines + (not data.endswith(b"\n")):
            return ends_outside_quotes(data[data.rfind(b"\n", 0, len(data) - 1) + 1:], delimiter)
    return plain_quotes(data, delimiter)


def ends_outside_quotes(line: bytes, delimiter: str) -> bool:
    """Whether pyarrow's parser, reading `line` from a record's start (its options: quotes, doubled
    quotes within them, no escape character), is outside a quoted value at the line's end (a quote
    opens a value only at a field's start; within one, two quotes are one, a single quote closes it)."""
    quote, sep = _QUOTE, ord(delimiter)
    start, inside, i, n = True, False, 0, len(line)
    while i < n:
        c = line[i]
        if inside:
            if c == quote:
                if i + 1 < n and line[i + 1] == quote:
                    i += 1
                else:
                    inside = False
        elif start and c == quote:
            inside, start = True, False
        else:
            start = c == sep or c in _LINE_ENDS
        i += 1
    return not inside


def plain_quotes(data: bytes, delimiter: str) -> bool:
    """Whether every line end in `data` (parsed from a record's start) ends a record, shown without
    parsing: the quotes pair up, in order, each pair on one line, its first quote at a field's start
    (after a delimiter, a line end, or at the start) and its second at the field's end (before a
    delimiter, a line end, or at the end). pyarrow's parser then opens a quoted value at each first
    quote and closes it at the second (no doubled quote inside), so no line end is inside a value.
    Anything else (a doubled quote, a quote inside a value) is False: not shown."""
    if data.find(b'"') < 0:
        return True
    a = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(a == _QUOTE)
    if len(quotes) % 2:
        return False
    before, after = a[quotes[0::2] - 1], np.take(a, quotes[1::2] + 1, mode="wrap")
    bounds = [(side == ord(delimiter)) | (side == _LINE_ENDS[0]) | (side == _LINE_ENDS[1]) for side in (before, after)]
    bounds[0][0] |= quotes[0] == 0            # (at the start: a field's start)
    bounds[1][-1] |= quotes[-1] == len(a) - 1  # (at the end: a field's end)
    if not (bounds[0].all() and bounds[1].all()):
        return False
    ends = np.flatnonzero((a == _LINE_ENDS[0]) | (a == _LINE_ENDS[1]))
    return not (np.searchsorted(quotes, ends) & 1).any()  # (an odd number of quotes before: inside a pair)
