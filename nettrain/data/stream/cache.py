"""The prepared rows of one split of a stream kept in a binary file between passes (`SplitCache`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from nettrain.data.types import Split
from nettrain.errors import DataError


class SplitCache:
    """The prepared rows of one split kept in a binary file between passes (`RowReader.rows(cache=)`).

    The first whole pass writes each chunk's arrays as they are (numeric inputs and targets: float32
    and int64, a few bytes per value where a CSV takes ~10-20; a pass over another split of the same
    file may write them on the way, see `RowReader.prepared`) and later passes read them back with
    plain reads, one chunk at a time: memory stays that of one chunk, and an epoch costs a read of
    the file (mostly from the page cache) instead of parsing the CSV again. Rows with text or
    categorical inputs (object arrays) are not cached: the pass goes on from the file, as does any
    pass after a failed write (a full disk). The file lives where the caller says (the run's
    `.cache` folder) and is removed by `remove()` at the end of the session, except a complete cache
    of the rows `evaluate RUN` reads (`keep.KEPT_SPLITS`, at most `keep.keep_limit()` bytes): it
    stays, with `<split>.json` beside it saying what it holds and which file(s) it came from
    (`origin`), so evaluate does not parse the file again (`keep.kept_rows`).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.complete = False
        self.disabled = False
        self._writer: _CacheWriter | None = None   # the pass writing the file now (the last one started)
        self._origin: tuple[list, list[int]] | None = None   # (the parts read, the split codes) of its rows
        # per chunk: [(input name, shape, dtype, order)], (shape, dtype, order) of the targets or None
        self._chunks: list[tuple[list[tuple[str, tuple, str, str]], tuple[tuple, str, str] | None]] = []

    @staticmethod
    def _storable(split: Split) -> bool:
        arrays = list(split.inputs.values()) + ([split.y] if split.y is not None else [])
        return all(a.dtype != object and a.dtype.kind in "fiub" for a in arrays)

    def origin(self, parts: list, codes) -> None:
        """Where the rows come from (`reader.Part`s, the split codes): what a kept cache records."""
        self._origin = (list(parts), sorted(int(c) for c in codes))

    @property
    def described(self) -> Path:
        return self.path.with_suffix(".json")

    def writer(self) -> "_CacheWriter | None":
        """A writer of one whole pass (None when the cache is complete or turned off): its `write`s
        are the pass's prepared chunks in order; `finish()` makes the cache complete, `abort()` (a
        pass stopped early) leaves no file. A chunk that cannot be stored (text inputs) or a failed
        write (a full disk) turns the cache off: the file stays the source. A new writer takes the
        cache over from an earlier one still winding down on another thread (a pass stopped early
        whose reading thread has not noticed yet): that one writes to a file of its own (the old
        one, unlinked) and changes nothing when it ends."""
        if self.complete or self.disabled:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.described.unlink()  # a kept cache of an earlier session is no longer what the file holds
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a new file: an earlier writer's late writes cannot reach this one
            f = open(self.path, "wb")
        except OSError:
            self._drop(disable=True)
            return None
        self._writer = _CacheWriter(self, f)
        return self._writer

    def tee(self, splits: Iterator[Split]) -> Iterator[Split]:
        """`splits`, unchanged, written to the file on the way; the cache is complete once they end."""
        writer = self.writer()
        if writer is None:
            yield from splits
            return
        try:
            for split in splits:
                writer.write(split)
                hand = [split]
                del split
                yield hand.pop()
            writer.finish()
        finally:
            writer.abort()  # the pass stopped early: a partial file is no cache (nothing once finished)

    def _drop(self, disable: bool = False) -> None:
        self.disabled = self.disabled or disable
        self.complete, self._chunks, self._writer = False, [], None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def splits(self) -> Iterator[Split]:
        """The cached chunks as Splits (inputs and targets only), in the order they were written."""
        return read_splits(self.path, self._chunks)

    def remove(self) -> None:
        """The end of the session: the file is removed, unless it is kept for `evaluate RUN` (see the class)."""
        if not self._keep():
            self._drop()
            with contextlib.suppress(OSError):
                self.described.unlink()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when empty

    def _keep(self) -> bool:
        from nettrain.data.stream.keep import KEPT_SPLITS, describe, keep_limit

        if not self.complete or self._origin is None or self.path.stem not in KEPT_SPLITS:
            return False
        try:
            if self.path.stat().st_size > keep_limit():
                return False
            describe(self.described, self.path.stem, self._chunks, *self._origin)
        except (OSError, ValueError):
            return False
        return True


class _CacheWriter:
    """One pass's prepared chunks written to a SplitCache's file (see `SplitCache.writer`)."""

    def __init__(self, cache: SplitCache, f):
        self.cache, self.f = cache, f
        self.chunks: list = []

    @property
    def open(self) -> bool:
        return self.f is not None

    @property
    def owner(self) -> bool:
        """Whether this is the cache's current writer (see `SplitCache.writer`)."""
        return self.cache._writer is self

    def write(self, split: Split) -> None:
        if self.f is None:
            return
        try:
            if not SplitCache._storable(split):
                raise ValueError("not numeric")
            layout = [(name, *_write_array(self.f, split.inputs[name])) for name in sorted(split.inputs)]
            y = None if split.y is None else _write_array(self.f, split.y)
            self.chunks.append((layout, y))
        except (OSError, ValueError):  # text inputs, a full disk: the file stays the source
            with contextlib.suppress(OSError):
                self._close()
            if self.owner:
                self.cache._drop(disable=True)

    def finish(self) -> None:
        if self.f is None:
            return
        try:
            self._close()
        except OSError:
            if self.owner:
                self.cache._drop(disable=True)
            return
        if self.owner:
            self.cache._chunks, self.cache.complete, self.cache._writer = self.chunks, True, None

    def abort(self) -> None:
        if self.f is not None:
            with contextlib.suppress(OSError):
                self._close()
            if self.owner:
                self.cache._drop()

    def _close(self) -> None:
        f, self.f = self.f, None
        f.close()


def _write_array(f, a: np.ndarray) -> tuple[tuple, str, str]:
    """Write `a`'s bytes as they lie in memory (column-major arrays, as prepared inputs come, without
    a copy); (shape, dtype, order) to read it back."""
    a = np.asarray(a)
    order = "F" if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    data = a.T if order == "F" else np.ascontiguousarray(a)
    f.write(memoryview(data).cast("B"))
    return a.shape, a.dtype.str, order


def _read_array(f, shape: tuple, dtype: str, order: str = "C") -> np.ndarray:
    a = np.empty(shape, dtype=np.dtype(dtype), order=order)
    view = memoryview(a.T if order == "F" else a).cast("B")
    if f.readinto(view) != len(view):
        raise DataError(f"{f.name}: the cache of prepared rows is shorter than written")
    return a


def read_splits(path: Path, chunks: list) -> Iterator[Split]:
    """The Splits of a cache file whose chunks' layouts are `chunks` (see `SplitCache`)."""
    with open(path, "rb") as f:
        for layout, y_layout in chunks:
            inputs = {name: _read_array(f, *how) for name, *how in layout}
            y = None if y_layout is None else _read_array(f, *y_layout)
            yield Split(inputs=inputs, y=y)
            del inputs, y
