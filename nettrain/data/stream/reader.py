"""The rows of a streamed dataset read from its file(s), again at every pass.

`Part`: one data file, its typed chunks (`chunks.exact_chunks`, text cells typed by the cell types
decided at the first chunk, `data.cells`) and how its rows fall into splits; `Stamp`: what says the
file is still the one the first pass read. `RowReader`: the rows of chosen splits as prepared
`Split`s, chunk by chunk or shuffle window by shuffle window (`windows`), from the file or from a
`SplitCache` of prepared rows.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from nettrain.data import chunks as C
from nettrain.data.cells import typed
from nettrain.data.inputs import missing_rows, prepare_inputs
from nettrain.data.split import FOLD0, TEST, TRAIN, VALIDATION, HashedSplit
from nettrain.data.stats import FILL_POLICIES
from nettrain.data.stream.progress import Meter
from nettrain.data.stream.windows import Joined, Window, cut, inputs_only
from nettrain.data.types import FeatureSchema, Split
from nettrain.errors import DataError

if TYPE_CHECKING:
    from nettrain.data.stream.cache import SplitCache

SHUFFLE_WINDOW = 4         # chunks whose rows are shuffled together (~256k rows)
# What a pass that reads a whole file for itself (a first pass, a row count) parses ahead of the chunk
# being made: CSV byte ranges parsed by several threads (`ranges`), else blocks by one (`chunks`).
PARSE_AHEAD = 8


@dataclass
class Part:
    """One data file read in chunks (a streamed dataset's, or a file `data.rows.file_rows` reads for
    evaluate and predict) and how its rows fall into splits."""

    name: str                        # "source", "train", "validation" or "test"
    path: Path
    splitter: HashedSplit | None     # codes from row numbers; None: every row has `fixed`
    fixed: int | None = None
    text: bool = True                # CSV/TSV: typed like read_csv, messages name lines
    numeric: list[str] = field(default_factory=list)   # columns the chunk reader converts to numbers
    columns: list[str] = field(default_factory=list)   # columns read
    typed: list[str] = field(default_factory=list)     # text columns typed by `data.cells`
    cell_types: dict[str, str] = field(default_factory=dict)  # their cell types (from the first chunk)
    whole: list[str] = field(default_factory=list)     # numeric columns given back as int64 when whole numbers
    stamp: "Stamp | None" = None                       # the file's size, mtime and inode at the first pass
    rows: int | None = None                            # its rows, counted by the first pass

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def line_offset(self) -> int | None:
        return 2 if self.text else None

    def codes(self, rows: np.ndarray) -> np.ndarray:
        if self.splitter is None:
            return np.full(len(rows), self.fixed, dtype=np.int8)
        return self.splitter.codes(rows)

    def possible(self) -> set[int]:
        if self.splitter is None:
            return {self.fixed}
        s = self.splitter
        if s.folds > 1:
            return {FOLD0 + i for i in range(s.folds)} | ({TEST} if s.test > 0 else set())
        return {TRAIN} | ({VALIDATION} if s.validation > 0 else set()) | ({TEST} if s.test > 0 else set())

    def chunks(self, rows: int | None = None, ahead: int = 0) -> Iterator[C.Chunk]:
        """The file's chunks (`chunks.exact_chunks`; `ahead`: blocks parsed ahead by a thread), the `typed`
        columns of a CSV/TSV typed by their cell types (`data.cells.typed`); reading errors as DataError
        (`chunks.unreadable`)."""
        import pyarrow as pa

        self.check_unchanged()
        it = C.exact_chunks(self.path, numeric=self.numeric, columns=self.columns or None,
                            rows=rows or C.CHUNK_ROWS, ahead=ahead)
        count = 0
        with contextlib.closing(it):
            while True:
                try:
                    chunk = next(it)
                except StopIteration:
                    return
                except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
                    raise C.unreadable(self.path, count, e) from None
                if self.text:
                    for name in self.typed:  # as fit typed them (a stream: its first chunk)
                        chunk.frame[name] = typed(chunk.frame[name], self.cell_types.get(name))
                    for name in self.whole:  # as read_csv types a column of whole numbers
                        values = chunk.frame[name].to_numpy()
                        if _whole_numbers(values):
                            chunk.frame[name] = values.astype(np.int64)
                        del values
                count += len(chunk.frame)
                hand = [chunk]
                del chunk
                yield hand.pop()  # (this generator keeps no reference while the consumer works on it)

    def check_unchanged(self) -> None:
        """A DataError when the file is not the one the first pass read (see `Stamp.change`)."""
        if self.stamp is None:
            return
        change = self.stamp.change(Stamp.of(self.path))
        if change is not None:
            raise DataError(f"{self.path} changed during the run ({change}); a streamed run reads it again at "
                            "every epoch: put the file back as it was, or start a new run")


def _whole_numbers(values: np.ndarray) -> bool:
    """Whether float64 `values` are whole numbers of less than 2**53 in size (no NaN): what read_csv
    reads as int64. trunc(v) == v is mod(v, 1) == 0 for finite values, 3x faster (an infinity fails
    the size); a fraction among the first values (a target of measurements) ends the look there."""
    head = values[:64]
    if not (np.trunc(head) == head).all():
        return False
    return bool(not np.isnan(values).any() and (np.trunc(values) == values).all()
                and np.abs(values).max(initial=0) < 2**53)


@dataclass(frozen=True)
class Stamp:
    """What says a file is still the one a stream's first pass read: its size, modification time
    (ns) and inode (a file replaced by another, e.g. `mv new.csv data.csv`, has another inode). A
    file touched with the same bytes counts as changed; its bytes are not read again."""

    size: int
    mtime_ns: int
    inode: tuple[int, int]   # (device, inode)

    @classmethod
    def of(cls, path: Path) -> "Stamp | None":
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino))

    def change(self, now: "Stamp | None") -> str | None:
        """How `now` differs from this stamp, in words; None when it does not."""
        if now is None:
            return "it is gone or cannot be read"
        if now.inode != self.inode:
            return "it was replaced by another file"
        if now.size != self.size:
            return f"its size went from {self.size:,} to {now.size:,} bytes"
        if now.mtime_ns != self.mtime_ns:
            return "its modification time changed"
        return None


class RowReader:
    """The rows of a streamed dataset, read again from the file(s) at every call, as model inputs.

    `rows(codes)` yields one `Split` per chunk (or per shuffle window) of the rows whose split code is
    in `codes` (see `split.HashedSplit`), after the missing-value policy, prepared with the final
    schema (fill values applied), in file order unless `shuffle=(seed, epoch)`.
    """

    def __init__(self, parts: list[Part], schema: FeatureSchema, policy: str):
        self.parts, self.schema, self.policy = parts, schema, policy

    def check_unchanged(self) -> None:
        """A DataError naming the first file that changed since the first pass (`Part.check_unchanged`)."""
        for part in self.parts:
            part.check_unchanged()

    def kept(self, part: Part, frame: pd.DataFrame) -> np.ndarray | None:
        """Mask of the rows the missing-value policy keeps (None: all)."""
        if self.policy == "drop_rows":
            mask = ~missing_rows(frame, self.schema)
        elif self.policy in FILL_POLICIES:
            mask = frame[self.schema.target].notna().to_numpy()
        else:
            return None
        return None if mask.all() else mask

    def read_parts(self, codes: Iterable[int]) -> list[Part]:
        """The parts a pass over the rows in `codes` reads (those that may hold some)."""
        wanted = set(int(c) for c in codes)
        return [part for part in self.parts if part.possible() & wanted]

    def selected(self, codes: Iterable[int], *, columns: list[str] | None = None,
                 side: Iterable[tuple[Iterable[int], Callable[[Part, pd.DataFrame], None]]] = (),
                 meter: Meter | None = None) -> Iterator[tuple[Part, int, pd.DataFrame]]:
        """(part, chunk number, the chunk's rows in `codes` that the policy keeps), chunks with no such
        rows skipped; chunks are numbered through all parts. `side`: (other codes, take) pairs: the
        rows of each chunk in those codes are handed to `take(part, rows)` first (parts holding none
        of `codes` are not read). `meter`: counts the rows read (the pass ends it)."""
        with meter if meter is not None else contextlib.nullcontext():
            yield from self._selected(codes, side, meter)

    def _selected(self, codes, side, meter: Meter | None) -> Iterator[tuple[Part, int, pd.DataFrame]]:
        wanted = np.array(sorted(set(codes)), dtype=np.int8)
        side = [(np.array(sorted(set(other)), dtype=np.int8), take) for other, take in side]
        number = 0
        for part in self.read_parts(wanted.tolist()):
            for chunk in part.chunks():
                frame = chunk.frame
                if meter is not None:
                    meter.add(len(frame))
                codes_here = part.codes(frame.index.to_numpy())
                keep = self.kept(part, frame)
                for other, take in side:
                    mine = np.isin(codes_here, other)
                    if keep is not None:
                        mine &= keep
                    if mine.any():
                        take(part, frame if mine.all() else frame[mine])
                mask = np.isin(codes_here, wanted)
                if keep is not None:
                    mask &= keep
                number += 1
                if not mask.all():
                    frame = frame[mask] if mask.any() else None
                del chunk  # the rows not selected are let go before the consumer prepares these
                if frame is not None:
                    hand = [frame]
                    del frame
                    yield part, number - 1, hand.pop()

    def prepared(self, codes: Iterable[int], *, limit: int | None = None,
                 side: Iterable[tuple[Iterable[int], "SplitCache"]] = (), meter: Meter | None = None
                 ) -> Iterator[Split]:
        """Prepared Splits of the rows in `codes`, one per chunk, in file order; `limit` stops after
        that many rows. `side`: (codes, cache) of other splits, whose caches this pass fills as well
        (the rows of each chunk in those codes, prepared chunk by chunk as their own pass would
        prepare them): one parse of the file for every split. A cache is complete only when this pass
        is (and it read every part that holds its rows); one that is complete already is left alone.
        `meter`: counts the rows read (see `selected`)."""
        writers = []
        if limit is None:
            for other, cache in side:
                other = frozenset(other)
                writer = cache.writer()
                if writer is None:
                    continue
                cache.origin(self.parts, other)
                if any(part.possible() & other and not part.possible() & set(codes) for part in self.parts):
                    writer.abort()  # some of its rows are in a part this pass does not read
                    continue
                writers.append((other, writer))

        def writing(writer):
            def take(part: Part, frame: pd.DataFrame) -> None:
                if writer.open:  # (not after a chunk that could not be stored)
                    writer.write(prepare_inputs(frame, self.schema, require_target=True, source=part.where,
                                                line_offset=part.line_offset))
            return take

        done = 0
        try:
            for part, _, frame in self.selected(codes, side=[(other, writing(w)) for other, w in writers],
                                                meter=meter):
                if limit is not None:
                    frame = frame.iloc[: limit - done]
                split = prepare_inputs(frame, self.schema, require_target=True, source=part.where,
                                       line_offset=part.line_offset)
                del frame
                done += len(split)
                hand = [split]
                del split
                yield hand.pop()
                if limit is not None and done >= limit:
                    break
            for _, writer in writers:
                writer.finish()
        finally:
            for _, writer in writers:
                writer.abort()  # (nothing once finished)

    def rows(self, codes: Iterable[int], *, shuffle: tuple[int, int] | None = None,
             limit: int | None = None, cache: "SplitCache | None" = None,
             side: Iterable[tuple[Iterable[int], "SplitCache"]] = ()) -> Iterator[Split]:
        """Prepared Splits of the rows in `codes`; `shuffle=(seed, epoch)` permutes the rows of each
        window of SHUFFLE_WINDOW chunks with np.random.default_rng((seed, epoch, window)); `limit`
        stops after that many rows (file order). With a `cache`, a whole pass also stores the prepared
        chunks in it, and once it holds them all they are read from there, not parsed again: the
        same rows, chunk for chunk, so the same windows and order (`side`: see `windows`)."""
        for window in self.windows(codes, shuffle=shuffle, limit=limit, cache=cache, side=side):
            yield window.rows()

    def _building(self, codes: Iterable[int], cache: "SplitCache") -> Meter | None:
        """The progress of a pass that builds `cache` (numeric inputs: text ones are never cached): rows
        of the file(s) read, of their rows counted by the first pass, in plain lines (on a terminal
        too: training's bars are live, the lines go above them)."""
        if cache.disabled or any(c.kind != "numeric" for c in self.schema.columns):
            return None
        parts = self.read_parts(codes)
        total = None if any(p.rows is None for p in parts) else sum(p.rows for p in parts)
        return Meter(f"caching the prepared rows of {', '.join(p.path.name for p in parts)}", total, lines=True)

    def windows(self, codes: Iterable[int], *, shuffle: tuple[int, int] | None = None,
                limit: int | None = None, cache: "SplitCache | None" = None, bare: bool = False,
                side: Iterable[tuple[Iterable[int], "SplitCache"]] = ()) -> Iterator[Window]:
        """What `rows` gives, before the shuffle is applied: each window's rows in file order, joined
        into one set of arrays as its chunks arrive, and the order they are served in. A consumer that
        takes a few rows at a time in that order (`engine.StreamLoop`) never needs the permuted copy.
        `bare`: inputs and targets only (no ids, no row numbers: what training reads). A complete
        `cache` also serves a pass with a `limit`. `side`: (codes, cache) of other splits that a pass
        parsing the file fills on the way (`prepared`). Every pass, one from the cache too, starts by
        checking that no file changed since the first pass (`check_unchanged`)."""
        self.check_unchanged()
        if cache is not None:
            cache.origin(self.parts, codes)
        if cache is not None and cache.complete:
            source = cache.splits() if limit is None else cut(cache.splits(), limit)
        elif cache is not None and limit is None:
            source = cache.tee(self.prepared(codes, side=side, meter=self._building(codes, cache)))
        else:
            source = self.prepared(codes, limit=limit)
        if bare:
            source = inputs_only(source)
        if shuffle is None:
            for split in source:
                yield Window(split)
                del split
            C.release_memory()
            return
        seed, epoch = shuffle
        window: Joined | None = None
        number = 0
        for split in source:
            if window is None:  # room for SHUFFLE_WINDOW chunks of this one's size and some
                window = Joined(split, SHUFFLE_WINDOW * (len(split) + 1024))
            else:
                window.add(split)
            del split
            if window.count == SHUFFLE_WINDOW:
                out = window.window(shuffle, number)
                window, number = None, number + 1
                yield out
                del out
        if window is not None:
            yield window.window(shuffle, number)
        C.release_memory()
