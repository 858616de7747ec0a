"""The task (regression, binary, multiclass) and the class names, from the target and the loss.

With `data.task: auto` the loss decides first (a regression loss means regression, a binary loss
binary, a categorical loss multiclass even with two classes); with `training.loss: auto` the
target decides: text, boolean or categorical labels are classes (binary when there are two);
integer labels with at most 20 distinct values are classes; other numbers mean regression.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nettrain.config.coherence import loss_task
from nettrain.data.columns import as_strings, to_numbers
from nettrain.words import list_names

MAX_INTEGER_CLASSES = 20
ID_TARGET_ROWS = 20   # from this many rows, labels of which more than half are different are refused (task auto)


def loss_name(loss) -> str:
    return loss.get("name", "") if isinstance(loss, dict) else str(loss)


def target_kind(target: pd.Series) -> str:
    """'labels' (text, bool, category), 'integer' (whole numbers) or 'continuous'."""
    dtype = target.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "labels"
    if pd.api.types.is_numeric_dtype(dtype):
        values = target.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values, bad = to_numbers(target)
        if bad.any() or target.dropna().map(lambda v: isinstance(v, (bool, np.bool_))).any():
            return "labels"
    values = values[~np.isnan(values)]
    with np.errstate(invalid="ignore"):  # (inf: not a whole number, no warning)
        whole = bool(len(values)) and bool(np.all(np.mod(values, 1) == 0))
    if whole:
        return "integer"
    return "continuous"


def class_names(target: pd.Series) -> list[str]:
    """Sorted distinct labels as strings, in scikit-learn's order (the sorted unique values):
    numbers in numeric order ("-1", "2", "10"; 1.0 is "1"), False before True, text by code point."""
    labels = as_strings(target)
    unique = pd.unique(labels[pd.notna(labels)])
    if target_kind(target) in ("integer", "continuous"):
        return sorted((str(u) for u in unique), key=float)
    return sorted(str(u) for u in unique)


def class_type(target: pd.Series) -> str:
    """What the labels are, so predictions and labels.json give them back as such: "int" (whole
    numbers, also 1.0 and 2.0 of a float column with gaps, or numbers written as text), "float",
    "bool" (a boolean column) or "str"."""
    kind = target_kind(target)
    if kind == "integer":
        return "int"
    if kind == "continuous":
        return "float"
    present = target.dropna()
    if pd.api.types.is_bool_dtype(target.dtype) or (
            len(present) and present.map(lambda v: isinstance(v, (bool, np.bool_))).all()):
        return "bool"
    return "str"


def infer_task(cfg, target: pd.Series, name: str, hint: str | None = None,
               rows: int | None = None) -> tuple[str, list[str] | None]:
    """(task, class names or None) for the target column's present values. `rows`: how many rows hold
    a target value, where `target` holds each distinct value once (a stream's first pass); else its
    present values are counted."""
    kind = target_kind(target)
    requested = cfg.data.task
    by_loss = loss_task(cfg.training.loss) if requested == "auto" else None
    lname = loss_name(cfg.training.loss)

    if requested == "regression" or by_loss == "regression":
        if kind == "labels":
            sample = list_names(pd.unique(target.dropna().astype(str))[:5], 5)
            key, why = (("data.task", "task is regression") if requested == "regression"
                        else ("training.loss", f"'{lname}' is a regression loss"))
            raise cfg.error(key, f"{why} but target '{name}' holds labels ({sample}); use a classification "
                            "loss such as sparse_categorical_crossentropy, or task: auto")
        return "regression", None

    if requested == "auto" and by_loss is None:
        if kind == "continuous" or hint == "regression":
            return "regression", None
        if kind == "integer" and hint is None:
            n = len(pd.unique(target.dropna()))
            if n > MAX_INTEGER_CLASSES:
                return "regression", None

    names = class_names(target)
    n = len(names)
    if kind == "continuous" and (requested == "auto"):
        raise cfg.error("training.loss", f"'{lname}' is a classification loss but target '{name}' holds "
                        f"continuous numbers ({n} distinct values); use a regression loss such as "
                        "mean_squared_error, or loss: auto")
    if n < 2:
        raise cfg.error("data.target", f"target '{name}' has a single class ({list_names(names)}); "
                        "classification needs at least 2")
    rows = int(target.notna().sum()) if rows is None else rows
    if requested == "auto" and by_loss is None and kind == "labels" and rows >= ID_TARGET_ROWS and n > rows / 2:
        raise cfg.error("data.target", f"target '{name}' has {n:,} different values in {rows:,} rows: as classes, "
                        "most would be seen once and none could be learned (an identifier?); choose the column to "
                        "predict, or set data.task: multiclass to train on these classes anyway")
    if requested == "binary" and n != 2:
        raise cfg.error("data.task", f"task binary needs 2 classes but target '{name}' has {n} "
                        f"({list_names(names, 10)}); use task: multiclass or auto")
    if by_loss == "binary" and n != 2:
        raise cfg.error("training.loss", f"'{lname}' is a binary loss but target '{name}' has {n} classes "
                        f"({list_names(names, 10)}); use categorical_crossentropy or "
                        "sparse_categorical_crossentropy")
    if requested == "binary" or by_loss == "binary":
        return "binary", names
    if requested == "multiclass" or by_loss == "multiclass":
        return "multiclass", names
    if hint in ("binary", "multiclass"):
        return ("binary" if n == 2 and hint == "binary" else "multiclass"), names
    return ("binary" if n == 2 else "multiclass"), names
