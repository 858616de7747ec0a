"""What a stream's first pass counts (`Tally`), bounded whatever the file's length: rows per split
code, labels per class, the target's statistics, and the target's order through the file."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pandas as pd

from nettrain.data.columns import as_strings, row_label
from nettrain.data.inputs import encode_target_problem
from nettrain.data.stats import NumericStats, TrainStats
from nettrain.data.stream.reader import Part
from nettrain.data.task import target_kind
from nettrain.errors import DataError

MAX_LABELS = 100_000       # distinct target values counted; more is a regression target (or an error)


class Tally:
    """What the first pass counts (bounded: per split code, per class, per chunk)."""

    def __init__(self, stat_codes: set[int], *, regression: bool = False, settles: bool = False, target: str = ""):
        self.stat_codes = stat_codes
        self.target_name = target
        # `regression`: the task is regression whatever the values (the config says so and every
        # chunk's target is read as numbers); `settles`: it becomes regression at the first value that
        # is not a whole number (task auto, no loss that says otherwise). Labels are counted only while
        # they may become classes: a continuous target skips the per-value work (see `_settled`).
        self.regression, self.settles = regression, settles
        self.read = self.dropped = 0
        self.code_rows: collections.Counter = collections.Counter()
        self.stats: dict[int, TrainStats] = {}
        self.labels: dict[int, collections.Counter] | None = collections.defaultdict(collections.Counter)
        self.distinct: dict[str, None] = {}     # label text -> None, in order of first sight (capped)
        self.kinds: set[str] = set()
        self.all_bool = True
        self.targets: dict[int, NumericStats] = {}
        self.bad_target: tuple[str, str, Any] | None = None
        self.chunk_means: list[tuple[int, float]] = []
        self.order_counts: collections.Counter = collections.Counter()
        self.changes = self.changes_seen = 0
        self.order_chunks = 0                   # chunks with training rows
        self._last: str | None = None
        self._lookup: dict[str, int] | None = None

    def target(self, target: pd.Series, codes: np.ndarray, part: Part) -> None:
        if self._settled(target):
            numbers = target.to_numpy(dtype=np.float64)
            present = ~np.isnan(numbers)
            self._finite(numbers, target, part)
            self._target_stats(numbers[present], codes[present])
            return
        present = target.notna().to_numpy()
        if not present.any():
            return
        values = target[present]
        codes = codes[present]
        # each distinct value once (the per-value work is on the distinct values, not on every row)
        which, uniques = pd.factorize(values)
        distinct = pd.Series(uniques, dtype=values.dtype)
        self.kinds.add(target_kind(distinct))
        self.all_bool &= bool(pd.api.types.is_bool_dtype(values.dtype))
        if self.labels is not None:  # no more once there are too many values to be classes
            texts = as_strings(distinct)
            for code in np.unique(codes).tolist():
                counts = np.bincount(which[codes == code], minlength=len(texts))
                for i in np.flatnonzero(counts).tolist():
                    self.labels[code][texts[i]] += int(counts[i])
            for label in texts.tolist():
                self.distinct.setdefault(label, None)
            if len(self.distinct) > MAX_LABELS:
                self.labels = None  # a regression target (or too many classes: an error if classification)
        numbers = _numbers(distinct)[which]
        bad = np.isnan(numbers)
        if bad.any():
            if self.bad_target is None:
                pos = int(np.argmax(bad))
                self.bad_target = (part.where, row_label(values.index[pos], part.line_offset), values.iloc[pos])
            return
        self._finite(numbers, values, part)
        self._target_stats(numbers, codes)

    def _finite(self, numbers: np.ndarray, values: pd.Series, part: Part) -> None:
        """A regression target (the config's task, or task auto, where an infinite value is no class)
        holding an infinite value is refused by the first pass, as `inputs.encode_target` refuses it,
        before a run exists."""
        if not (self.regression or self.settles):
            return
        with np.errstate(over="ignore"):
            infinite = np.isinf(numbers.astype(np.float32))
        if infinite.any():
            pos = int(np.argmax(infinite))
            raise DataError(encode_target_problem(part.where, self.target_name, row_label(values.index[pos],
                                                                                          part.line_offset),
                                                  values.iloc[pos]))

    def _target_stats(self, numbers: np.ndarray, codes: np.ndarray) -> None:
        y = numbers.astype(np.float32)
        for code in np.unique(codes).tolist():
            if code in self.stat_codes:
                s = NumericStats.of(y[codes == code].reshape(-1, 1))
                self.targets[code] = s if code not in self.targets else self.targets[code].merge(s)

    def _settled(self, target: pd.Series) -> bool:
        """Whether this chunk's target needs no label work: its values are numbers and they can no
        longer be classes (too many distinct values, or the task is regression whatever they are).
        What is skipped then (label counts, distinct values, value kinds) decides nothing more:
        numbers are never 'labels', and a regression task reads no class. With `settles`, a chunk
        holding a value that is not a whole number settles it: that value (one is enough) joins the
        distinct values, so `target_values` is continuous and task inference says regression."""
        dtype = target.dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) \
                or isinstance(dtype, pd.CategoricalDtype):
            return False
        if self.labels is None or self.regression:
            self.all_bool = False
            return True
        if not self.settles:
            return False
        values = target.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            fraction = np.flatnonzero(~np.isnan(values) & (np.mod(values, 1) != 0))
        if len(fraction) == 0:
            return False
        self.distinct.setdefault(as_strings(pd.Series(values[fraction[:1]]))[0], None)
        self.kinds.add("continuous")
        self.regression = True
        self.all_bool = False
        return True

    def order(self, target: pd.Series) -> None:
        """The training rows' labels in file order: runs of one label, and the target's mean per chunk."""
        if self.regression and pd.api.types.is_numeric_dtype(target.dtype) \
                and not pd.api.types.is_bool_dtype(target.dtype):  # only the chunk means tell
            numbers = target.to_numpy(dtype=np.float64)
            numbers = numbers[~np.isnan(numbers)]
            if len(numbers):
                self.order_chunks += 1
                self.chunk_means.append((len(numbers), float(numbers.mean())))
            return
        present = target.dropna()
        if present.empty:
            return
        self.order_chunks += 1  # (text labels have no chunk means: counted here)
        which, uniques = pd.factorize(present)
        distinct = pd.Series(uniques, dtype=present.dtype)
        if self.labels is not None:  # runs of one label: only while the values can still be classes
            labels = as_strings(distinct)[which]
            if len(self.order_counts) <= 1000:
                self.order_counts.update(labels.tolist())
            prev = np.concatenate([[self._last], labels[:-1]]) if self._last is not None else labels[:-1]
            cur = labels if self._last is not None else labels[1:]
            self.changes += int((prev != cur).sum())
            self.changes_seen += len(cur)
            self._last = labels[-1]
        numbers = _numbers(distinct)[which]
        if not np.isnan(numbers).any():
            self.chunk_means.append((len(numbers), float(numbers.mean())))

    def target_values(self) -> pd.Series:
        """The distinct target values, typed as read_csv types the whole column: what task inference
        and the class names depend on (the set of values and their type, not their counts)."""
        distinct = list(self.distinct)
        if self.all_bool and self.kinds <= {"labels"} and distinct:
            return pd.Series([v == "True" for v in distinct], dtype=bool)
        if "labels" in self.kinds:
            return pd.Series(pd.Categorical(distinct))
        return pd.Series(pd.to_numeric(pd.Series(distinct, dtype=object)), dtype=np.float64)

    def name_labels(self, values: pd.Series) -> None:
        """Map each label text seen to its class (after the class names are known)."""
        self._lookup = dict(zip(self.distinct, as_strings(values)))

    def class_counts(self, code: int, names: list[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(names)}
        out = np.zeros(len(names), dtype=np.int64)
        for label, n in (self.labels or {}).get(code, {}).items():
            out[index[self._lookup.get(label, label)]] += n
        return out


def _numbers(values: pd.Series) -> np.ndarray:
    """float64 of target values, NaN where a value is not a number."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
