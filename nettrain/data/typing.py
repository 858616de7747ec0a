"""What kind of feature each column of a training table is: the one rule `init`, `fit` and `validate
--build` follow, so that the config init writes and the columns fit types agree.

`column_type(series)` looks at a column as nettrain's readers give it (`data.cells`: numbers,
booleans, text with None where a cell is missing) and returns a `ColumnType`: its kind and a
one-line reason. The kinds and their rules, tried in this order:

- `empty`: every value is missing. Left out.
- `sparse`: fewer than `FEW_VALUES` (10) present values, in fewer than a tenth of the rows (2 values
  in 161 rows). Left out: too few to learn from, and a split or a fold may hold none of them, where
  no fill value can be learned.
- `boolean`: a boolean column, text of true/false (any case), or text of exactly two words yes/no
  or y/n (any case). A number 0/1 for the model (yes/no through `derived_columns`).
- `numeric`: numbers, also written as text, or for people ("$1,234.50", "12.5%":
  `columns.written_number`), or with "?", "-", "unknown", "#DIV/0!" ... for an unknown value
  (`columns.UNKNOWN_MARKS`: then missing). Whole numbers get a second look, which only `init`
  acts on (`ColumnType.offer`; fit never changes the kind of a column of numbers on its own):
  `INDEX_MIN_ROWS` or more values, all different, none negative, covering at least half of the
  whole numbers between their smallest and largest value, and starting near 0 (the smallest is at
  most a tenth of the largest): a row index, offered as `identifier`; 3 to 20 distinct values
  (`CODE_VALUES`), the smallest at least 1, in a column whose name does not say it counts
  (`n_`, `num`, `number`, `count`, `#`, `qty`, `total`): codes (an area code, a month), offered as
  `categorical`. Counts usually start at 0 (children 0..5) and stay numbers; the rule is a
  heuristic, which init's comment says.
- `date`: text of which `DATE_SHARE` (95%) or more of the present values parse with one format of
  `DATE_FORMATS` (ISO dates and timestamps, 01/31/2017, 31/01/2017, 31.01.2017, ...), or a
  datetime column (Parquet). Expanded into numbers: year, month, day of month, day of week (Monday
  0) and, when the values carry a time of day, the hour (`DATE_PARTS`, `derived_columns`).
- `text`: long free text (a median of more than 30 characters and at least 4 words, and more than
  20 distinct values: fewer are categories, however long): tokenized.
- `identifier`: text whose values are (nearly) all different: at least `ID_SHARE` (90%) distinct
  among `ID_MIN_ROWS` (50) or more present values, or every value different among
  `INDEX_MIN_ROWS` (20) or more. Left out (it teaches the model nothing).
- `categorical`: any other text; more than `EMBED_OVER` (50) distinct values get an embedding of
  `embedding_size(n)` (at most 16) columns instead of a one-hot vector per value.

Derived columns: a date (or a yes/no column) reaches the model as numeric columns named
`<column>.<part>` (`when.year`, `when.hour`, `smoker.yes`), each a `ColumnInfo` of kind numeric
whose `origin` says how it is made from the raw column; `derived_values` makes them from any
table (fit's rows, a stream's chunk, evaluate's and predict's files), in `prepare_inputs`.

numpy and pandas only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nettrain.data.cells import NA_TEXT

KINDS = ("numeric", "categorical", "text", "date", "boolean", "identifier", "empty", "sparse")
LEFT_OUT = ("identifier", "empty", "sparse")   # kinds that are not features
FEW_VALUES = 10            # fewer present values than this, in under a tenth of the rows: sparse

DATE_SHARE = 0.95          # share of the present values that must parse with one date format
ID_SHARE = 0.9             # distinct / present values of an identifier ...
ID_MIN_ROWS = 50           # ... among at least this many present values
INDEX_MIN_ROWS = 20        # every value different among at least this many: an identifier (or a row index)
EMBED_OVER = 50            # a categorical column with more distinct values gets an embedding
TEXT_NUMBERS = "numbers written as text"   # the reason of a column of plain numbers held as text
EMBED_MAX_DIM = 16
CODE_VALUES = (3, 20)      # whole numbers with this many distinct values: codes init offers as categorical
TEXT_CHARS, TEXT_WORDS = 30, 4   # free text: median characters above, median words at least ...
TEXT_MIN_VALUES = 20             # ... and more distinct values than this (fewer are categories, however long)

# The formats a date column may be written in, tried in this order (the first of equal success
# wins: 01/02/2017 is January 2 unless a day above 12 says otherwise).
DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S%z", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%y",
    "%d/%m/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%y",
    "%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%y", "%d-%m-%Y", "%d-%m-%Y %H:%M",
)
DATE_PARTS = ("year", "month", "day", "weekday")     # + "hour" when the values carry a time
FORMATS_SHOWN = "YYYY-MM-DD (with hh:mm[:ss], T, Z or +hh:mm), YYYY/MM/DD, MM/DD/YYYY, DD/MM/YYYY, DD.MM.YYYY, DD-MM-YYYY"
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\S.*)?$")
_SAMPLE = 5000             # values a format is tried on before the whole column is
_YES_NO = (("yes", "no"), ("y", "n"))
# a name that says its numbers count something (n_rooms, #rooms, number_of_calls, total_calls, qty)
_COUNT_NAME = re.compile(r"(^n_|^num|number|count|#|qty|quantity|total)", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnType:
    """A column's kind and why (one line), and what the kind needs to be encoded."""

    kind: str
    reason: str
    embedding_dim: int | None = None      # categorical: an embedding this wide instead of one-hot
    date_format: str | None = None        # date: the format its text parses with (None: a datetime column)
    time: bool = False                    # date: the values carry a time of day (an hour part)
    words: tuple[str, str] | None = None  # boolean written as yes/no words: (true word, false word)
    offer: str | None = None              # numbers init offers as another kind: categorical, identifier

    @property
    def feature(self) -> bool:
        return self.kind not in LEFT_OUT


def column_type(series: pd.Series, name: str = "", *, offers: bool = True, sparse: bool = True) -> ColumnType:
    """The kind of one column (see the module docstring); `name` tells counts from codes. Without
    `offers` a column of numbers is not looked at further (fit: what init offers does not apply);
    without `sparse` a column of few values is typed by its values (one data.features names)."""
    rows = len(series)

    def few(present: int) -> ColumnType | None:  # `sparse` (see the module docstring), from the count made below
        if sparse and 0 < present < FEW_VALUES and present < 0.1 * rows:
            return ColumnType("sparse", f"values in only {present} of {rows:,} rows: too few to learn from")
        return None

    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        present = series.dropna()
        if len(present) == 0:
            return ColumnType("empty", "every value is missing")
        if (left := few(len(present))) is not None:
            return left
        stamps = pd.DatetimeIndex(present)
        time = bool((stamps != stamps.normalize()).any())
        return ColumnType("date", "a date/time column" + (" (with times)" if time else ""), time=time)
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnType("boolean", "true/false: 1/0")
    categories = isinstance(dtype, pd.CategoricalDtype)  # a reader's categories stay categories
    if categories:
        series = series.astype(object)
    elif pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        return few(len(values)) or _numbers(values, name, offers=offers)
    present = present_values(series)
    if len(present) == 0:
        return ColumnType("empty", "every value is missing")
    if (left := few(len(present))) is not None:
        return left
    if not categories and _is_bool(present.iloc[0]) and present.map(_is_bool).all():  # (one value first)
        return ColumnType("boolean", "true/false: 1/0")
    from nettrain.data.columns import to_numbers

    numbers, bad = to_numbers(present) if not categories else (None, np.ones(1, dtype=bool))
    if not bad.any():
        words = present.astype(str).str.strip().str.lower()
        if words.isin(["true", "false"]).all():
            return ColumnType("boolean", "true/false: 1/0")
        return _numbers(numbers[~np.isnan(numbers)], name, written=_written(present), offers=offers)
    text = present.astype(str).str.strip()
    words = yes_no(text)
    if words is not None:
        return ColumnType("boolean", f"{words[0]}/{words[1]}: 1/0", words=words)
    fmt, share = date_format(text)
    if fmt is not None:
        time = "%H" in fmt
        return ColumnType("date", f"dates written {show_format(fmt)} ({share:.0%} of the values)",
                          date_format=fmt, time=time)
    distinct, rows = text.nunique(), len(text)
    chars, words_n = text.str.len().median(), text.str.count(" ").median() + 1
    if chars > TEXT_CHARS and words_n >= TEXT_WORDS and distinct > TEXT_MIN_VALUES:
        return ColumnType("text", f"long free text: median {chars:.0f} characters, {words_n:.0f} words")
    if (rows >= ID_MIN_ROWS and distinct >= ID_SHARE * rows) or (rows >= INDEX_MIN_ROWS and distinct == rows):
        return ColumnType("identifier", f"{distinct} distinct values in {rows} rows: an identifier, it teaches the "
                          "model nothing")
    if distinct > EMBED_OVER:
        dim = embedding_size(distinct)
        return ColumnType("categorical", f"text values, {distinct} distinct: an embedding of {dim} instead of "
                          "one-hot", embedding_dim=dim)
    return ColumnType("categorical", f"text values, {distinct} distinct")


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def embedding_size(n: int) -> int:
    """Width of the embedding of a categorical column with `n` values: 1.6 n^0.56 (fast.ai's rule of
    thumb), at least 2 and at most `EMBED_MAX_DIM`."""
    return int(min(EMBED_MAX_DIM, max(2, round(1.6 * n ** 0.56))))


def present_values(series: pd.Series) -> pd.Series:
    """The present values of a column (not missing, not blank text, not a missing-value word)."""
    values = series.dropna()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        text = values.astype(str).str.strip()
        values = values[(text != "") & ~text.isin(NA_TEXT)]
    return values.astype(object)


def _written(present: pd.Series) -> str:
    """How a column of text that `columns.to_numbers` reads as numbers writes them."""
    from nettrain.data.columns import CURRENCY, unknown_mark

    text = present.astype(str).str.strip()
    signs = [what for what, pattern in (("currency signs", f"[{CURRENCY}]"), ("thousands separators", ","),
                                        ("percent signs", "%")) if text.str.contains(pattern).any()]
    how = f"numbers written with {' and '.join(signs)}" if signs else TEXT_NUMBERS
    marks = sorted(set(text[text.map(unknown_mark).astype(bool)]))
    if marks:
        how += f", {' and '.join(repr(m) for m in marks)} for unknown values (missing)"
    return how


def _numbers(values: np.ndarray, name: str, written: str | None = None, offers: bool = True) -> ColumnType:
    """A column of numbers (present values): numeric, with what init may offer for whole numbers;
    `written`: how a column of text writes them (`_written`)."""
    how = written or "numbers"
    if len(values) == 0:
        return ColumnType("empty", "every value is missing")
    if not offers:
        return ColumnType("numeric", how)
    distinct = np.unique(values)
    if len(distinct) <= 2 and set(distinct.tolist()) <= {0.0, 1.0}:
        return ColumnType("numeric", "a 0/1 flag")
    with np.errstate(invalid="ignore"):  # (inf: not a whole number, no warning)
        whole = bool(np.all(np.mod(values, 1) == 0))
    if not whole:
        return ColumnType("numeric", how)
    lo, hi, n = float(distinct[0]), float(distinct[-1]), len(values)
    if n >= INDEX_MIN_ROWS and len(distinct) == n and lo >= 0 and hi - lo + 1 <= 2 * n and lo <= 0.1 * hi:
        return ColumnType("numeric", f"whole numbers {lo:.0f}..{hi:.0f}, every one different: a row index?",
                          offer="identifier")
    low, high = CODE_VALUES
    if low <= len(distinct) <= high and lo >= 1 and not _COUNT_NAME.search(name):
        return ColumnType("numeric", f"{len(distinct)} distinct whole numbers {lo:.0f}..{hi:.0f}: integer codes (like "
                          "a month or an area code)?", offer="categorical")
    return ColumnType("numeric", how)


def yes_no(text: pd.Series) -> tuple[str, str] | None:
    """(true word, false word) when the values are exactly the two words yes/no or y/n (any case)."""
    words = set(text.str.lower().unique().tolist())
    for pair in _YES_NO:
        if words == set(pair):
            return pair
    return None


def date_format(text: pd.Series) -> tuple[str | None, float]:
    """(the format of `DATE_FORMATS` the most values of `text` parse with, that share) when at least
    `DATE_SHARE` of them do, else (None, the best share)."""
    if len(text) == 0:
        return None, 0.0
    sample = text if len(text) <= _SAMPLE else text.iloc[np.linspace(0, len(text) - 1, _SAMPLE).astype(int)]
    if sample.str.match(_DATE_LIKE).mean() < DATE_SHARE:
        return None, 0.0
    best, share = None, 0.0
    for fmt in DATE_FORMATS:
        parsed = _parse(sample, fmt).notna().mean()
        if parsed > share:
            best, share = fmt, parsed
    if best is None or share < DATE_SHARE:
        return None, share
    if len(sample) < len(text):
        share = _parse(text, best).notna().mean()
    return (best, share) if share >= DATE_SHARE else (None, share)


def _parse(text: pd.Series, fmt: str | None) -> pd.Series:
    """`text` as timestamps (naive; with an offset: in UTC), NaT where a value does not parse."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt is None:
            stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        else:
            stamps = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
    if getattr(stamps.dtype, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps


def show_format(fmt: str) -> str:
    """A date format as a reader knows it: YYYY-MM-DD hh:mm."""
    for code, word in (("%Y", "YYYY"), ("%y", "YY"), ("%m", "MM"), ("%d", "DD"), ("%H", "hh"), ("%M", "mm"),
                       ("%S", "ss"), ("%f", "ffffff"), ("%z", "+hh:mm")):
        fmt = fmt.replace(code, word)
    return fmt


# ------------------------------------------------------------------------------ derived columns

def date_parts(ct: ColumnType) -> list[str]:
    return list(DATE_PARTS) + (["hour"] if ct.time else [])


def derived_origins(name: str, ct: ColumnType) -> dict[str, dict[str, Any]]:
    """{derived column name: origin} of a date or yes/no column (empty for any other kind): what
    `ColumnInfo.origin` keeps so that `derived_values` can make the column from the raw one."""
    if ct.kind == "date":
        return {f"{name}.{part}": {"column": name, "type": "date", "format": ct.date_format, "part": part}
                for part in date_parts(ct)}
    if ct.kind == "boolean" and ct.words is not None:
        yes, no = ct.words
        return {f"{name}.{yes}": {"column": name, "type": "boolean", "true": yes, "false": no}}
    return {}


def derived_values(series: pd.Series, origins: dict[str, dict[str, Any]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({derived column: float64 values (NaN where missing)}, mask of the present values that are not
    what the column holds: a word other than yes/no) for the derived columns of one raw column,
    all made from that column (one parse of its dates)."""
    first = next(iter(origins.values()))
    n = len(series)
    if first["type"] == "date":
        stamps = _stamps(series, first.get("format"))
        parts = {"year": stamps.dt.year, "month": stamps.dt.month, "day": stamps.dt.day,
                 "weekday": stamps.dt.day_of_week, "hour": stamps.dt.hour}
        out = {name: parts[o["part"]].to_numpy(dtype=np.float64, na_value=np.nan) for name, o in origins.items()}
        return out, np.zeros(n, dtype=bool)
    text = series.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                     else str(v).strip().lower())
    values = np.full(n, np.nan)
    yes, no = first["true"], first["false"]
    words = text.to_numpy(dtype=object)
    values[words == yes] = 1.0
    values[words == no] = 0.0
    missing = np.array([w is None or w != w or w == "" or w in _NA_LOWER for w in words], dtype=bool)
    bad = np.isnan(values) & ~missing
    return {name: values for name in origins}, bad


_NA_LOWER = {t.lower() for t in NA_TEXT}


def _stamps(series: pd.Series, fmt: str | None) -> pd.Series:
    """A column as naive timestamps (NaT where missing or not a date of format `fmt`)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series
        if getattr(stamps.dtype, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        return stamps
    obj = series.astype(object)
    if obj.map(lambda v: isinstance(v, pd.Timestamp)).any():  # timestamps held as objects (JSON, mixed)
        return _parse(obj.map(lambda v: v.isoformat() if isinstance(v, pd.Timestamp) else v), None)
    text = obj.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v).strip())
    return _parse(text, fmt)
