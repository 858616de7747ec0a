"""Raw rows -> model inputs: the one code path for fit, evaluate and predict.

`prepare_inputs` applies a FeatureSchema to any DataFrame (a split of the training table, a chunk
of a stream or a file given to predict); the fill values come from the training rows only
(`data.stats.imputation_values`). The numeric columns made from another column (a date's parts,
a yes/no column's 1/0: `ColumnInfo.origin`) are made here from the raw column, for every table
alike (`with_derived`), so predict gives a saved model what fit gave it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nettrain.data import typing as T
from nettrain.data.columns import as_strings, row_label, to_numbers
from nettrain.data.types import NUMERIC_INPUT, FeatureSchema, Split
from nettrain.errors import DataError
from nettrain.words import did_you_mean, list_names

MISSING_POLICIES = ("error", "mean", "median", "most_frequent", "drop_rows")


def prepare_inputs(frame: pd.DataFrame, schema: FeatureSchema, *, require_target: bool = False,
                   source: str | None = None, line_offset: int | None = None,
                   keep_missing: bool = False) -> Split:
    """A Split holding `frame`'s rows as model inputs (see `Split`), preprocessed as `schema` says.

    Columns the model does not use (the target among them) are ignored; `y` is filled when the
    target column is present (required with `require_target`). `source` names the data in
    messages. `row_index` holds the frame's index labels (positions in the source table).

    Messages name a bad value's row by the frame's index label (a chunk of a large file is indexed
    by row number); with `line_offset`, the file line of the row labelled 0 (2 for a CSV/TSV under
    its header), they name its line too: `row 17000002 (line 17000003)`.

    `keep_missing`: missing feature values stay missing (NaN in the numeric matrix, None in a
    categorical or text column) instead of being filled from `schema.imputation` (or refused):
    the training rows `data.stats.stats_of` learns the fill values from, before there are any.
    """
    where = source or "the data"
    check_columns(frame, schema, where, require_target)
    frame = with_derived(frame, schema, where, line_offset)
    n = len(frame)
    inputs: dict[str, np.ndarray] = {}
    numeric = schema.numeric_columns
    if numeric:
        inputs[NUMERIC_INPUT] = _numeric_matrix(frame, numeric, schema.imputation, where, line_offset,
                                                keep_missing)
    for info in schema.other_columns:
        values = as_strings(frame[info.name])
        missing = pd.isna(values)
        if missing.any() and not keep_missing:
            fill = schema.imputation.get(info.name, "")
            values[missing] = "" if fill is None else str(fill)
        inputs[info.name] = values.reshape(n, 1)

    y = None
    if schema.target is not None and schema.target in frame.columns:
        y = encode_target(frame[schema.target], schema, where, line_offset)
    ids = None
    if schema.id_column is not None and schema.id_column in frame.columns:
        ids = frame[schema.id_column].to_numpy()
    row_index = (frame.index.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(frame.index.dtype)
                 else np.arange(n, dtype=np.int64))
    return Split(inputs=inputs, y=y, ids=ids, row_index=row_index)


def check_columns(frame: pd.DataFrame, schema: FeatureSchema, where: str, require_target: bool) -> None:
    """A DataError naming the columns the model reads (or the target, when required) that `frame` lacks,
    or saying it has no rows."""
    have = [str(c) for c in frame.columns]
    needed = schema.file_columns
    lost = [c for c in needed if c not in frame.columns]
    if lost:
        hint = did_you_mean(lost[0], have)
        plural = "s" if len(lost) > 1 else ""
        raise DataError(f"{where}: missing column{plural} {list_names(lost, quote=True)} that the "
                        f"model uses; {hint}the data has: {list_names(have)}")
    if require_target and schema.target not in frame.columns:
        raise DataError(f"{where}: the target column '{schema.target}' is missing; "
                        f"{did_you_mean(str(schema.target), have)}the data has: {list_names(have)}")
    if len(frame) == 0:
        raise DataError(f"{where}: no rows")


def with_derived(frame: pd.DataFrame, schema: FeatureSchema, where: str = "the data",
                 line_offset: int | None = None) -> pd.DataFrame:
    """`frame` with the derived columns of `schema` (made from their raw columns, whatever the frame
    held under their names); `frame` itself when the schema has none. A yes/no column holding
    another word is a DataError naming its row."""
    groups: dict[str, dict[str, dict]] = {}
    for info in schema.columns:
        if info.origin is not None:
            groups.setdefault(info.origin["column"], {})[info.name] = info.origin
    if not groups:
        return frame
    out = frame.copy(deep=False)
    for column, origins in groups.items():
        values, bad = T.derived_values(frame[column], origins)
        if bad.any():
            pos = int(np.argmax(bad))
            first = next(iter(origins.values()))
            raise DataError(f"{where}: column '{column}' holds {frame[column].iloc[pos]!r} in "
                            f"{row_label(frame.index[pos], line_offset)}"
                            + (f" ({int(bad.sum())} such values)" if bad.sum() > 1 else "")
                            + f"; the model knows only {first['true']!r} and {first['false']!r} there (or a missing value)")
        for name, array in values.items():
            out[name] = array
    return out


def _numeric_matrix(frame: pd.DataFrame, columns: list[str], imputation: dict, where: str,
                    line_offset: int | None = None, keep_missing: bool = False) -> np.ndarray:
    """float32 (n, k) in `columns` order; imputation applied (`keep_missing`: NaN left where a value is
    missing); bad values, NaN without a fill value and inf refused."""
    block = frame[columns]
    plain = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
                and not isinstance(t, pd.CategoricalDtype) for t in block.dtypes)
    if plain:  # one conversion for the whole block (images: hundreds of columns)
        with np.errstate(over="ignore"):  # (beyond float32: inf, refused below with its row)
            x = block.to_numpy(dtype=np.float32, na_value=np.nan)
        if not x.flags.writeable:
            x = x.copy()
    else:
        x = np.empty((len(frame), len(columns)), dtype=np.float32)
        for j, name in enumerate(columns):
            series = frame[name]
            values, bad = to_numbers(series)
            if bad.any():
                pos = int(np.argmax(bad))
                raise DataError(f"{where}: column '{name}' must be numeric but "
                                f"{row_label(series.index[pos], line_offset)} "
                                f"holds {series.iloc[pos]!r}" + (f" ({int(bad.sum())} such values)"
                                                                 if bad.sum() > 1 else ""))
            with np.errstate(over="ignore"):
                x[:, j] = values
    nan = np.isnan(x)
    if nan.any() and not keep_missing:
        for j in np.flatnonzero(nan.any(axis=0)):
            name = columns[j]
            fill = imputation.get(name)
            if fill is None:
                count = int(nan[:, j].sum())
                first = row_label(frame.index[int(np.argmax(nan[:, j]))], line_offset)
                raise DataError(f"{where}: column '{name}' has {count} missing value{'s' if count > 1 else ''} "
                                f"(first: {first}) and the model has no fill value for it (it was trained with "
                                "preprocessing.missing error or drop_rows, which learn none); fill the gaps, or train "
                                "with preprocessing.missing mean, median or most_frequent (fill values learned from "
                                "the training rows)")
            x[nan[:, j], j] = float(fill)
    infinite = np.isinf(x)
    if infinite.any():
        j = int(np.flatnonzero(infinite.any(axis=0))[0])
        pos = int(np.flatnonzero(infinite[:, j])[0])
        raise DataError(f"{where}: column '{columns[j]}' holds an infinite or too large value in "
                        f"{row_label(frame.index[pos], line_offset)}: {_shown(frame[columns[j]].iloc[pos])}; float32 "
                        "inputs must be finite (at most about 3.4e38)")
    return x


def _shown(value) -> str:
    """A cell as a message shows it: text quoted as written, a number as Python writes it (inf, 1e+39)."""
    if isinstance(value, str):
        return repr(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return repr(value)


def encode_target_problem(where: str, name: str, row: str, value) -> str:
    """What a regression target's infinite (or beyond float32) value is told, by every reader."""
    return (f"{where}: target '{name}' holds an infinite or too large value in {row}: {_shown(value)}; a regression "
            "target must be finite (at most about 3.4e38)")


def encode_target(target: pd.Series, schema: FeatureSchema, where: str,
                  line_offset: int | None = None) -> np.ndarray:
    """Regression: float32 (n,). Classification: int64 indexes into schema.class_names."""
    name = schema.target

    def row(pos: int) -> str:
        return row_label(target.index[pos], line_offset)

    if schema.task == "regression":
        values, bad = to_numbers(target)
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataError(f"{where}: target '{name}' must be numeric (regression) but "
                            f"{row(pos)} holds {target.iloc[pos]!r}")
        missing = np.isnan(values)
        if missing.any():
            raise DataError(f"{where}: target '{name}' is missing in {int(missing.sum())} rows "
                            f"(first: {row(int(np.argmax(missing)))})")
        with np.errstate(over="ignore"):
            y = values.astype(np.float32)
        infinite = np.isinf(y)
        if infinite.any():  # (else every loss is NaN, and training stops as diverged)
            pos = int(np.argmax(infinite))
            raise DataError(encode_target_problem(where, name, row(pos), target.iloc[pos]))
        return y
    labels = as_strings(target)
    lookup = {c: i for i, c in enumerate(schema.class_names or [])}
    y = np.fromiter((lookup.get(v, -1) for v in labels), dtype=np.int64, count=len(labels))
    if (y < 0).any():
        pos = int(np.argmax(y < 0))
        if labels[pos] is None:
            raise DataError(f"{where}: target '{name}' is missing in {int(pd.isna(labels).sum())} rows "
                            f"(first: {row(pos)})")
        raise DataError(f"{where}: target '{name}' has the label {labels[pos]!r} in {row(pos)}, "
                        f"which the model does not know; known classes: {list_names(schema.class_names or [])}")
    return y


# ------------------------------------------------------------------------------ missing

def missing_counts(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, int]:
    """column -> number of missing values, for the feature columns and the target. A derived
    column's gaps count under its raw column (a value that is no date counts as missing)."""
    counts = {}
    frame = with_derived(frame, schema)
    for info in schema.columns:
        series = frame[info.name]
        if info.origin is not None:
            n = int(np.isnan(series.to_numpy(dtype=np.float64)).sum())
            column = info.origin["column"]
            if n:
                counts[column] = max(counts.get(column, 0), n)
            continue
        if info.kind == "numeric":  # (a value that is no number is not missing: the numeric check names it)
            values, bad = to_numbers(series)
            n = int((np.isnan(values) & ~bad).sum())
        else:
            n = int(series.isna().sum())
        if n:
            counts[info.name] = n
    if schema.target is not None and schema.target in frame.columns:
        n = int(frame[schema.target].isna().sum())
        if n:
            counts[schema.target] = n
    return counts


def missing_rows(frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    """Boolean mask of rows with a missing feature or target value."""
    mask = np.zeros(len(frame), dtype=bool)
    frame = with_derived(frame, schema)
    for info in schema.columns:
        series = frame[info.name]
        mask |= np.isnan(to_numbers(series)[0]) if info.kind == "numeric" else series.isna().to_numpy()
    if schema.target is not None:
        mask |= frame[schema.target].isna().to_numpy()
    return mask
