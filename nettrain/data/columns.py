"""Which columns are features, target and id, and what kind each feature is.

Auto-typing knows two kinds: numeric (number and boolean dtypes, and text columns whose every
value parses as a number or is true/false) and categorical (everything else). A column is typed
`text` only when the config says so (`data.columns: {review: {type: text}}`) or a bundled set
implies it (keras:imdb, keras:reuters): free text is too easy to mistake for a high-cardinality
category, so nettrain never guesses it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from nettrain.data.words import list_names, show_name
from nettrain.data.types import ColumnInfo
from nettrain.errors import DataError
from nettrain.words import did_you_mean

TEXT_DEFAULTS = {"max_tokens": 10000, "output_mode": "multi_hot"}
_BOOL_WORDS = {"true": 1.0, "false": 0.0}


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
    if target not in present:
        raise absent("data.target", target, "target")
    if data.id is not None:
        if data.id not in present:
            raise absent("data.id", data.id, "id column")
        if data.id == target:
            raise cfg.error("data.id", f"'{target}' is the target; the id column must be another column")
    for i, name in enumerate(data.drop):
        if name not in present:
            raise absent(f"data.drop.{i}", name, "dropped column")
        if name == target:
            raise cfg.error(f"data.drop.{i}", f"'{name}' is the target and cannot be dropped")
        if name in data.drop[:i]:
            raise cfg.error(f"data.drop.{i}", f"'{name}' is listed twice")

    if data.features is not None:
        features = list(data.features)
        for i, name in enumerate(features):
            key = f"data.features.{i}"
            if name not in present:
                raise absent(key, name, "feature column")
            if name == target:
                raise cfg.error(key, f"'{name}' is the target; it cannot also be a feature")
            if name == data.id:
                raise cfg.error(key, f"'{name}' is the id column (data.id); it cannot also be a feature")
            if name in data.drop:
                raise cfg.error(key, f"'{name}' is listed in both data.features and data.drop; keep one")
            if name in features[:i]:
                raise cfg.error(key, f"'{name}' is listed twice")
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
        if name == target:
            raise cfg.error(f"data.columns.{name}", f"'{name}' is the target; data.columns types feature "
                            "columns. Choose classification or regression with data.task")
    return target, features, data.id


# -------------------------------------------------------------------------------- typing

def type_columns(cfg, frame: pd.DataFrame, features: list[str], implied: dict[str, str],
                 where: str, notes: list[str] | None = None) -> list[ColumnInfo]:
    """ColumnInfo per feature: `data.columns` overrides, else what the source implies, else auto."""
    infos = []
    for name in features:
        series = frame[name]
        override = cfg.data.columns.get(name)
        if override is not None:
            kind = override.type
            if kind == "numeric":
                check_numeric(series, name, where, key=f"data.columns.{name}.type", cfg=cfg)
        else:
            kind = implied.get(name) or auto_kind(series, name, where)
            if kind == "categorical":
                _warn_if_identifier(series, name, notes)
        info = ColumnInfo(name=name, kind=kind)
        if override is not None:
            info.embedding_dim = override.embedding_dim
            if kind == "text":
                info.max_tokens = override.max_tokens
                info.output_mode = override.output_mode
                info.sequence_length = override.sequence_length
        if kind == "text":
            info.max_tokens = info.max_tokens or TEXT_DEFAULTS["max_tokens"]
            info.output_mode = info.output_mode or TEXT_DEFAULTS["output_mode"]
        infos.append(info)
    return infos


def _warn_if_identifier(series: pd.Series, name: str, notes: list[str] | None) -> None:
    """A categorical column whose values are (nearly) all different teaches the model nothing."""
    distinct, rows = series.nunique(dropna=True), int(series.notna().sum())
    if rows >= 50 and distinct > 0.5 * rows:
        text = (f"column '{name}' is categorical with {distinct} distinct values in {rows} rows (an identifier, "
                f"a date or free text?): add it to data.drop, name it as data.id, or declare it "
                f"data.columns.{name}.type: text")
        if notes is not None:
            notes.append(text)
        warnings.warn(text, stacklevel=3)


def auto_kind(series: pd.Series, name: str = "", where: str = "") -> str:
    """numeric or categorical (see the module docstring)."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(f"{where}: column '{name}' holds dates/times ({dtype}); nettrain does not encode "
                        "them: add it to data.drop, or convert it to numbers (e.g. days) in the file")
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    values = series.dropna()
    if len(values) == 0:
        return "numeric"  # all missing: the missing-value policy reports it
    _, bad = to_numbers(values)
    return "categorical" if bad.any() else "numeric"


def to_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values of a column, and a mask of the present values that are not numbers.

    Accepts number and boolean dtypes, numbers written as text, and true/false in any case.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, pd.CategoricalDtype):
            series = series.astype(object)
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            return values, np.zeros(len(values), dtype=bool)
    obj = series.astype(object)
    missing = obj.isna().to_numpy()
    plain = obj.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v)
    numeric = pd.to_numeric(plain, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    failed = np.isnan(numeric) & ~missing
    if failed.any():
        words = obj[failed].map(lambda v: _BOOL_WORDS.get(str(v).strip().lower(), np.nan))
        numeric[failed] = words.to_numpy(dtype=np.float64)
        failed = np.isnan(numeric) & ~missing
    if failed.any():  # "nan" written as text is a missing value, not a bad one
        nan_text = obj[failed].map(lambda v: str(v).strip().lower() in ("nan", "")).to_numpy(dtype=bool)
        failed[np.flatnonzero(failed)[nan_text]] = False
    return numeric, failed


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
    out[:] = [_value_str(v) for v in series.astype(object)]
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
