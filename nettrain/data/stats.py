"""Statistics of the training rows: what the model builder and the class weights are made from.

The data stage computes a `TrainStats` of the training rows, and the model stage reads nothing
else of them: the Normalization mean and variance (or min and max), the lookup vocabularies, the
text vocabularies (adapted over `texts`), the regression head's width and target scaling, the
class counts of `class_weight: balanced`. Data held in memory gives one `stats_of(schema, split)`;
a stream of chunks gives one per chunk, combined with `merge`, so both paths build the same model
from the same numbers.

Numeric statistics are kept as (count, mean, M2 = sum of squared deviations, min, max) per column
and combined with Chan et al.'s parallel formula, which stays exact in float64 where the
textbook sum of squares cancels (values ~1e9 with a spread of 1). The quantiles that
`preprocessing.numeric` quantile / piecewise / auto need (and `preprocessing.missing: median`'s
fill values) come from a sample of the training rows
kept beside them (`NumericStats.sample`): all of them for data held in memory (exact quantiles), a
seeded uniform sample of at most `sample_limit(k)` rows merged chunk by chunk for a stream
(bounded memory, and exact again while the stream has no more rows than that).

numpy and pandas only, no TensorFlow.
"""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from nettrain.data.types import NUMERIC_INPUT, Dataset, FeatureSchema, Split
from nettrain.errors import DataError

# preprocessing.missing: the policies that fill values (from statistics of the training rows; a
# stream's median from its sample of rows, `NumericStats.sample`).
FILL_POLICIES = ("mean", "median", "most_frequent")

# The most distinct values `stats_of(..., value_counts=True)` counts per numeric column in a
# stream (numeric `most_frequent` fill values); past it the column's counts are dropped (None).
MAX_VALUE_COUNTS = 100_000

# The sample of training rows a stream keeps for the numeric quantiles: at most SAMPLE_ROWS rows and
# SAMPLE_CELLS values (wide tables keep fewer rows), never fewer than MIN_SAMPLE_ROWS rows.
SAMPLE_ROWS = 100_000
SAMPLE_CELLS = 4_000_000
MIN_SAMPLE_ROWS = 2_000
SAMPLE_SEED = 20220122   # the sample's draws are seeded: the same file gives the same model

# preprocessing.numeric: auto sends a column to the quantile map when its training values are
# heavy-tailed or skewed (`heavy_tailed`): |skewness| > AUTO_SKEW, or a value beyond the 1st/99th
# percentile by more than AUTO_TAIL interquartile ranges, or positive values whose 1st to 99th
# percentiles span more than AUTO_DECADES orders of magnitude.
AUTO_SKEW = 2.0
AUTO_TAIL = 3.0
AUTO_DECADES = 3.0


# preprocessing.numeric values whose layers are built from quantiles of the training rows (a stream
# keeps its sample of rows only for them).
QUANTILE_MODES = ("quantile", "piecewise", "auto")
# preprocessing.numeric auto encodes the numeric columns piecewise-linearly (17 features a column) up to
# this many of them; a wider table (genes, pixels, sensors) keeps one feature a column: 20,000 columns
# encoded made a first layer of 44M weights for 200 rows (195 s and 7 GB to fit)
PIECEWISE_MAX_COLUMNS = 256


def sample_limit(columns: int) -> int:
    """The most rows of `columns` numeric columns a stream's sample keeps."""
    return max(MIN_SAMPLE_ROWS, min(SAMPLE_ROWS, SAMPLE_CELLS // max(columns, 1)))


# ------------------------------------------------------------------------------ numeric


@dataclass
class NumericStats:
    """Per-column statistics of a float matrix (n, k) whose NaN cells are missing values."""

    count: np.ndarray   # int64: present (non-NaN) values per column
    mean: np.ndarray    # float64 (nan when count == 0)
    m2: np.ndarray      # float64: sum of squared deviations from the mean
    min: np.ndarray     # float64 (nan when count == 0)
    max: np.ndarray     # float64 (nan when count == 0)
    # float32 (s, k): rows drawn uniformly from the `sample_rows` rows these statistics are of, NaN =
    # missing (all of them in memory: exact quantiles); None when no sample was asked for
    sample: np.ndarray | None = None
    sample_rows: int = 0
    # the fill value per column that the sample's NaN cells stand for (`TrainStats.filled`); None or
    # NaN: no fill value (the column's missing cells are left out of its quantiles)
    fill: np.ndarray | None = None

    @classmethod
    def of(cls, x: np.ndarray, *, sample: np.ndarray | None = None) -> "NumericStats":
        """The statistics of `x` (n, k) (a 1-D array is one column), NaN = missing.

        Computed the way numpy's `mean` and `var` compute them (a float64 sum divided by the count,
        then the sum of the squared deviations), so a matrix without NaN gives bit for bit the
        numbers `x.mean(axis=0)` and `x.var(axis=0)` give. `sample`: the same rows as the model sees
        them (float32, kept as they are, not copied), for the quantiles.
        """
        if sample is not None:
            sample = np.asarray(sample, dtype=np.float32)
            sample = sample.reshape(len(sample), -1)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if x.ndim != 2:
            raise ValueError(f"NumericStats.of takes an (n, k) array, got shape {x.shape}")
        if sample is not None and sample.shape != x.shape:
            raise ValueError(f"the sample has shape {sample.shape}, the rows {x.shape}")
        with np.errstate(invalid="ignore"):
            total = x.sum(axis=0)
        if x.shape[0] and not np.isnan(total).any():  # no NaN cell (one makes its column's sum NaN)
            return cls._whole(x, total, sample)
        missing = np.isnan(x)
        if missing.any():
            count = (~missing).sum(axis=0).astype(np.int64)
            present = np.where(missing, 0.0, x)
        else:
            count = np.full(x.shape[1], x.shape[0], dtype=np.int64)
            present = x
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = present.sum(axis=0) / count
            dev = present - mean
            if missing.any():
                dev[missing] = 0.0
            m2 = (dev * dev).sum(axis=0)
        empty = count == 0
        if x.shape[0] and not empty.all():
            lo = np.where(missing, np.inf, x).min(axis=0)
            hi = np.where(missing, -np.inf, x).max(axis=0)
        else:
            lo = hi = np.full(x.shape[1], np.nan)
        mean, m2 = np.where(empty, np.nan, mean), np.where(empty, 0.0, m2)
        lo, hi = np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
        return cls(count=count, mean=mean, m2=m2, min=lo, max=hi, sample=sample,
                   sample_rows=len(sample) if sample is not None else 0)

    @classmethod
    def _whole(cls, x: np.ndarray, total: np.ndarray, sample: np.ndarray | None) -> "NumericStats":
        """`of` for rows without a missing value: the same operations on the same numbers (so the same
        bits), without the masks and with one scratch array for the deviations (a stream's first pass
        computes this for every chunk)."""
        count = np.full(x.shape[1], x.shape[0], dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
            dev = np.subtract(x, mean)
            np.multiply(dev, dev, out=dev)
            m2 = dev.sum(axis=0)
        return cls(count=count, mean=mean, m2=m2, min=x.min(axis=0), max=x.max(axis=0), sample=sample,
                   sample_rows=len(sample) if sample is not None else 0)

    @classmethod
    def constant(cls, count: np.ndarray, value: np.ndarray) -> "NumericStats":
        """`count[j]` copies of `value[j]` per column (the cells a fill value fills)."""
        count = np.asarray(count, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        empty = count == 0
        v = np.where(empty, np.nan, value)
        return cls(count=count, mean=v, m2=np.zeros(len(count)), min=v.copy(), max=v.copy())

    def merge(self, other: "NumericStats") -> "NumericStats":
        """The statistics of both sets of rows (Chan, Golub & LeVeque's pairwise update).

        A side with no values in a column leaves the other side's numbers unchanged, bit for bit.
        """
        if self.count.shape != other.count.shape:
            raise ValueError(f"cannot merge statistics of {len(self.count)} and {len(other.count)} columns")
        na, nb = self.count, other.count
        n = na + nb
        a_empty, b_empty = na == 0, nb == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            fa, fb = na.astype(np.float64), nb.astype(np.float64)
            mean = self.mean + delta * (fb / n)
            m2 = self.m2 + other.m2 + delta * delta * (fa * fb / n)
        mean = np.where(b_empty, self.mean, np.where(a_empty, other.mean, mean))
        m2 = np.where(b_empty, self.m2, np.where(a_empty, other.m2, m2))
        lo = np.where(b_empty, self.min, np.where(a_empty, other.min, np.fmin(self.min, other.min)))
        hi = np.where(b_empty, self.max, np.where(a_empty, other.max, np.fmax(self.max, other.max)))
        sample, rows = _merged_sample(self, other)
        fill = self.fill if self.fill is not None else other.fill
        return NumericStats(count=n, mean=mean, m2=m2, min=lo, max=hi, sample=sample, sample_rows=rows, fill=fill)

    @property
    def variance(self) -> np.ndarray:
        """Population variance m2 / count (what Keras's Normalization uses); nan where count == 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.m2 / self.count, np.nan)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def columns(self) -> int:
        return len(self.count)

    def values(self, j: int) -> np.ndarray:
        """Column `j`'s sampled training values as the model sees them (float64 of float32): its
        missing cells as its fill value, or left out when it has none. Empty without a sample."""
        if self.sample is None:
            return np.empty(0)
        column = self.sample[:, j].astype(np.float64)
        missing = np.isnan(column)
        if not missing.any():
            return column
        fill = self.fill[j] if self.fill is not None else np.nan
        return np.where(missing, fill, column) if np.isfinite(fill) else column[~missing]

    def quantiles(self, levels: np.ndarray) -> list[np.ndarray]:
        """Per column, its values' quantiles at `levels` (in [0, 1], numpy's linear interpolation)
        as float64 of float32 numbers (what the model compares its float32 inputs with); an empty
        array for a column without values. No NaN ever reaches the computation."""
        if self.sample is None:
            raise ValueError("these statistics hold no sample of the rows for quantiles (NumericStats.of(..., "
                             "sample=...))")
        levels = np.asarray(levels, dtype=np.float64)
        out = []
        for j in range(self.columns):
            column = self.values(j)
            out.append(np.quantile(column, levels).astype(np.float32).astype(np.float64) if len(column)
                       else np.empty(0))
        return out


def _merged_sample(a: NumericStats, b: NumericStats) -> tuple[np.ndarray | None, int]:
    """A uniform sample of the rows of both sides: each side's sample whole while both fit in
    `sample_limit`, else the limit's rows drawn without replacement, how many from each side by the
    hypergeometric law of their row counts (so every row of either side is equally likely to stay).
    Seeded by the row counts: the same chunks give the same sample."""
    if a.sample is None or b.sample is None:
        return (a.sample, a.sample_rows) if b.sample is None else (b.sample, b.sample_rows)
    rows = a.sample_rows + b.sample_rows
    limit = sample_limit(a.sample.shape[1])
    if len(a.sample) + len(b.sample) <= limit and len(a.sample) == a.sample_rows \
            and len(b.sample) == b.sample_rows:
        return np.concatenate([a.sample, b.sample]), rows
    size = min(limit, rows)
    rng = np.random.default_rng([SAMPLE_SEED, a.sample_rows, b.sample_rows])
    from_a = int(rng.hypergeometric(a.sample_rows, b.sample_rows, size)) if a.sample_rows and b.sample_rows \
        else (size if a.sample_rows else 0)
    # a side's sample is a uniform sample of its rows; drawing from it stays uniform (it is never
    # smaller than what is drawn from it: len(side) = min(its rows, limit) >= the draw)
    from_a = min(from_a, len(a.sample))
    from_b = min(size - from_a, len(b.sample))
    pick_a = np.sort(rng.choice(len(a.sample), from_a, replace=False))
    pick_b = np.sort(rng.choice(len(b.sample), from_b, replace=False))
    return np.concatenate([a.sample[pick_a], b.sample[pick_b]]), rows


def heavy_tailed(numeric: NumericStats) -> np.ndarray:
    """Per column, whether `preprocessing.numeric: auto` gives it the quantile map (else standard
    scaling), from its sampled training values: |skewness| > AUTO_SKEW; or its minimum or maximum
    beyond the 1st / 99th percentile by more than AUTO_TAIL interquartile ranges (outliers; the
    range of the middle 80% when the quartiles coincide); or its 1st to 99th percentile positive and
    more than AUTO_DECADES orders of magnitude apart. A column with at most two distinct values (a
    flag) never."""
    out = np.zeros(numeric.columns, dtype=bool)
    for j in range(numeric.columns):
        x = numeric.values(j)
        if len(x) < 3 or not np.isfinite(x).all():
            continue
        lo, hi = float(x.min()), float(x.max())
        if len(np.unique(x)) <= 2:
            continue
        p1, p10, p25, p75, p90, p99 = np.quantile(x, [0.01, 0.10, 0.25, 0.75, 0.90, 0.99])
        spread = p75 - p25 if p75 > p25 else p90 - p10
        std = float(x.std())
        skew = float(np.mean(((x - x.mean()) / std) ** 3)) if std > 0 else 0.0
        tail = spread > 0 and max(hi - p99, p1 - lo) > AUTO_TAIL * spread
        decades = p1 > 0 and np.log10(p99 / p1) > AUTO_DECADES
        out[j] = abs(skew) > AUTO_SKEW or tail or decades
    return out


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal distribution's quantile function at each `p` in (0, 1)."""
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf(float(v)) for v in np.ravel(p)], dtype=np.float64).reshape(np.shape(p))


# ------------------------------------------------------------------------------ training rows

TextSource = Callable[[], Iterable[np.ndarray]]


@dataclass
class TrainStats:
    """What the model stage needs of the training rows (see the module docstring)."""

    rows: int                                         # training rows
    numeric: NumericStats | None                      # schema.numeric_columns order; None: no numeric column
    categories: dict[str, collections.Counter]        # categorical column -> value (str) -> count
    texts: dict[str, TextSource]                      # text column -> re-iterable source of its training
                                                      # texts (object arrays of str), called once per pass
    class_counts: np.ndarray | None                   # int64 per class index (classification)
    target: NumericStats | None                       # regression targets (n, t); None for classification
    missing: dict[str, int]                           # column -> missing values in the training rows
    # numeric column -> value -> count, only when asked for (`stats_of(..., value_counts=True)`: the
    # numeric `most_frequent` fill values); None for a column past `value_limit` distinct values
    values: dict[str, collections.Counter | None] = field(default_factory=dict)
    value_limit: int | None = None                    # None: no limit (data held in memory)

    def merge(self, other: "TrainStats") -> "TrainStats":
        """Both chunks' statistics combined; the text sources are `self`'s (the caller's own pass
        over every chunk replaces them)."""
        if (self.numeric is None) != (other.numeric is None):
            raise ValueError("cannot merge statistics with and without numeric columns")
        if (self.target is None) != (other.target is None):
            raise ValueError("cannot merge regression and classification statistics")
        numeric = self.numeric.merge(other.numeric) if self.numeric is not None else None
        target = self.target.merge(other.target) if self.target is not None else None
        categories = {name: _added(self.categories.get(name), other.categories.get(name))
                      for name in {**self.categories, **other.categories}}
        class_counts = _add_counts(self.class_counts, other.class_counts)
        missing = dict(collections.Counter(self.missing) + collections.Counter(other.missing))
        limit = _limit(self.value_limit, other.value_limit)
        values = {name: _added_values(self.values.get(name, collections.Counter()),
                                      other.values.get(name, collections.Counter()), limit)
                  for name in {**self.values, **other.values}}
        return TrainStats(rows=self.rows + other.rows, numeric=numeric, categories=categories,
                          texts=dict(self.texts), class_counts=class_counts, target=target,
                          missing=missing, values=values, value_limit=limit)

    def filled(self, schema: FeatureSchema, fills: dict[str, Any]) -> "TrainStats":
        """The statistics after the missing values are replaced by `fills` (column -> fill value,
        `schema.imputation`): each numeric column gains `missing` copies of its fill value, each
        categorical column's fill value gains its missing count. `missing` is kept as it was (it
        says how many values were filled). A column without missing values is unchanged, bit for bit."""
        if not self.missing or not fills:
            return self
        numeric = self.numeric
        names = schema.numeric_columns
        if numeric is not None and any(self.missing.get(c) and c in fills for c in names):
            count = np.array([self.missing.get(c, 0) if c in fills else 0 for c in names], dtype=np.int64)
            value = np.array([float(fills[c]) if c in fills else np.nan for c in names], dtype=np.float64)
            # the model sees float32 inputs: the fill value as the model sees it
            value = value.astype(np.float32).astype(np.float64)
            numeric = replace(numeric.merge(NumericStats.constant(count, value)), fill=value)
        categories = dict(self.categories)
        for name, counts in self.categories.items():
            n = self.missing.get(name, 0)
            if n and name in fills and fills[name] is not None:
                counts = collections.Counter(counts)
                counts[str(fills[name])] += n
                categories[name] = counts
        values = dict(self.values)
        for name in names:
            n = self.missing.get(name, 0)
            if n and name in fills and values.get(name) is not None:
                counts = collections.Counter(values[name])
                counts[float(np.float32(fills[name]))] += n
                values[name] = counts
        return replace(self, numeric=numeric, categories=categories, values=values)

    def with_texts(self, split: Split, schema: FeatureSchema) -> "TrainStats":
        """The same statistics, their text sources reading `split` (the training rows as the model sees them)."""
        return replace(self, texts=_text_sources(split, schema))


def _added(a: collections.Counter | None, b: collections.Counter | None) -> collections.Counter:
    out = collections.Counter(a or {})
    out.update(b or {})
    return out


def _add_counts(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return a if b is None else b
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))).astype(np.int64) + np.pad(b, (0, n - len(b))).astype(np.int64)


def _limit(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else min(x for x in (a, b) if x is not None)


def _added_values(a: collections.Counter | None, b: collections.Counter | None,
                  limit: int | None) -> collections.Counter | None:
    if a is None or b is None:
        return None
    out = _added(a, b)
    return None if limit is not None and len(out) > limit else out


# ------------------------------------------------------------------------------ from a Split

def stats_of(schema: FeatureSchema, split: Split, *, value_counts: bool = False,
             value_limit: int | None = None, sample: bool = True) -> TrainStats:
    """The statistics of the rows of `split` (all of a training split in memory, or one chunk).

    Missing values are those the split still holds: NaN in the numeric matrix, None (or NaN) in a
    categorical or text column (`prepare_inputs(..., keep_missing=True)`); a split prepared with
    fill values has none. `value_counts`: also count the values of each numeric column (for a
    numeric `most_frequent` fill value), up to `value_limit` distinct values per column. `sample`:
    keep the numeric rows (a reference to the split's float32 matrix) for the quantiles
    (`NumericStats.sample`); a stream that needs no quantiles passes False.
    """
    numeric, missing = None, {}
    names = schema.numeric_columns
    values: dict[str, collections.Counter | None] = {}
    if names:
        x = np.asarray(split.inputs[NUMERIC_INPUT], dtype=np.float64).reshape(len(split), len(names))
        rows = np.asarray(split.inputs[NUMERIC_INPUT], dtype=np.float32).reshape(len(split), len(names))
        numeric = NumericStats.of(x, sample=rows if sample else None)  # the float32 matrix itself, not a copy
        gaps = len(split) - numeric.count
        missing.update({c: int(g) for c, g in zip(names, gaps) if g})
        if value_counts:
            for j, name in enumerate(names):
                column = x[:, j]
                uniq, counts = np.unique(column[~np.isnan(column)], return_counts=True)
                values[name] = None if value_limit is not None and len(uniq) > value_limit else \
                    collections.Counter(dict(zip(uniq.tolist(), counts.tolist())))
    categories: dict[str, collections.Counter] = {}
    for info in schema.other_columns:
        column = np.asarray(split.inputs[info.name], dtype=object).ravel()
        absent = pd.isna(column)
        if absent.any():
            missing[info.name] = int(absent.sum())
        if info.kind == "categorical":
            uniq, counts = np.unique(column[~absent].astype(str), return_counts=True)
            categories[info.name] = collections.Counter(dict(zip(uniq.tolist(), counts.tolist())))
    class_counts = target = None
    if split.y is not None:
        if schema.task == "regression":
            y = np.asarray(split.y, dtype=np.float64)
            target = NumericStats.of(y.reshape(len(y), -1))
        else:
            class_counts = np.bincount(np.asarray(split.y, dtype=np.int64),
                                       minlength=len(schema.class_names or [])).astype(np.int64)
    return TrainStats(rows=len(split), numeric=numeric, categories=categories, texts=_text_sources(split, schema),
                      class_counts=class_counts, target=target, missing=missing, values=values,
                      value_limit=value_limit if value_counts else None)


def _text_sources(split: Split, schema: FeatureSchema) -> dict[str, TextSource]:
    """In memory: each text column's one array (missing texts as "", the fill value of text)."""
    out: dict[str, TextSource] = {}
    for info in schema.other_columns:
        if info.kind != "text":
            continue
        column = np.asarray(split.inputs[info.name], dtype=object)
        absent = pd.isna(column)
        if absent.any():
            column = column.copy()
            column[absent] = ""
        out[info.name] = (lambda column=column: [column])
    return out


def train_stats(dataset: Dataset) -> TrainStats:
    """The statistics of a dataset's training rows: `dataset.stats`, or computed from `dataset.train`
    (a `Dataset` made by hand, without the data stage)."""
    if dataset.stats is not None:
        return dataset.stats
    return stats_of(dataset.schema, dataset.train)


# ------------------------------------------------------------------------------ fill values

def imputation_values(schema: FeatureSchema, stats: TrainStats, policy: str, where: str,
                      column: Callable[[str], np.ndarray] | None = None) -> dict[str, object]:
    """Fill value per feature column (JSON-able python values: `schema.imputation`) from the
    statistics of the training rows gathered before any value was filled
    (`prepare_inputs(..., keep_missing=True)`), for policy mean, median or most_frequent.

    Numeric columns get the policy's statistic, categorical columns their most frequent value
    under any policy (ties: the first in sort order), text columns the empty string. `mean` and
    the most frequent category come from `stats`; the most frequent number from `stats.values`
    (`stats_of(..., value_counts=True)`); `median` from `column(name)`, a numeric column's training
    values (data in memory), else from the sample of the rows `stats` keep (a stream's:
    `stats_of(..., sample=True)`; every row while there are at most `sample_limit` of them, else a
    seeded uniform sample of that many). Either way the median of the values as the model sees
    them (float32), so both paths give the same fill value from the same rows.
    """
    position = {name: j for j, name in enumerate(schema.numeric_columns)}
    fills: dict[str, object] = {}
    for info in schema.columns:
        if info.kind == "text":
            fills[info.name] = ""
        elif info.kind == "numeric":
            j = position[info.name]
            if stats.numeric is None or stats.numeric.count[j] == 0:
                raise DataError(f"{where}: column '{info.name}' has no values in the training rows, so no "
                                f"{policy} can be computed; drop it (data.drop) or fix the data")
            if policy == "mean":
                fills[info.name] = float(stats.numeric.mean[j])
            elif policy == "median":
                fills[info.name] = _median(column(info.name) if column is not None else _sampled(stats, j))
            else:
                fills[info.name] = _most_frequent_number(info.name, stats, where)
        else:
            counts = stats.categories.get(info.name)
            if not counts:
                raise DataError(f"{where}: column '{info.name}' has no values in the training rows, so no "
                                "most frequent value can be computed; drop it (data.drop) or fix the data")
            fills[info.name] = _most_frequent(counts)
    return fills


def _most_frequent(counts: collections.Counter):
    """The value counted most often; ties: the first in sort order (reproducible)."""
    top = max(counts.values())
    return min(v for v, c in counts.items() if c == top)


def _most_frequent_number(name: str, stats: TrainStats, where: str) -> float:
    if name not in stats.values:
        raise ValueError(f"the statistics hold no value counts of '{name}': gather them with "
                         "stats_of(..., value_counts=True) for preprocessing.missing: most_frequent")
    counts = stats.values[name]
    if counts is None:
        raise DataError(f"{where}: column '{name}' has more than {stats.value_limit:,} distinct values in the "
                        "training rows, too many to find the most frequent one while streaming; set "
                        "preprocessing.missing: mean or drop_rows, or data.stream: false")
    return float(_most_frequent(counts))


def _median(values) -> float:
    """The median of a numeric column's present values as the model sees them (float32)."""
    values = np.asarray(values, dtype=np.float32).astype(np.float64)
    return float(np.median(values[~np.isnan(values)]))


def _sampled(stats: TrainStats, j: int) -> np.ndarray:
    """Numeric column `j` of the sample of training rows `stats` keep (NaN: missing)."""
    if stats.numeric.sample is None:
        raise ValueError("the statistics hold no sample of the rows: gather them with stats_of(..., sample=True) "
                         "for preprocessing.missing: median")
    return stats.numeric.sample[:, j]
