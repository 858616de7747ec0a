"""Which rows train, validate and test: ratio splits, k folds, and the fingerprint of the result.

Positions are 0-based into the cleaned table the caller passes (rows after the missing-value
policy). Sizes round to the nearest row (a requested split that rounds to zero rows is an error,
never silently skipped); stratification falls back to a plain shuffle, with a warning, when a
class is too small for it.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nettrain.errors import DataError


def n_held_out(fraction: float, n: int) -> int:
    return int(math.floor(fraction * n + 0.5)) if fraction > 0 else 0


def should_stratify(cfg, task: str) -> bool:
    s = cfg.data.split
    classification = task in ("binary", "multiclass")
    if s.stratify and not s.shuffle and classification:
        raise cfg.error("data.split.stratify", "stratify: true needs shuffle: true (without shuffling the "
                        "last rows are held out as they are); set one of them to false")
    if s.stratify is None:
        return classification and s.shuffle
    return bool(s.stratify) and classification


def hold_out(cfg, positions: np.ndarray, labels: np.ndarray | None, fraction: float, key: str,
             what: str, stratify: bool, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) positions: `fraction` of `positions`, rounded to the nearest row."""
    n = len(positions)
    k = n_held_out(fraction, n)
    if fraction <= 0:
        return positions, positions[:0]
    if k == 0:
        raise cfg.error(key, f"{fraction:g} of {n} rows is 0 rows, so the {what} split would be empty; "
                        f"use a larger fraction (at least {1 / n:.3g}), more data, or 0 to turn it off")
    if k >= n:
        raise cfg.error(key, f"{fraction:g} of {n} rows holds out all {n} rows for {what}, leaving no "
                        "training rows; use a smaller fraction")
    if not cfg.data.split.shuffle:
        return positions[: n - k], positions[n - k:]
    from sklearn.model_selection import train_test_split

    strat = labels if stratify and labels is not None else None
    try:
        kept, held = train_test_split(positions, test_size=k, shuffle=True, random_state=cfg.seed,
                                      stratify=strat)
    except ValueError:
        if strat is None:
            raise
        counts = pd.Series(strat).value_counts()
        _note(notes, f"{key}: cannot stratify the {what} split of {n} rows ({k} held out, {len(counts)} "
              f"classes, the smallest with {int(counts.min())} row{'s' if counts.min() > 1 else ''}); "
              "split without stratification")
        kept, held = train_test_split(positions, test_size=k, shuffle=True, random_state=cfg.seed)
    return np.sort(kept), np.sort(held)


def split_rows(cfg, n: int, labels: np.ndarray | None, task: str, notes: list[str] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) positions in 0..n-1 from data.split (test first, then validation)."""
    if n == 0:
        raise DataError("no rows to split")
    s = cfg.data.split
    strat = should_stratify(cfg, task)
    allpos = np.arange(n, dtype=np.int64)
    rest, test = hold_out(cfg, allpos, labels, s.test, "data.split.test", "test", strat, notes)
    if s.folds > 1:
        return rest, rest[:0], test
    sub = labels[rest] if labels is not None else None
    train, validation = hold_out(cfg, rest, sub, s.validation, "data.split.validation", "validation", strat, notes)
    return train, validation, test


def make_folds(cfg, labels: np.ndarray | None, n: int, task: str, notes: list[str] | None = None
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) position pairs into 0..n-1, stratified when the split says so."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k = cfg.data.split.folds
    if k > n:
        raise cfg.error("data.split.folds", f"{k} folds need at least {k} rows besides the test rows; "
                        f"there are {n}")
    shuffle = cfg.data.split.shuffle
    seed = cfg.seed if shuffle else None
    splitter = KFold(n_splits=k, shuffle=shuffle, random_state=seed)
    if labels is not None and should_stratify(cfg, task):
        smallest = int(pd.Series(labels).value_counts().min())
        if smallest >= k:
            splitter = StratifiedKFold(n_splits=k, shuffle=shuffle, random_state=seed)
        else:
            _note(notes, f"data.split.folds: a class has only {smallest} rows, fewer than {k} folds; "
                  "folds are not stratified")
    dummy = np.zeros(n)
    return [(np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64))
            for tr, va in splitter.split(dummy, labels if labels is not None else None)]


def trained_folds(made: int, members: int | None) -> int:
    """How many of the `made` folds a k-fold run trains: the first `data.split.members`, else all."""
    return made if members is None else min(members, made)


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)
    warnings.warn(text, stacklevel=4)


def fingerprint(frames: dict[str, pd.DataFrame], assignment: dict[str, np.ndarray]) -> str:
    """sha256 hex over the source tables (column names, dtypes, values) and the split assignment
    (source row positions of each split), so a split can be checked when it is re-created."""
    h = hashlib.sha256()
    for part in sorted(frames):
        frame = frames[part]
        h.update(f"table {part} {frame.shape}\n".encode())
        for name, dtype in frame.dtypes.items():
            h.update(f"{name}\t{dtype}\n".encode())
        try:
            hashed = pd.util.hash_pandas_object(frame, index=False)
        except TypeError:  # unhashable cells (lists from JSON): hash their text form
            hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
        h.update(hashed.to_numpy().tobytes())
    for name in sorted(assignment):
        h.update(f"split {name}\n".encode())
        h.update(np.ascontiguousarray(assignment[name], dtype=np.int64).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------ hashed splits (streams)
#
# A stream never holds its rows, so a row's split cannot come from a shuffled list of positions:
# it is a function of the row's number in its file and the seed alone. Each row number r gets a
# number u(r) in [0, 1), the r-th output of a SplitMix64 generator seeded from `seed` (one vectorized
# hash per chunk), and the thresholds of data.split decide: u >= 1 - test is a test row; of the
# others, v = u / (1 - test) >= 1 - validation is a validation row, or, with k folds, floor(v * k)
# is the row's fold. With `shuffle: false` the splits are runs of rows in file order instead, of the
# sizes the in-memory path gives the file's n rows: the last rows are held out, as in memory.
# Classes are not stratified: each class's shares come out close to the fractions (within a few
# standard deviations of sqrt(p (1 - p) / rows)), and run.json records them.

TRAIN, VALIDATION, TEST = 0, 1, 2
FOLD0 = 3  # fold i (0-based) of a k-fold split is code FOLD0 + i

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def row_uniforms(seed: int, rows: np.ndarray) -> np.ndarray:
    """u(r) in [0, 1) for each row number r: the r-th output of SplitMix64 seeded by `seed` (float64
    from the top 53 bits). Deterministic, independent of chunking, ~10 ns a row."""
    key = _splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    r = np.asarray(rows, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = key + (r + np.uint64(1)) * _GAMMA
    return (_splitmix(z) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class HashedSplit:
    """Which split each row of one file falls in, from its row number (see above)."""

    seed: int
    test: float = 0.0
    validation: float = 0.0
    folds: int = 1
    shuffle: bool = True
    n: int | None = None      # rows in the file; needed with shuffle false

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """int8 code per row number: TRAIN, VALIDATION, TEST, or FOLD0 + fold with k folds."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.shuffle:
            return self._ordered_codes(rows)
        u = row_uniforms(self.seed, rows)
        out = np.full(len(rows), TRAIN, dtype=np.int8)
        test = u >= 1.0 - self.test if self.test > 0 else np.zeros(len(rows), dtype=bool)
        v = u / (1.0 - self.test)
        if self.folds > 1:
            out[:] = FOLD0 + np.minimum((v * self.folds).astype(np.int64), self.folds - 1)
        elif self.validation > 0:
            out[v >= 1.0 - self.validation] = VALIDATION
        out[test] = TEST
        return out

    def _ordered_codes(self, rows: np.ndarray) -> np.ndarray:
        """shuffle: false: the splits are runs of rows in file order, of the sizes the in-memory
        path gives `n` rows (`n_held_out`, rounded to the nearest row): the last rows test, the
        ones before them validate; k folds are consecutive blocks as scikit-learn's KFold cuts them."""
        n = int(self.n or 0)
        n_test = n_held_out(self.test, n)
        rest = n - n_test
        out = np.full(len(rows), TRAIN, dtype=np.int8)
        if self.folds > 1:
            sizes = np.full(self.folds, rest // self.folds, dtype=np.int64)
            sizes[: rest % self.folds] += 1
            ends = np.cumsum(sizes)
            out[:] = FOLD0 + np.minimum(np.searchsorted(ends, rows, side="right"), self.folds - 1)
        elif self.validation > 0:
            out[rows >= rest - n_held_out(self.validation, rest)] = VALIDATION
        out[rows >= rest] = TEST
        return out

    def describe(self) -> str:
        return (f"hashed seed={self.seed} test={self.test!r} validation={self.validation!r} folds={self.folds} "
                f"shuffle={self.shuffle} n={self.n}")


def fold_codes(fold: int, k: int) -> tuple[set[int], set[int]]:
    """(training codes, validation codes) of fold `fold` (1-based) of a k-fold hashed split."""
    return {FOLD0 + j for j in range(k) if j != fold - 1}, {FOLD0 + fold - 1}
