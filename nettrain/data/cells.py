"""The one typing rule for the cells of a CSV/TSV file, whoever reads them.

The rule is `pandas.read_csv`'s, which reads a file held in memory: a cell in `NA_TEXT` is missing;
a column is numbers when every present cell is one (`" 1"`, `"+1"`, `"007"` are the integer 1, 1
and 7; 20-digit integers stay exact), booleans when every present cell is a word of
`TRUE_TEXT`/`FALSE_TEXT`, else text as written. A cell's type is one of `CELL_TYPES`:
"number", "bool" or "str".

The type of each column that is not read as a number (categorical and text features, the target,
the id column) is decided once, from the whole table in memory or from a stream's first chunk
(`cell_types`), stored in the feature schema (`FeatureSchema.cell_types`), and every later read
converts that column by it (`typed`): a later chunk, `evaluate --data` and `predict` give a cell
the value fit gave it, whatever the other cells of their chunk hold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
