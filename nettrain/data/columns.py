"""Which columns are features, target and id, and what kind each feature is.

A column the config does not type (`data.columns`) and the source does not imply (keras:imdb,
keras:reuters) is typed by `data.typing.column_type`, the rule `init` follows too: numbers and
booleans are numeric; dates are expanded into numeric parts (`when.year`, ...); yes/no columns
become 1/0 (`smoker.yes`); long free text is tokenized; text whose values are (nearly) all
different, and columns with no value, are left out with a note; other text is categorical, with
an embedding instead of one-hot when it has more than 50 values (under `preprocessing.categorical:
one_hot`). Whole numbers stay numeric whatever init offers for them (codes, a row index): fit never
changes the kind of a column of numbers on its own. Columns listed in `data.features` are never
left out.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from nettrain.data import typing as T
from nettrain.data.kinds import config_name_problem
from nettrain.data.types import ColumnInfo
from nettrain.errors import DataError
from nettrain.words import did_you_mean, list_names, show_name

TEXT_DEFAULTS = {"max_tokens": 10000, "output_mode": "multi_hot"}
_BOOL_WORDS = {"true": 1.0, "false": 0.0}
# Numbers written for people: a currency sign before or after, thousands separated by commas, a
# percent sign (the value it means: 12.5% is 0.125), a sign before or after the currency sign
# ("-$1,234.50", "$-5", "12 €", "1,234,567", "7.5%"). A comma that does not separate thousands
# ("1,5": a decimal comma, or a list) is not a number: such a column stays text.
CURRENCY = "$€£¥"
_FORMATTED = re.compile(r"^(?P<s1>[-+]?)\s*(?:[" + CURRENCY + r"]\s*)?(?P<s2>[-+]?)"
                        r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)\s*(?P<pct>%?)\s*"
                        r"(?:[" + CURRENCY + r"])?$")
# What a column of numbers may hold for an unknown value besides the missing-value words
# (`cells.NA_TEXT`), in any case: "?" (UCI's tables), "-", "--" and "." (SAS), words, and a
# spreadsheet's error cells. Missing in a numeric column only: in a column of text they are values
# like any other.
UNKNOWN_MARKS = ("?", "-", "--", ".", "unknown", "missing", "n.a.", "not available",
                 "#div/0!", "#value!", "#ref!", "#name?", "#num!", "#null!")


def unknown_mark(value) -> bool:
    """Whether a cell is one of `UNKNOWN_MARKS` (any case, spaces around)."""
    return isinstance(value, str) and value.strip().lower() in UNKNOWN_MARKS


_DERIVED = "nettrain.derived"  # frame.attrs: the derived columns type_columns added to a table


# ----------------------------------------------------------------------------- selection

def select_columns(cfg, frame: pd.DataFrame, where: str, default_target: str | None
                   ) -> tuple[str, list[str], str | None]:
    """(target, feature columns, id column) for `frame`, checking every name the config gives."""
    data = cfg.data
    columns = [str(c) for c in frame.columns]
    present = set(columns)

    def absent(key: str, name: str, what: str):
        return cfg.error(key, f"{what} '{name}' is not a column of {where}; {did_you_mean(name, columns)}"
                         f"columns: {list_names(columns)}")

    target = data.target or default_target
    if target is None:
        raise cfg.error("data.target", f"required for data files: name the label column of {where}; "
                        f"columns: {list_names(columns)}")
    conflict = config_name_problem(cfg, target)  # (names that contradict each other: the config alone)
    if conflict:
        raise cfg.error(*conflict)
    if target not in present:
        raise absent("data.target", target, "target")
    if data.id is not None and data.id not in present:
        raise absent("data.id", data.id, "id column")
    for i, name in enumerate(data.drop):
        if name not in present:
            raise absent(f"data.drop.{i}", name, "dropped column")
    if data.features is not None:
        features = list(data.features)
        for i, name in enumerate(features):
            if name not in present:
                raise absent(f"data.features.{i}", name, "feature column")
    else:
        skip = {target, data.id, *data.drop}
        features = [c for c in columns if c not in skip]
    if not features:
        raise cfg.error("data.features" if data.features is not None else "data.drop",
                        f"no feature columns left in {where} (target '{target}'"
                        + (f", dropped {list_names(data.drop)}" if data.drop else "") + ")")
    for name in data.columns:
        if name not in present:
            raise absent(f"data.columns.{name}", name, "configured column")
    return target, features, data.id


# -------------------------------------------------------------------------------- typing

def type_columns(cfg, frame: pd.DataFrame, features: list[str], implied: dict[str, str],
                 where: str, notes: list[str] | None = None) -> list[ColumnInfo]:
    """ColumnInfo per model feature: `data.columns` overrides, else what the source implies, else
    `data.typing.column_type`. A date or yes/no column gives the numeric columns made from it
    (`ColumnInfo.origin`), which are also added to `frame` (the training table) as the columns they
    are, so the fill values of preprocessing.missing come from them like from any column (every
    other table gains them in `prepare_inputs`). Columns left out are said in `notes` (and warned)."""
    infos: list[ColumnInfo] = []
    chosen = cfg.data.features is not None
    for name in features:
        series = frame[name]
        override = cfg.data.columns.get(name)
        if override is not None:
            infos += _declared(cfg, frame, name, override, where)
            continue
        if implied.get(name):
            infos.append(_info(ColumnInfo(name=name, kind=implied[name])))
            continue
        ct = T.column_type(series, name, offers=False)
        if not ct.feature:
            if not chosen:
                _note(notes, f"{where}: column '{show_name(name)}' is left out ({ct.reason}); "
                      + (f"declare data.columns.{name}.type to use it, or name it as data.id to pass it through "
                         "predict" if ct.kind == "identifier" else "drop it with data.drop to say so"))
                continue
            if ct.kind == "sparse":  # named in data.features: typed by its few values
                ct = T.column_type(series, name, offers=False, sparse=False)
            if not ct.feature:
                ct = T.ColumnType("numeric", ct.reason) if ct.kind == "empty" else _categorical_type(series)
        if ct.kind in ("date", "boolean") and T.derived_origins(name, ct):
            infos += _derived(cfg, frame, name, ct, where, f"data.columns.{name}")
            continue
        kind = "numeric" if ct.kind == "boolean" else ct.kind
        info = ColumnInfo(name=name, kind=kind)
        if kind == "categorical" and cfg.preprocessing.categorical == "one_hot":
            info.embedding_dim = ct.embedding_dim
        infos.append(_info(info))
    return infos


def _declared(cfg, frame: pd.DataFrame, name: str, override, where: str) -> list[ColumnInfo]:
    """The columns of a feature typed in `data.columns`."""
    key = f"data.columns.{name}.type"
    kind = override.type
    if kind == "numeric":
        check_numeric(frame[name], name, where, key=key, cfg=cfg)
    if kind == "date":
        return _derived(cfg, frame, name, _date_type(cfg, frame[name], name, where, key), where, key)
    info = ColumnInfo(name=name, kind=kind, embedding_dim=override.embedding_dim)
    if kind == "text":
        info.max_tokens = override.max_tokens
        info.output_mode = override.output_mode
        info.sequence_length = override.sequence_length
    return [_info(info)]


def _info(info: ColumnInfo) -> ColumnInfo:
    if info.kind == "text":
        info.max_tokens = info.max_tokens or TEXT_DEFAULTS["max_tokens"]
        info.output_mode = info.output_mode or TEXT_DEFAULTS["output_mode"]
    return info


def _categorical_type(series: pd.Series) -> T.ColumnType:
    """A column the user chose (data.features) that auto-typing would leave out: categorical."""
    distinct = int(series.nunique(dropna=True))
    return T.ColumnType("categorical", f"{distinct} distinct values",
                        embedding_dim=T.embedding_size(distinct) if distinct > T.EMBED_OVER else None)


def _date_type(cfg, series: pd.Series, name: str, where: str, key: str) -> T.ColumnType:
    """The date type of a column declared `type: date`; a ConfigError when its values are no dates."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return T.column_type(series, name)
    present = T.present_values(series)
    text = present.astype(str).str.strip()
    fmt, share = T.date_format(text)
    if fmt is None:
        sample = text.iloc[0] if len(text) else "nothing"
        raise cfg.error(key, f"column '{show_name(name)}' of {where} is declared a date, but "
                        + (f"no date format fits {share:.0%} of its values (first value: "
                           f"{show_name(repr(sample), 40)}); " if len(text) else "it has no values; ")
                        + f"at least {T.DATE_SHARE:.0%} must parse with one of: {T.FORMATS_SHOWN}")
    return T.ColumnType("date", f"dates written {T.show_format(fmt)}", date_format=fmt, time="%H" in fmt)


def _derived(cfg, frame: pd.DataFrame, name: str, ct: T.ColumnType, where: str, key: str) -> list[ColumnInfo]:
    """The numeric columns made from date or yes/no column `name`; added to `frame` (see type_columns)."""
    origins = T.derived_origins(name, ct)
    ours = frame.attrs.get(_DERIVED, [])
    clash = [d for d in origins if d in frame.columns and d not in ours]
    if clash:
        raise cfg.error(key, f"column '{show_name(name)}' makes the feature '{show_name(clash[0])}', which is also a "
                        f"column of {where}; rename that column, or type '{show_name(name)}' otherwise "
                        f"(data.columns.{name}.type: categorical) or drop it")
    values, _ = T.derived_values(frame[name], origins)
    for derived, column in values.items():
        frame[derived] = column
    frame.attrs[_DERIVED] = [*ours, *[d for d in values if d not in ours]]
    return [ColumnInfo(name=derived, kind="numeric", origin=origin) for derived, origin in origins.items()]


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)
    warnings.warn(text, stacklevel=4)


def to_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values of a column, and a mask of the present values that are not numbers.

    Accepts number and boolean dtypes, numbers written as text (also for people: `written_number`),
    and true/false in any case; the missing-value words and `UNKNOWN_MARKS` are missing.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, pd.CategoricalDtype):
            series = series.astype(object)
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            return values, np.zeros(len(values), dtype=bool)
    obj = series.astype(object)
    if len(obj) > _EACH_UNDER:
        codes, uniques = pd.factorize(obj)
        if 0 < len(uniques) < len(obj) and all(type(u) is str for u in uniques):
            # text: each distinct value read once (a column of 43k rows and 5 words: 0.08 s -> 3 ms)
            numbers, bad = _each_to_numbers(pd.Series(uniques, dtype=object))
            present = codes >= 0
            picked = np.where(present, codes, 0)
            return np.where(present, numbers[picked], np.nan), present & bad[picked]
    return _each_to_numbers(obj)


_EACH_UNDER = 64  # columns this short are read value by value (factorizing them costs more than it saves)


def _each_to_numbers(obj: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """`to_numbers` of a column of Python objects, value by value."""
    missing = obj.isna().to_numpy()
    plain = obj.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v)
    numeric = pd.to_numeric(plain, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    failed = np.isnan(numeric) & ~missing
    if failed.any():
        words = obj[failed].map(lambda v: _BOOL_WORDS.get(str(v).strip().lower(), np.nan))
        numeric[failed] = words.to_numpy(dtype=np.float64)
        failed = np.isnan(numeric) & ~missing
    if failed.any():  # numbers written for people: $1,234.50, 12.5%
        numeric[failed] = obj[failed].map(written_number).to_numpy(dtype=np.float64)
        failed = np.isnan(numeric) & ~missing
    if failed.any():  # "nan" written as text, or an unknown mark, is a missing value, not a bad one
        nan_text = obj[failed].map(lambda v: str(v).strip().lower() in ("nan", "") or unknown_mark(v)
                                   ).to_numpy(dtype=bool)
        failed[np.flatnonzero(failed)[nan_text]] = False
    return numeric, failed


def written_number(value) -> float:
    """The number a cell written for people means (`_FORMATTED`: "$1,234.50" is 1234.5, "12.5%" is
    0.125), NaN when it is not one."""
    if not isinstance(value, str):
        return np.nan
    match = _FORMATTED.match(value.strip())
    if match is None:
        return np.nan
    number = float(match["num"].replace(",", ""))
    if "-" in (match["s1"], match["s2"]):
        number = -number
    return number / 100.0 if match["pct"] else number


def check_numeric(series: pd.Series, name: str, where: str, key: str | None = None, cfg=None) -> np.ndarray:
    """float64 values of a column that must be numeric; the first non-number is an error."""
    values, bad = to_numbers(series)
    if bad.any():
        pos = int(np.argmax(bad))
        row = row_label(series.index[pos])
        n_bad = int(bad.sum())
        msg = (f"column '{show_name(name)}' must be numeric but {row} of {where} holds "
               f"{show_name(repr(series.iloc[pos]), 60)}"
               + (f" ({n_bad} such values)" if n_bad > 1 else "")
               + "; fix the data, or type the column categorical (data.columns: {"
               + f"{name}: " + "{type: categorical}})")
        if cfg is not None and key is not None:
            raise cfg.error(key, msg)
        raise DataError(msg)
    return values


def row_label(index_label, line_offset: int | None = None) -> str:
    """A user-facing row number (1 = first data row) from a frame index label (0-based position).

    With `line_offset` (the file line of the row labelled 0: 2 for a CSV/TSV under its header) the
    line follows: `row 17000002 (line 17000003)`.
    """
    try:
        row = int(index_label)
    except (TypeError, ValueError):
        return f"row {index_label!r}"
    return f"row {row + 1}" if line_offset is None else f"row {row + 1} (line {row + line_offset})"


# -------------------------------------------------------------------------------- labels

def as_strings(series: pd.Series) -> np.ndarray:
    """Values as an object array of str (None where missing), the same for every dtype a reader may
    produce: integral floats print as integers ("3", not "3.0"), booleans as "True"/"False"."""
    dtype = series.dtype
    n = len(series)
    out = np.empty(n, dtype=object)
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype) and not missing.any():
        out[:] = np.where(series.to_numpy(dtype=bool), "True", "False")
        return out
    if pd.api.types.is_integer_dtype(dtype) and not missing.any():
        out[:] = series.to_numpy().astype(str)
        return out
    if pd.api.types.is_float_dtype(dtype):
        vals = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out[:] = [_number_str(v) for v in vals]
        out[missing] = None
        return out
    values = series.to_numpy(dtype=object)
    if isinstance(dtype, pd.StringDtype) or pd.api.types.infer_dtype(values, skipna=True) == "string":
        out[:] = [v if type(v) is str else _value_str(v) for v in values]  # (text: as it is, 30x faster)
    else:
        out[:] = [_value_str(v) for v in values]
    out[missing] = None
    return out


def _number_str(v: float) -> str | None:
    if v != v:
        return None
    if float(v).is_integer() and abs(v) < 2**63:
        return str(int(v))
    return repr(float(v))


def _value_str(v) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        return _number_str(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def lacks_columns(where: str, lost: list[str], have: list[str], main: str) -> str:
    """What a later file (data.validation, data.test) that lacks columns of the training file is told, by
    every reader."""
    return (f"{where} lacks column{'s' if len(lost) > 1 else ''} {list_names(lost, quote=True)} that data.{main} "
            f"has; {did_you_mean(lost[0], have)}it has: {list_names(have)}")
