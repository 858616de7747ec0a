"""The one typing rule for the cells of a CSV/TSV file, whoever reads them.

The rule is `pandas.read_csv`'s, which reads a file held in memory: a cell in `NA_TEXT` is missing;
a column is numbers when every present cell is one (`" 1"`, `"+1"`, `"007"` are the integer 1, 1
and 7; 20-digit integers stay exact), booleans when every present cell is a word of
`TRUE_TEXT`/`FALSE_TEXT`, else text as written. A cell's type is one of `CELL_TYPES`:
"number", "bool" or "str".

The type of each column that is not read as a number (categorical and text features, the target,
the id column) is decided once, from the whole table in memory or from a stream's first chunk
(`cell_types`) of the training file, stored in the feature schema (`FeatureSchema.cell_types`), and
every later read converts that column by it (`typed`; a table read whole, its `text_columns` read
as text: `typed_table`): a later chunk, a separate data.validation / data.test file, `evaluate
--data` and `predict` give a cell the value fit gave it, whatever their other cells hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from nettrain.data.types import FeatureSchema

# What pandas.read_csv reads as missing (pyarrow's defaults lack "None" and "<NA>").
NA_TEXT = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
           "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
# What pandas.read_csv reads as booleans (in a column holding nothing else).
TRUE_TEXT = ("True", "TRUE", "true")
FALSE_TEXT = ("False", "FALSE", "false")
CELL_TYPES = ("number", "bool", "str")
_WORDS = {**{t: True for t in TRUE_TEXT}, **{f: False for f in FALSE_TEXT}}


def cell_type(series: pd.Series) -> str:
    """The cell type of a column as a reader gave it: "number" for a number dtype, "bool" for a
    boolean one (or booleans held as objects), else "str" (of a column of text: its cells' type
    under the rule, see `text_type`)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "number"
    present = series.dropna()
    if len(present) and _is_bool(present.iloc[0]) and present.map(_is_bool).all():  # (look at one first)
        return "bool"
    return "str"


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def text_type(series: pd.Series) -> str:
    """The cell type of a column of text under the rule (see the module docstring)."""
    return cell_type(typed_like_read_csv(series))


def typed_like_read_csv(series: pd.Series) -> pd.Series:
    """A column of text (None where empty) typed as `pandas.read_csv` types a column of a whole file."""
    present = _present(series)
    if not present.any():
        return _missing_as_none(series, present)
    numbers = _numbers(series[present])
    if numbers is not None:
        return _with_gaps(series, present, numbers)
    if series[present].isin(list(_WORDS)).all():
        return _missing_as_none(series, present).map(_WORDS)
    return _missing_as_none(series, present)


def typed(series: pd.Series, kind: str | None) -> pd.Series:
    """A column of text converted to the cell type `kind` decided before (None: typed by its own
    cells, `typed_like_read_csv`). A cell that is not of that type stays the text it is (a category
    fit never saw)."""
    if kind not in CELL_TYPES:
        return typed_like_read_csv(series)
    present = _present(series)
    out = _missing_as_none(series, present)
    if kind == "str" or not present.any():
        return out
    if kind == "bool":
        return out.map(lambda v: _WORDS.get(v, v) if isinstance(v, str) else v)
    numbers = _numbers(out[present])
    if numbers is not None:
        return _with_gaps(series, present, numbers)
    coerced = pd.to_numeric(out[present], errors="coerce")  # some cells are not numbers: keep their text
    values = out.astype(object)
    read = coerced.notna().to_numpy()
    values.loc[out[present].index[read]] = coerced[read].astype(object)
    return values


def cell_types(frame: pd.DataFrame, names) -> dict[str, str]:
    """{column: cell type} of the columns `names` of a table as its reader typed it."""
    return {name: cell_type(frame[name]) for name in dict.fromkeys(n for n in names if n is not None)}


def text_columns(schema: "FeatureSchema") -> list[str]:
    """The columns a file read whole gives as the text of their cells, to be typed by the cell type
    fit stored (`schema.cell_types`): all but the numeric ones read as numbers, which the reader
    parses itself, as at fit. None for a schema written before cell types were stored (such a file
    is read as it always was)."""
    numeric = set(schema.numeric_columns) | ({schema.target} if schema.task == "regression" else set())
    return [name for name, kind in schema.cell_types.items() if not (name in numeric and kind == "number")]


def typed_table(frame: pd.DataFrame, schema: "FeatureSchema") -> pd.DataFrame:
    """A table read whole (`read_table(path, text=text_columns(schema))`) with the columns of
    `text_columns` typed by the cell types fit stored (`typed`); a column its reader typed already
    (parquet, jsonl, a CSV read without `text`) is left as it is."""
    columns = {name: typed(frame[name], schema.cell_types.get(name)) for name in text_columns(schema)
               if name in frame.columns and not _typed_already(frame[name])}
    if not columns:
        return frame
    out = frame.copy(deep=False)  # (not `assign`: a column may be named like one of its parameters)
    for name, values in columns.items():
        out[name] = values
    return out


def _typed_already(series: pd.Series) -> bool:
    """A column its reader typed (a number, boolean or category dtype), not the text of its cells."""
    return not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype))


def _present(series: pd.Series):
    """Boolean Series: the cells that hold a value (not missing, not a text of `NA_TEXT`)."""
    return series.notna() & ~series.isin(NA_TEXT)


def _missing_as_none(series: pd.Series, present) -> pd.Series:
    if present.all():
        return series
    out = series.astype(object).copy()
    out[~present] = None
    return out


def _numbers(text: pd.Series) -> pd.Series | None:
    """The cells as numbers when every one is a number (as pandas reads them), else None."""
    try:
        numbers = pd.to_numeric(text)
    except (ValueError, TypeError):
        return None
    if not pd.api.types.is_numeric_dtype(numbers.dtype) or pd.api.types.is_bool_dtype(numbers.dtype):
        return None  # numbers too large for one dtype: pandas keeps them as text
    return numbers


def _with_gaps(series: pd.Series, present, numbers: pd.Series) -> pd.Series:
    """`numbers` at the present cells, NaN at the others (float64 then, as pandas has it)."""
    if present.all():
        return pd.Series(numbers.to_numpy(), index=series.index, name=series.name)
    out = pd.Series(float("nan"), index=series.index, name=series.name, dtype="float64")
    out[present] = numbers.astype("float64")
    return out
