"""Raw rows -> model inputs: the one code path for fit, evaluate and predict.

`prepare_inputs` applies a FeatureSchema to any DataFrame (a split of the training table or a
file given to predict); `fit_imputation` computes the fill values from training rows only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nettrain.data.columns import as_strings, row_label, to_numbers
from nettrain.data.words import list_names
from nettrain.data.types import NUMERIC_INPUT, FeatureSchema, Split
from nettrain.errors import DataError
from nettrain.words import did_you_mean

MISSING_POLICIES = ("error", "mean", "median", "most_frequent", "drop_rows")


def prepare_inputs(frame: pd.DataFrame, schema: FeatureSchema, *, require_target: bool = False,
                   source: str | None = None) -> Split:
    """A Split holding `frame`'s rows as model inputs (see `Split`), preprocessed as `schema` says.

    Columns the model does not use (the target among them) are ignored; `y` is filled when the
    target column is present (required with `require_target`). `source` names the data in
    messages. `row_index` holds the frame's index labels (positions in the source table).
    """
    where = source or "the data"
    _check_columns(frame, schema, where, require_target)
    n = len(frame)
    inputs: dict[str, np.ndarray] = {}
    numeric = schema.numeric_columns
    if numeric:
        inputs[NUMERIC_INPUT] = _numeric_matrix(frame, numeric, schema.imputation, where)
    for info in schema.other_columns:
        values = as_strings(frame[info.name])
        missing = pd.isna(values)
        if missing.any():
            fill = schema.imputation.get(info.name, "")
            values[missing] = "" if fill is None else str(fill)
        inputs[info.name] = values.reshape(n, 1)

    y = None
    if schema.target is not None and schema.target in frame.columns:
        y = encode_target(frame[schema.target], schema, where)
    ids = None
    if schema.id_column is not None and schema.id_column in frame.columns:
        ids = frame[schema.id_column].to_numpy()
    row_index = (frame.index.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(frame.index.dtype)
                 else np.arange(n, dtype=np.int64))
    return Split(inputs=inputs, y=y, ids=ids, row_index=row_index)


def _check_columns(frame: pd.DataFrame, schema: FeatureSchema, where: str, require_target: bool) -> None:
    have = [str(c) for c in frame.columns]
    needed = [c.name for c in schema.columns]
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


def _numeric_matrix(frame: pd.DataFrame, columns: list[str], imputation: dict, where: str) -> np.ndarray:
    """float32 (n, k) in `columns` order; imputation applied; bad values, NaN and inf refused."""
    block = frame[columns]
    plain = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
                and not isinstance(t, pd.CategoricalDtype) for t in block.dtypes)
    if plain:  # one conversion for the whole block (images: hundreds of columns)
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
                raise DataError(f"{where}: column '{name}' must be numeric but {row_label(series.index[pos])} "
                                f"holds {series.iloc[pos]!r}" + (f" ({int(bad.sum())} such values)"
                                                                 if bad.sum() > 1 else ""))
            x[:, j] = values
    nan = np.isnan(x)
    if nan.any():
        for j in np.flatnonzero(nan.any(axis=0)):
            name = columns[j]
            fill = imputation.get(name)
            if fill is None:
                count = int(nan[:, j].sum())
                raise DataError(f"{where}: column '{name}' has {count} missing value{'s' if count > 1 else ''} "
                                "and no fill value; set preprocessing.missing to mean, median, most_frequent "
                                "or drop_rows (fill values are learned from the training rows), or fix the data")
            x[nan[:, j], j] = float(fill)
    if not np.isfinite(x).all():
        j = int(np.flatnonzero(~np.isfinite(x).all(axis=0))[0])
        pos = int(np.flatnonzero(~np.isfinite(x[:, j]))[0])
        raise DataError(f"{where}: column '{columns[j]}' holds an infinite or too large value in "
                        f"{row_label(frame.index[pos])}: {frame[columns[j]].iloc[pos]!r}; float32 inputs "
                        "must be finite")
    return x


def encode_target(target: pd.Series, schema: FeatureSchema, where: str) -> np.ndarray:
    """Regression: float32 (n,). Classification: int64 indexes into schema.class_names."""
    name = schema.target
    if schema.task == "regression":
        values, bad = to_numbers(target)
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataError(f"{where}: target '{name}' must be numeric (regression) but "
                            f"{row_label(target.index[pos])} holds {target.iloc[pos]!r}")
        missing = np.isnan(values)
        if missing.any():
            raise DataError(f"{where}: target '{name}' is missing in {int(missing.sum())} rows "
                            f"(first: {row_label(target.index[int(np.argmax(missing))])})")
        return values.astype(np.float32)
    labels = as_strings(target)
    lookup = {c: i for i, c in enumerate(schema.class_names or [])}
    y = np.fromiter((lookup.get(v, -1) for v in labels), dtype=np.int64, count=len(labels))
    if (y < 0).any():
        pos = int(np.argmax(y < 0))
        if labels[pos] is None:
            raise DataError(f"{where}: target '{name}' is missing in {int(pd.isna(labels).sum())} rows "
                            f"(first: {row_label(target.index[pos])})")
        raise DataError(f"{where}: target '{name}' has the label {labels[pos]!r} in "
                        f"{row_label(target.index[pos])}, "
                        f"which the model does not know; known classes: {list_names(schema.class_names or [])}")
    return y


# ------------------------------------------------------------------------------ missing

def missing_counts(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, int]:
    """column -> number of missing values, for the feature columns and the target."""
    counts = {}
    for info in schema.columns:
        series = frame[info.name]
        if info.kind == "numeric":
            n = int(np.isnan(to_numbers(series)[0]).sum())
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
    for info in schema.columns:
        series = frame[info.name]
        mask |= np.isnan(to_numbers(series)[0]) if info.kind == "numeric" else series.isna().to_numpy()
    if schema.target is not None:
        mask |= frame[schema.target].isna().to_numpy()
    return mask


def fit_imputation(train: pd.DataFrame, schema: FeatureSchema, policy: str, where: str) -> dict[str, object]:
    """Fill value per feature column, from the training rows only (JSON-able python values).

    mean/median apply to numeric columns; categorical columns get their most frequent value
    under any policy; text columns are filled with the empty string.
    """
    fills: dict[str, object] = {}
    for info in schema.columns:
        series = train[info.name]
        if info.kind == "text":
            fills[info.name] = ""
            continue
        if info.kind == "numeric":
            values = to_numbers(series)[0]
            values = values[~np.isnan(values)]
            if len(values) == 0:
                raise DataError(f"{where}: column '{info.name}' has no values in the training rows, so no "
                                f"{policy} can be computed; drop it (data.drop) or fix the data")
            if policy == "mean":
                fills[info.name] = float(np.mean(values))
            elif policy == "median":
                fills[info.name] = float(np.median(values))
            else:
                fills[info.name] = float(pd.Series(values).mode().iloc[0])
        else:
            labels = as_strings(series)
            labels = labels[pd.notna(labels)]
            if len(labels) == 0:
                raise DataError(f"{where}: column '{info.name}' has no values in the training rows, so no "
                                "most frequent value can be computed; drop it (data.drop) or fix the data")
            counts = pd.Series(labels).value_counts()
            top = counts[counts == counts.max()].index
            fills[info.name] = str(sorted(top)[0])  # ties: the first in sort order, reproducibly
    return fills
