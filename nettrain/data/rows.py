"""The rows of a data file (or a table in memory) as model inputs, for `evaluate` and `predict`.

`file_rows(path, schema)` reads a CSV/TSV/Parquet file chunk by chunk with the chunk reader of a
stream (`stream.Part.chunks`: `chunks.exact_chunks`, the text columns typed by the cell types fit
stored, `data.cells`) and prepares each chunk with `prepare_inputs`, the function fit used; any
other file is read whole (`read_table`) and typed by the same rule (`cells.typed_table`).
`aligned` re-cuts the chunks into whole batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from nettrain.data import chunks as C
from nettrain.data.cells import text_columns, typed_table
from nettrain.data.inputs import check_columns as check_frame_columns
from nettrain.data.inputs import prepare_inputs
from nettrain.data.stream.files import check_table_file, looks_boolean
from nettrain.data.stream.reader import Part
from nettrain.data.types import FeatureSchema, Split
from nettrain.words import list_names
from nettrain.errors import DataError


class Rows:
    """Rows as model inputs (`Split`s), produced again on every iteration, in order.

    `file_rows` streams a CSV/TSV/Parquet file chunk by chunk (bounded memory); `Rows.of` holds
    one Split in memory. `check()` produces the first chunk at once, so a missing column or a bad
    value in the first rows is reported before the model (and TensorFlow) is loaded.
    """

    def __init__(self, where: str, produce: Callable[[], Iterator[Split]], single: Split | None = None,
                 total: int | None = None, approx: bool = False):
        self.where = where
        self._produce = produce
        self.single = single           # the one in-memory Split, when there is one
        self._pending = None
        self.total = len(single) if single is not None and total is None else total  # rows, for progress
        self.approx = approx           # `total` is an estimate (a file's size over its first rows' bytes)

    def meter(self, what: str):
        """A `stream.progress.Meter` of these rows for a pass that `what`s them (evaluate, predict)."""
        from nettrain.data.stream.progress import Meter

        return Meter(f"{what} {self.where}", self.total, approx=self.approx)

    @classmethod
    def of(cls, split: Split, where: str) -> "Rows":
        return cls(where, lambda: iter([split]), single=split)

    def check(self) -> None:
        if self._pending is None:
            chunks = self._produce()
            self._pending = (next(chunks), chunks)

    def __iter__(self):
        if self._pending is not None:
            first, chunks = self._pending
            self._pending = None
            yield first
            yield from chunks
        else:
            yield from self._produce()


def table_rows(frame: pd.DataFrame, schema: FeatureSchema, where: str, *, require_target: bool,
               watch=None) -> Rows:
    """A table held in memory as Rows; without `require_target` its target column is not used
    (predict: gaps or labels the model does not know are no error). The columns of `text_columns`
    read as text are typed by the cell types fit stored (`cells.typed_table`). `watch` (a
    `data.contract.Watch`) is given the table's columns and its typed rows, before they are prepared."""
    if watch is not None:
        watch.header(frame.columns)
    if not require_target and schema.target is not None and schema.target in frame.columns:
        frame = frame.drop(columns=[schema.target])
    frame = typed_table(frame, schema)
    if watch is not None:
        watch.add(frame)
    return Rows.of(prepare_inputs(frame, schema, require_target=require_target, source=where), where)


def file_rows(path: str | Path, schema: FeatureSchema, *, require_target: bool, watch=None) -> Rows:
    """The rows of a data file: streamed when `chunks.streamable(path)`, else read whole (`read_table`).
    `watch` (a `data.contract.Watch`) is given the file's header and each chunk's raw rows as read."""
    if not C.streamable(path):
        from nettrain.data.sources import read_table

        return table_rows(read_table(path, text=text_columns(schema)), schema, str(path),
                          require_target=require_target, watch=watch)
    from nettrain.data.stream.path import estimate

    cost = estimate({"file": str(path)})
    return Rows(str(path), lambda: _stream(Path(path), schema, require_target, watch),
                total=cost.rows if cost is not None else None, approx=cost is not None and not cost.exact)


def _stream(p: Path, schema: FeatureSchema, require_target: bool, watch=None) -> Iterator[Split]:
    """Prepared chunks of a CSV/TSV/Parquet file; the file checks of `read_table` first."""
    names = check_table_file(p)
    _check_columns(p, names, schema, require_target)
    if watch is not None:
        watch.header(names)
    wanted = schema.file_columns
    target = schema.target if schema.target is not None and schema.target in names and require_target else None
    if target is not None:
        wanted.append(target)
    ident = schema.id_column if schema.id_column is not None and schema.id_column in names else None
    if ident is not None and ident not in wanted:
        wanted.append(ident)
    text = C.kind_of(p) != ".parquet"
    numeric = schema.numeric_file_columns + ([target] if target and schema.task == "regression" else [])
    if text and numeric:
        numeric = _read_as_numbers(p, numeric, schema)
    typed = [c.name for c in schema.other_columns] + [c for c in (target, ident) if c and c not in numeric]
    part = Part(name="rows", path=p, splitter=None, text=text, numeric=numeric, columns=wanted, typed=typed,
                cell_types=schema.cell_types)
    count = 0
    for chunk in part.chunks():
        count += len(chunk.frame)
        if watch is not None:
            watch.add(chunk.frame)
        split = prepare_inputs(chunk.frame, schema, require_target=require_target, source=str(p),
                               line_offset=part.line_offset)
        del chunk  # (the chunk's raw rows are let go before the consumer works on its inputs)
        hand = [split]
        del split
        yield hand.pop()
    if count == 0:
        raise DataError(f"{p}: the file has a header but no rows (columns: {list_names(names)})")


def _check_columns(p: Path, names: list[str], schema: FeatureSchema, require_target: bool) -> None:
    """A column the model uses (or the target, when required) missing from the header: the message
    `prepare_inputs` gives, before a row is read."""
    check_frame_columns(pd.DataFrame({n: [None] for n in names}), schema, str(p), require_target)


def _read_as_numbers(p: Path, numeric: list[str], schema: FeatureSchema) -> list[str]:
    """The numeric columns the chunk reader reads as numbers: those whose cells fit read as numbers
    (`schema.cell_types`; a column of true/false is read as text and converted by `prepare_inputs`);
    for a schema written before cell types were kept, as its first row suggests (`_parsed_by_arrow`)."""
    if all(name in schema.cell_types for name in numeric):
        return [name for name in numeric if schema.cell_types[name] == "number"]
    return _parsed_by_arrow(p, numeric)


def _parsed_by_arrow(p: Path, numeric: list[str]) -> list[str]:
    """The numeric columns read as numbers by the chunk reader: all but those whose first row holds
    true/false (`stream.files.looks_boolean`: a boolean column, numeric to nettrain), which are read as
    text and converted by `prepare_inputs` as they are when the file is read whole."""
    import contextlib

    import pyarrow as pa

    first = C.iter_chunks(p, columns=numeric, rows=1)
    with contextlib.closing(first):
        try:
            frame = next(first).frame
        except (StopIteration, pa.ArrowException, OSError, UnicodeDecodeError):
            return numeric  # no rows, or a file the real read reports on
    return [c for c in numeric if not looks_boolean(frame[c])]


def aligned(parts: Iterable[Split], multiple: int) -> Iterator[Split]:
    """The Splits of `parts` re-cut so that every one but the last holds a multiple of `multiple`
    rows: batches of `multiple` drawn from each then match those drawn from all the rows at once
    (the same sums in the same order: the same metrics, bit for bit)."""
    tail = None
    for part in parts:
        if tail is not None:
            part, tail = Split.concat([tail, part]), None
        cut = len(part) - len(part) % multiple
        if cut == len(part):
            yield part
            continue
        if cut:
            yield part.take(slice(0, cut))
        tail = part.take(slice(cut, None))
    if tail is not None:
        yield tail
