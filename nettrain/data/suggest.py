"""`suggest_config(path, target)`: the YAML text `nettrain init` prints for a data file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml

from nettrain.data.columns import as_strings, auto_kind, to_numbers
from nettrain.data.sources import read_table
from nettrain.data.words import did_you_mean, list_names, show_name
from nettrain.data.split import n_held_out
from nettrain.errors import ConfigError, UsageError

_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$)")


def suggest_config(path: Path, target: str) -> str:
    """A starting config for `path` with label column `target`; loads cleanly with load_config."""
    from nettrain.config import load_config
    from nettrain.data.task import infer_task

    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise UsageError(f"{path}: no column '{show_name(target)}' to use as the target; "
                         f"{did_you_mean(target, columns)}columns: {list_names(columns)}")
    n = len(frame)
    _check_target(path, frame[target], target)
    drop: dict[str, str] = {}
    text: list[str] = []
    id_col = None
    numeric, categorical = [], []
    for name in columns:
        if name == target:
            continue
        series = frame[name]
        if not _present(series).any():
            drop[name] = "every value is missing"
            continue
        if id_col is None and _ID_NAME.search(name) and series.nunique(dropna=False) == n:
            id_col = name
            continue
        try:
            kind = auto_kind(series, name, str(path))
        except UsageError:
            drop[name] = "dates/times: convert them to numbers to use them"
            continue
        if kind == "categorical":
            values = series.dropna().astype(str)
            if len(values) and values.str.len().median() > 30 and values.str.count(" ").median() >= 3:
                text.append(name)
                continue
            if n >= 20 and values.nunique() == n:
                drop[name] = "every value is different: looks like an identifier"
                continue
            categorical.append(name)
        else:
            numeric.append(name)

    features = numeric + categorical + text
    if not features:
        raise UsageError(f"{path}: no usable feature columns besides the target '{show_name(target)}'"
                         + (f" (columns: {list_names(columns)})" if len(columns) > 1 else
                            "; the file holds only the target column"))
    try:
        probe = load_config(None, data={"data": {"source": str(path), "target": target}}, check_names=False)
        task, classes = infer_task(probe, frame[target], target)
    except ConfigError as e:
        raise UsageError(f"{path}: {e.detail}") from None

    missing = {}
    for name in features:
        series = frame[name]
        count = int(np.isnan(to_numbers(series)[0]).sum()) if name in numeric else int(series.isna().sum())
        if count:
            missing[name] = count
    target_missing = int(frame[target].isna().sum())
    if any(c in numeric for c in missing):
        policy = "median"
    elif missing:
        policy = "most_frequent"
    elif target_missing:
        policy = "drop_rows"
    else:
        policy = "error"

    test = 0.2 if n_held_out(0.2, n) >= 1 and n - n_held_out(0.2, n) >= 2 else 0.0
    rest = n - n_held_out(test, n)
    validation = 0.2 if n_held_out(0.2, rest) >= 1 and rest - n_held_out(0.2, rest) >= 1 else 0.0

    what = f"{task}, {len(classes)} classes" if classes else "regression"
    out = [f"# Starting config for {path}: {n} rows; target {_q(target)} ({what}).",
           "# Run it with: nettrain fit THIS_FILE   (check it first with: nettrain validate THIS_FILE)",
           "",
           "# data: the file, the label column, and how rows are split into train/validation/test",
           "data:",
           f"  source: {_q(str(path))}",
           f"  target: {_q(target)}",
           f"  task: {task}                # inferred from the target; 'auto' infers it again at each run"]
    if id_col:
        out.append(f"  id: {_q(id_col)}                # never a feature; predict passes it through")
    if drop:
        out.append("  drop:")
        for name, why in drop.items():
            out.append(f"    - {_q(name)}              # {why}")
    if text:
        out.append("  columns:                # long free text: tokenized instead of one-hot")
        for name in text:
            out.append(f"    {_q(name)}: {{type: text, max_tokens: 10000, output_mode: multi_hot}}")
    split = f"{{test: {test}, validation: {validation}, shuffle: true"
    split += ", stratify: true}" if classes else "}"
    out.append(f"  split: {split}")
    out += ["",
            f"# preprocessing: {len(numeric)} numeric column(s) standardized, {len(categorical)} categorical "
            "one-hot encoded; missing values: " + (", ".join(f"{_q(c)} {k}" for c, k in missing.items())
                                                   or "none in the features")
            + (f"; target missing in {target_missing} rows (dropped)" if target_missing else ""),
            "preprocessing:",
            "  numeric: standard",
            "  categorical: one_hot",
            f"  missing: {policy}",
            "",
            "# model: two hidden layers; the output layer follows from the task (output: auto)",
            "model:",
            "  layers:",
            "    - {type: Dense, units: 64, activation: relu}",
            "    - {type: Dense, units: 32, activation: relu}",
            "  output: auto",
            "",
            "# training: loss and metrics follow from the task (auto)",
            "training:",
            "  loss: auto",
            "  optimizer: adam",
            "  metrics: auto",
            "  epochs: 50",
            "  batch_size: 32",
            "",
            "# callbacks: stop when the validation loss has not improved for 10 epochs, keep the best weights",
            "callbacks:",
            "  early_stopping: {monitor: val_loss, patience: 10, restore_best_weights: true}"
            if validation > 0 else
            "  # early_stopping needs validation rows; this data set is too small for them",
            ""]
    if validation == 0:
        out.insert(-1, "  checkpoint: {monitor: loss}")
    return "\n".join(out)


def _present(series) -> np.ndarray:
    """Which values are there: not missing and not blank text."""
    labels = as_strings(series)
    return np.fromiter((v is not None and v.strip() != "" for v in labels), dtype=bool, count=len(labels))


def _check_target(path: Path, series, target: str) -> None:
    """A target with no values, or with one value only, cannot be learned: say so before anything else."""
    labels = as_strings(series)
    present = labels[_present(series)]
    name = show_name(target)
    if len(present) == 0:
        raise UsageError(f"{path}: target column '{name}' has no values (all {len(labels)} rows are empty); "
                         "choose the column that holds the labels or numbers to predict")
    distinct = set(present)
    if len(distinct) < 2:
        only = show_name(next(iter(distinct)), 40)
        raise UsageError(f"{path}: target column '{name}' holds one value only ('{only}' in all "
                         f"{len(present)} rows that have one); a target needs at least 2 different values")


def _q(value: str) -> str:
    """A YAML scalar for `value`: plain when that reads back as the same string, else quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./\-][A-Za-z0-9_ ./\-]*", value) and not value.endswith(" "):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)
