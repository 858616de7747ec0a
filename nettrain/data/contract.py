"""The input contract of a run: `signature.json`, and new rows checked against it (drift).

`signature_of(schema, stats)` describes the training rows from the statistics the model was built
from (`data.stats.TrainStats`, the same numbers in memory and for a stream's first pass: no second
set of statistics): per data column its kind (numeric, categorical, text, date, boolean), its cell
type as read (`data.cells`: number, bool, str), its missing values, for a numeric column min, max,
mean, std and the 1st / 99th percentiles (null when a stream kept no sample of its rows), for a
categorical one the categories seen (the `MAX_CATEGORIES` most frequent, with their count), for a
date or yes/no column the ranges of the numeric parts the model reads.

`check(signature, frame, header)` is the one pure check of new rows (a file's raw rows, or one chunk
of them) against it; `Watch` adds the reports of a file's chunks up (bounded memory: counts, and at
most `EXAMPLES` unseen values per column). What counts as drift, per column:

- a column the model reads missing from the data; a column it neither reads nor knows (not a
  feature, the target or the id column): extra;
- a type change: a column whose training cells were numbers holding text that is no number;
- unseen categories: values of a categorical column the training rows never held (not checked when
  the training rows held more than `MAX_CATEGORIES` categories: the signature lists only those);
- values beyond the training range: below min - m * (max - min) or above max + m * (max - min),
  m = `RANGE_MARGIN` (10 % of the range on either side; a constant training column: any other value);
- a jump in missing values: the share of missing cells more than `MISSING_JUMP` (10 percentage
  points) above the training rows' share.

pandas/numpy only, no TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from nettrain.data.columns import as_strings, to_numbers
from nettrain.data.stats import TrainStats
from nettrain.data.types import FeatureSchema
from nettrain.errors import DataError, UsageError
from nettrain.store.rundir import SIGNATURE  # in the run directory, beside features.json
from nettrain.words import reason, show_name

FORMAT = 1
RANGE_MARGIN = 0.10             # share of the training range a value may lie beyond min or max
MISSING_JUMP = 0.10             # missing share above the training rows' share that counts as drift
MAX_CATEGORIES = 1_000          # categories listed per column in signature.json
EXAMPLES = 3                    # unseen values kept per column
SHOWN_COLUMNS = 10              # drifting columns listed in the summary (all of them in --json)
QUANTILES = (0.01, 0.99)


# ------------------------------------------------------------------------------ signature.json

def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def signature_of(schema: FeatureSchema, stats: TrainStats, ignored: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON-able signature of the training rows that `stats` describes (see the module docstring).
    `ignored`: columns the training data held that the model does not read (`data.drop`, the
    columns `data.features` left out): no extra column when new data holds them too."""
    rows = int(stats.rows)
    numeric = schema.numeric_columns
    quantiles: list[np.ndarray] | None = None
    if stats.numeric is not None and stats.numeric.sample is not None:
        quantiles = stats.numeric.quantiles(np.asarray(QUANTILES))

    def rate(n: int) -> float:
        return round(n / rows, 6) if rows else 0.0

    position = {name: j for j, name in enumerate(numeric)}
    n = stats.numeric
    std = n.std if n is not None else None  # (a property computed for every column: once, not per column)

    def ranges(name: str) -> dict[str, Any]:
        j = position[name]
        q = quantiles[j] if quantiles is not None and len(quantiles[j]) else None
        return {"min": _num(n.min[j]), "max": _num(n.max[j]), "mean": _num(n.mean[j]), "std": _num(std[j]),
                "p01": _num(q[0]) if q is not None else None, "p99": _num(q[1]) if q is not None else None}

    columns: list[dict[str, Any]] = []
    raw: dict[str, dict[str, Any]] = {}
    for info in schema.columns:
        if info.origin is not None:
            name = info.origin["column"]
            entry = raw.get(name)
            if entry is None:
                entry = raw[name] = {"name": name, "kind": info.origin.get("type", "date"),
                                     "dtype": schema.cell_types.get(name), "missing": 0, "parts": []}
                columns.append(entry)
            gaps = int(stats.missing.get(info.name, 0))
            entry["missing"] = max(entry["missing"], gaps)   # a derived part's gaps count under its column
            entry["parts"].append({"name": info.name, "origin": dict(info.origin), **ranges(info.name)})
            continue
        entry = {"name": info.name, "kind": info.kind, "dtype": schema.cell_types.get(info.name),
                 "missing": int(stats.missing.get(info.name, 0))}
        if info.kind == "numeric":
            entry.update(ranges(info.name))
        elif info.kind == "categorical":
            counts = stats.categories.get(info.name) or {}
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            entry["categories"] = [value for value, _ in ranked[:MAX_CATEGORIES]]
            entry["category_count"] = len(ranked)
            entry["categories_complete"] = len(ranked) <= MAX_CATEGORIES
        columns.append(entry)
        raw[info.name] = entry
    for entry in columns:
        entry["missing_rate"] = rate(entry["missing"])
    used = {c["name"] for c in columns} | {schema.target, schema.id_column}
    return {"format": FORMAT, "task": schema.task, "target": schema.target, "id_column": schema.id_column,
            "classes": schema.class_names, "rows": rows,
            "ignored": [n for n in dict.fromkeys(str(n) for n in ignored) if n not in used],
            "rules": {"range_margin": RANGE_MARGIN, "missing_jump": MISSING_JUMP, "max_categories": MAX_CATEGORIES},
            "columns": columns}


def training_header(path: str | Path | None) -> list[str]:
    """The column names of a training file read in chunks (CSV/TSV/Parquet), without its rows; empty
    for anything else (a bundled set, a generator) or a file that cannot be read now."""
    from nettrain.data import chunks

    if not isinstance(path, (str, Path)) or not chunks.streamable(path):
        return []
    try:
        return [str(n) for n in chunks.header(path)]
    except (OSError, ValueError, UsageError):
        return []


def read_signature(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The run's signature.json, or None when it has none (a run written before it existed, an .h5
    file outside a run). A damaged file is a UsageError naming it."""
    if run_dir is None:
        return None
    path = Path(run_dir) / SIGNATURE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: cannot read the input signature ({reason(e)}); remove the file to use the run "
                         "without the input check") from None
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list) or \
            not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in data["columns"]):
        raise UsageError(f"{path}: not an input signature (no list of named columns); remove the file to use the "
                         "run without the input check")
    return data


# ------------------------------------------------------------------------------ the check

@dataclass
class ColumnDrift:
    """What the new rows of one column (or one derived part, `when.year`) did that the training rows did not."""

    name: str
    kind: str
    rows: int = 0
    missing: int = 0
    train_missing_rate: float | None = None   # None: a part whose gaps count under its column
    absent: bool = False                      # a column the model reads, missing from the data
    extra: bool = False                       # a column the model neither reads nor knows
    type_change: int = 0                      # text cells in a column whose training cells were numbers
    type_examples: list[str] = field(default_factory=list)
    unseen: int = 0                           # cells holding a category the training rows never held
    unseen_examples: list[str] = field(default_factory=list)
    below: int = 0
    above: int = 0
    low: float | None = None                  # the range allowed (the training range widened by RANGE_MARGIN)
    high: float | None = None

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def missing_jump(self) -> bool:
        return self.train_missing_rate is not None and self.rows > 0 and \
            self.missing_rate > self.train_missing_rate + MISSING_JUMP

    @property
    def drifting(self) -> bool:
        return bool(self.absent or self.extra or self.type_change or self.unseen or self.below or self.above
                    or self.missing_jump)

    def add(self, other: "ColumnDrift") -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.absent = self.absent or other.absent
        self.extra = self.extra or other.extra
        self.type_change += other.type_change
        self.unseen += other.unseen
        self.below += other.below
        self.above += other.above
        for mine, theirs in ((self.type_examples, other.type_examples), (self.unseen_examples, other.unseen_examples)):
            mine.extend(v for v in theirs if v not in mine and len(mine) < EXAMPLES)

    def issues(self) -> list[str]:
        """The drift of this column in words (empty when there is none)."""
        out = []
        if self.absent:
            out.append("missing column (the model reads it)")
        if self.extra:
            out.append("extra column (the model does not use it)")
        if self.type_change:
            out.append(f"type change: {self.type_change} value(s) are no numbers, the training values were "
                       f"(e.g. {_examples(self.type_examples)})")
        if self.unseen:
            out.append(f"{self.unseen} value(s) in categories the training rows never held "
                       f"(e.g. {_examples(self.unseen_examples)})")
        if self.below or self.above:
            side = [f"{n} {w}" for n, w in ((self.below, "below"), (self.above, "above")) if n]
            out.append(f"{' and '.join(side)} the training range (allowed {_fmt(self.low)} to {_fmt(self.high)})")
        if self.missing_jump:
            out.append(f"missing in {self.missing_rate:.1%} of the rows (training rows: {self.train_missing_rate:.1%})")
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing": self.missing,
                               "missing_rate": round(self.missing_rate, 6)}
        if self.train_missing_rate is not None:
            out["train_missing_rate"] = self.train_missing_rate
        for key in ("absent", "extra"):
            if getattr(self, key):
                out[key] = True
        if self.type_change:
            out.update(type_change=self.type_change, type_examples=list(self.type_examples))
        if self.unseen:
            out.update(unseen=self.unseen, unseen_examples=list(self.unseen_examples))
        if self.below or self.above:
            out.update(below=self.below, above=self.above, low=self.low, high=self.high)
        out["missing_jump"] = self.missing_jump
        out["issues"] = self.issues()
        return out


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.6g}"


def _examples(values: list[str]) -> str:
    return ", ".join(repr(show_name(v, 30)) for v in values)


@dataclass
class DriftReport:
    """The check of some rows against a signature: per column (and derived part) what drifted."""

    rows: int = 0
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    source: str | None = None                 # the signature file, for messages

    def add(self, other: "DriftReport") -> None:
        self.rows += other.rows
        for name, col in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = ColumnDrift(name=col.name, kind=col.kind,
                                                 train_missing_rate=col.train_missing_rate, low=col.low, high=col.high)
                mine = self.columns[name]
            mine.add(col)

    @property
    def drifting(self) -> list[ColumnDrift]:
        return [c for c in self.columns.values() if c.drifting]

    @property
    def clean(self) -> bool:
        return not self.drifting

    def counts(self) -> dict[str, int]:
        """How many columns show each kind of drift."""
        cols = self.columns.values()
        return {"missing_columns": sum(c.absent for c in cols), "extra_columns": sum(c.extra for c in cols),
                "type_changes": sum(bool(c.type_change) for c in cols),
                "unseen_categories": sum(bool(c.unseen) for c in cols),
                "out_of_range": sum(bool(c.below or c.above) for c in cols),
                "missing_jumps": sum(c.missing_jump for c in cols)}

    def to_dict(self) -> dict[str, Any]:
        """What `--json` records: whether the rows drift, counts per kind, and each drifting column."""
        return {"checked": True, "signature": self.source, "rows": self.rows, "drift": not self.clean,
                "counts": self.counts(), "columns": {c.name: c.to_dict() for c in self.drifting}}

    def lines(self, where: str = "the data", limit: int = SHOWN_COLUMNS) -> list[str]:
        """The summary for stderr: nothing when the rows match; else a heading and one line per drifting
        column (at most `limit`, then how many more)."""
        drifting = self.drifting
        if not drifting:
            return []
        out = [f"input drift: {where}: {len(drifting)} column(s) differ from the training rows "
               f"({self.rows} rows checked against {self.source or SIGNATURE}):"]
        for col in drifting[:limit]:
            out.append(f"  {show_name(col.name)}: {'; '.join(col.issues())}")
        if len(drifting) > limit:
            out.append(f"  ... and {len(drifting) - limit} more column(s) (all of them in --json)")
        return out


def check(signature: dict[str, Any], frame: pd.DataFrame, header: Iterable[str] | None = None) -> DriftReport:
    """The drift of `frame`'s rows (raw cells, as read for the model) from the training rows `signature`
    describes; `header`: the data's columns (default: the frame's), for missing and extra columns.
    Pure: reads its arguments only."""
    names = [str(c) for c in (frame.columns if header is None else header)]
    have = set(names)
    n = len(frame)
    report = DriftReport(rows=n)
    known = {signature.get("target"), signature.get("id_column"), *(signature.get("ignored") or [])}
    for entry in signature.get("columns", []):
        name, kind = entry["name"], entry.get("kind", "numeric")
        col = ColumnDrift(name=name, kind=kind, train_missing_rate=entry.get("missing_rate"))
        report.columns[name] = col
        known.add(name)
        if name not in have:
            col.absent = True
            continue
        if name not in frame.columns:
            continue
        col.rows = n
        series = frame[name]
        if "parts" in entry:
            _check_parts(report, entry, series)
        elif kind == "numeric":
            values, bad = to_numbers(series)
            col.missing = int((np.isnan(values) & ~bad).sum())
            _type_change(col, series, bad)
            _range(col, entry, values)
        else:
            values = as_strings(series)
            absent = pd.isna(values)
            col.missing = int(absent.sum())
            if kind == "categorical":
                if entry.get("dtype") == "number":
                    _type_change(col, series, to_numbers(series)[1])
                if entry.get("categories_complete", True) and "categories" in entry:
                    present = pd.Series(values[~absent], dtype=object)
                    new = present[~present.isin(set(entry["categories"]))]
                    col.unseen = len(new)
                    col.unseen_examples = list(dict.fromkeys(new.head(1000)))[:EXAMPLES]
    for name in names:
        if name not in known:
            report.columns[name] = ColumnDrift(name=name, kind="extra", rows=n, extra=True)
    return report


def _type_change(col: ColumnDrift, series: pd.Series, bad: np.ndarray) -> None:
    if bad.any():
        col.type_change = int(bad.sum())
        col.type_examples = list(dict.fromkeys(str(v) for v in series[bad].head(50)))[:EXAMPLES]


def _range(col: ColumnDrift, entry: dict[str, Any], values: np.ndarray) -> None:
    lo, hi = entry.get("min"), entry.get("max")
    if lo is None or hi is None:
        return
    margin = RANGE_MARGIN * (hi - lo)
    col.low, col.high = lo - margin, hi + margin
    present = values[~np.isnan(values)]
    col.below = int((present < col.low).sum())
    col.above = int((present > col.high).sum())


def _check_parts(report: DriftReport, entry: dict[str, Any], series: pd.Series) -> None:
    """A date or yes/no column: its gaps (a value that is no date counts as missing, as fit counts it)
    under its name, the range of each numeric part under the part's name."""
    from nettrain.data.typing import derived_values

    parts = entry["parts"]
    origins = {p["name"]: p["origin"] for p in parts if isinstance(p.get("origin"), dict)}
    col = report.columns[entry["name"]]
    if not origins:
        col.missing = int(series.isna().sum())
        return
    values, _ = derived_values(series, origins)   # a word that is no yes/no: the model's own error later
    col.missing = max((int(np.isnan(v).sum()) for v in values.values()), default=0)
    for part in parts:
        if part["name"] not in values:
            continue
        piece = ColumnDrift(name=part["name"], kind=f"{entry.get('kind')} part", rows=len(series))
        _range(piece, part, values[part["name"]])
        report.columns[part["name"]] = piece


class Watch:
    """A file's chunks checked one by one against a signature and added up (`report`): what
    `data.rows.file_rows(..., watch=)` calls with the header and each chunk's raw rows. After
    `close()` (the first pass over the rows is done) further chunks are not counted again."""

    def __init__(self, signature: dict[str, Any], source: str | None = None):
        self.signature = signature
        self.report = DriftReport(source=source)
        self._header: list[str] | None = None
        self.closed = False

    def header(self, names: Iterable[str]) -> None:
        if not self.closed and self._header is None:
            self._header = [str(n) for n in names]

    def add(self, frame: pd.DataFrame) -> None:
        if self.closed:
            return
        header = self._header if self._header is not None else [str(c) for c in frame.columns]
        self.report.add(check(self.signature, frame, header))

    def close(self) -> DriftReport:
        self.closed = True
        return self.report


def no_signature_note(run_dir: Path | None) -> str:
    """The one line said when a model has no signature to check its input against."""
    where = f"{run_dir} has no {SIGNATURE}" if run_dir is not None else "the model file belongs to no run"
    return f"note: {where} (a run written before it existed?): the input is not checked for drift"


def watch_for(run_dir: Path | None) -> Watch | None:
    """A `Watch` of new rows against the run's signature.json; None when there is none to check against
    (`conclude` then says so, once the command has done its work: an error comes alone)."""
    signature = read_signature(run_dir)
    if signature is None:
        return None
    return Watch(signature, source=str(Path(run_dir) / SIGNATURE))


_NOT_GIVEN = object()


def conclude(watch: Watch | None, where: str, *, strict: bool, notify=None,
             what: str = "predicted", run_dir=_NOT_GIVEN) -> DriftReport | None:
    """The check of every row is done: the summary through `notify` (nothing when the rows match), and
    with `strict` a DataError (exit 2) when they drift, saying that nothing was `what`. Without a watch
    (no signature.json): the note that the rows were not checked, when `run_dir` (None: a model file
    outside any run) is given."""
    if watch is None:
        if notify is not None and run_dir is not _NOT_GIVEN:
            notify(no_signature_note(run_dir))
        return None
    report = watch.close()
    if notify is not None:
        for line in report.lines(where):
            notify(line)
    if strict and not report.clean:
        n = len(report.drifting)
        raise DataError(f"{where}: the rows differ from the training rows in {n} column(s) (see above) and "
                        f"--strict is set: nothing was {what}")
    return report


def with_missing_of(signature: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`signature` with the missing counts and rates of `other`'s columns of the same name (a k-fold
    fold's signature, whose training rows were counted after their gaps were filled, takes those of
    the k-fold run's training rows)."""
    theirs = {c["name"]: c for c in other.get("columns", [])}
    columns = []
    for entry in signature.get("columns", []):
        source = theirs.get(entry["name"])
        if source is not None and "missing_rate" in source:
            entry = {**entry, "missing": source.get("missing", 0), "missing_rate": source["missing_rate"]}
        columns.append(entry)
    return {**signature, "columns": columns}


__all__ = ["SIGNATURE", "signature_of", "read_signature", "check", "Watch", "DriftReport", "ColumnDrift",
           "no_signature_note", "watch_for", "conclude", "with_missing_of"]
