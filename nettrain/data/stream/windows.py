"""Prepared rows as a stream serves them: shuffle windows (`Window`, `window_order`), splits joined
into one set of arrays as they arrive (`Joined`, `joined`), and a pass cut short or stripped to
what training reads (`cut`, `inputs_only`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from nettrain.data.types import Split


def cut(splits: Iterator[Split], limit: int) -> Iterator[Split]:
    """The first `limit` rows of `splits` (the last split cut short)."""
    done = 0
    with contextlib.closing(splits):
        for split in splits:
            if done + len(split) > limit:
                split = split.take(slice(0, limit - done))
            done += len(split)
            hand = [split]
            del split
            yield hand.pop()
            if done >= limit:
                return


def inputs_only(splits: Iterator[Split]) -> Iterator[Split]:
    """`splits` without their ids and row numbers (holding none of them while the consumer works)."""
    with contextlib.closing(splits):
        for split in splits:
            hand = [Split(inputs=split.inputs, y=split.y)]
            del split
            yield hand.pop()


@dataclass
class Window:
    """Rows of a split as they are served: `split` holds them in file order (one chunk, or the
    chunks of one shuffle window joined), `order` the positions in serving order (None: as they are)."""

    split: Split
    order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.split)

    def rows(self) -> Split:
        """The rows in serving order (a copy when they are shuffled)."""
        return self.split if self.order is None else self.split.take(self.order)


def window_order(rows: int, shuffle: tuple[int, int], number: int) -> np.ndarray:
    """The order of the `rows` rows of window `number`: np.random.default_rng((seed, epoch, number))."""
    seed, epoch = shuffle
    return np.random.default_rng((int(seed), int(epoch), int(number))).permutation(rows)


class Joined:
    """Splits appended into one set of arrays (as `Split.concat` joins them), allocated once for
    `capacity` rows and grown if more come: a window is held once, not as its chunks plus their
    concatenation (with glibc, the pages of a large allocation never written take no memory)."""

    def __init__(self, first: Split, capacity: int):
        self.rows = len(first)
        self.count = 1
        capacity = max(capacity, self.rows)
        self.fields: dict[tuple[str, str], np.ndarray | None] = {}
        for key, a in self._arrays(first).items():
            if a is None:
                self.fields[key] = None
                continue
            a = np.asarray(a)
            buf = np.empty((capacity,) + a.shape[1:], dtype=a.dtype, order="C")
            buf[:len(a)] = a
            self.fields[key] = buf

    @staticmethod
    def _arrays(split: Split) -> dict[tuple[str, str], np.ndarray | None]:
        out = {("inputs", k): v for k, v in split.inputs.items()}
        out.update({("y", ""): split.y, ("ids", ""): split.ids, ("row_index", ""): split.row_index})
        return out

    def add(self, split: Split) -> None:
        n = len(split)
        end = self.rows + n
        for key, a in self._arrays(split).items():
            buf = self.fields[key]
            if buf is None:
                continue
            if a is None:  # as Split.concat: a field some split lacks is dropped
                self.fields[key] = None
                continue
            a = np.asarray(a)
            dtype = np.result_type(buf.dtype, a.dtype) if a.dtype != buf.dtype else buf.dtype
            if end > len(buf) or dtype != buf.dtype or a.shape[1:] != buf.shape[1:]:
                if a.shape[1:] != buf.shape[1:]:
                    raise ValueError(f"cannot join rows of shape {a.shape[1:]} to rows of shape {buf.shape[1:]}")
                grown = np.empty((max(end, len(buf) + len(buf) // 2),) + buf.shape[1:], dtype=dtype)
                grown[:self.rows] = buf[:self.rows]
                buf = self.fields[key] = grown
            buf[self.rows:end] = a
        self.rows = end
        self.count += 1

    def split(self) -> Split:
        def part(key):
            buf = self.fields[key]
            return None if buf is None else buf[:self.rows]

        return Split(inputs={k: part(("inputs", k)) for (f, k) in self.fields if f == "inputs"},
                     y=part(("y", "")), ids=part(("ids", "")), row_index=part(("row_index", "")))

    def window(self, shuffle: tuple[int, int], number: int) -> Window:
        split = self.split()
        self.fields = {}
        return Window(split, window_order(len(split), shuffle, number))


def joined(splits: Iterable[Split], rows: int = 0) -> Split | None:
    """The rows of `splits` as one Split (what `Split.concat` gives), joined as they come: the pieces
    are not all held before their concatenation (`rows`: how many are expected). None when there
    are none."""
    first, window = None, None
    for split in splits:
        if window is not None:
            window.add(split)
        elif first is None:
            first = split
        else:
            window = Joined(first, max(rows, 2 * (len(first) + len(split))))
            first = None  # (only `window` holds those rows now)
            window.add(split)
        del split
    return window.split() if window is not None else first
