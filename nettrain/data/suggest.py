"""`suggest_config(path, target)`: the YAML text `nettrain init` prints or writes for a data file.

Each column is typed by `data.typing.column_type`, the rule fit follows for a column the config
does not type, so the config and fit agree; init adds what fit never does on its own (whole numbers
that look like codes offered as categorical, a row index dropped, an identifier-named column as
data.id). The config says in comments which columns it treats as numeric, categorical, dates,
text, the id, and which it drops, and why; `Suggestion.summary` says the same on one line (the
CLI prints it on stderr). `data.source` (with a test file: `data.train` and `data.test`) is
written so that the config works where it is meant to live: relative to the folder of `output`
when the config is written to a file, else as given (relative to the current directory, which a
comment says). `preprocessing.missing` is a fill policy (`_missing_policy`), never `error`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nettrain.config.loader import BUNDLED_PREFIXES
from nettrain.data import typing as T
from nettrain.data.columns import as_strings, unknown_mark
from nettrain.data.dialect import said
from nettrain.data.kinds import table_kind
from nettrain.data.sources import DEFAULT_TARGET, SOURCE, read_parts
from nettrain.data.split import n_held_out
from nettrain.data.stats import PIECEWISE_MAX_COLUMNS
from nettrain.errors import ConfigError, UsageError, WriteFailed
from nettrain.words import did_you_mean, list_names, show_name

_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$)")
CONFIG_EXTENSIONS = (".yaml", ".yml")


@dataclass
class Suggestion:
    text: str            # the config file
    summary: str         # one line: the task and what each column was taken for


def suggest_config(path: Path, target: str, *, output: Path | None = None, test: Path | None = None) -> str:
    """A starting config for `path` with label column `target`; loads cleanly with load_config
    (from `output`'s folder when given, else from the current directory)."""
    return suggest(path, target, output=output, test=test).text


def source_for(path: Path, output: Path | None) -> str:
    """`path` (as typed, relative to the current directory) as the config at `output` must write it."""
    if output is None or Path(path).is_absolute():
        return str(path)
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(Path(output).parent))).as_posix()
    except ValueError:  # another drive (Windows)
        return os.path.abspath(path)


@dataclass
class _Roles:
    """What `init` made of each column besides the target (column -> why, one line each)."""

    numeric: dict[str, str] = field(default_factory=dict)       # numbers, booleans
    categorical: dict[str, str] = field(default_factory=dict)   # text values
    embedded: dict[str, int] = field(default_factory=dict)      # categorical column -> embedding width
    codes: dict[str, str] = field(default_factory=dict)         # whole numbers offered as categorical
    dates: dict[str, T.ColumnType] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    id_col: str | None = None
    drop: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.codes, *self.dates, *self.text]


def suggest(path: Path, target: str | None, *, output: Path | None = None, test: Path | None = None) -> Suggestion:
    """The config and its summary line; `test`: a file of test rows (`data.test`), so the config
    trains on all of `path` (`data.train`) but its validation rows."""
    from nettrain.config import load_config
    from nettrain.data.task import infer_task

    if os.path.isdir(path):  # an image folder: a small CNN (data.imagesuggest); (never raises, as is_dir may)
        return _suggest_images(Path(path), target, output, test)
    if str(path).startswith(BUNDLED_PREFIXES):
        raise UsageError(f"{path} is a bundled set, not a file: it needs no init; a config names it as "
                         f"data: {{source: {path}}} (its target is its own), as configs/wine.yaml does")
    if target is None and table_kind(path) == ".npz":
        target = DEFAULT_TARGET   # an .npz's y array, as the config's data.target defaults to it
    if target is None:
        raise UsageError(f"{path}: give the label column with --target COLUMN")
    frames = read_parts(path)
    official = SOURCE not in frames  # an .npz holding its own split: the config keeps it
    frame = frames[SOURCE] if not official else pd.concat([frames["train"], frames["test"]], ignore_index=True)
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise UsageError(f"{path}: no column '{show_name(target)}' to use as the target; "
                         f"{did_you_mean(target, columns)}columns: {list_names(columns)}")
    _check_target(path, frame[target], target)
    roles = _column_roles(frame, columns, target)
    if not roles.features:
        raise UsageError(f"{path}: no usable feature columns besides the target '{show_name(target)}'"
                         + (f" (columns: {list_names(columns)})" if len(columns) > 1 else
                            "; the file holds only the target column"))
    if test is not None:
        _check_test(path, Path(test), official, [target, *roles.features] + ([roles.id_col] if roles.id_col else []))
    try:
        probe = load_config(None, data={"data": {"source": str(path), "target": target}}, check_names=False)
        task, classes = infer_task(probe, frame[target], target)
    except ConfigError as e:
        raise UsageError(f"{path}: {e.detail}") from None
    what = f"{task}, {len(classes)} classes" if classes else "regression"
    paths = {"source": source_for(path, output)} if test is None else \
        {"train": source_for(path, output), "test": source_for(Path(test), output)}
    read = said(path)   # how the file is read, when not as a plain CSV: said in the config and the summary
    text = _render(path, frame, target, task, what, bool(classes), roles, official, paths, output, read)
    return Suggestion(text=text, summary=_summary(path, target, what, roles, read))


def _suggest_images(folder: Path, target: str | None, output: Path | None, test: Path | None) -> Suggestion:
    from nettrain.data.imagesuggest import suggest_images

    if target is not None:
        raise UsageError(f"--target {target}: {folder} is not a file but a folder; an image folder (one "
                         "sub-folder per class) takes no --target: leave it out")
    if test is not None:
        raise UsageError(f"--test {test}: {folder} is an image folder, split by data.split; leave out --test")
    text, summary = suggest_images(folder, source_for(folder, output), output)
    return Suggestion(text=text, summary=summary)


def _check_test(path: Path, test: Path, official: bool, needed: list[str]) -> None:
    """A --test file that can serve as the config's data.test: a table other than the training file
    with the columns the config uses."""
    if official:
        raise UsageError(f"--test {test}: {path} holds its own test split (x_test, y_test), which the config "
                         "keeps; leave out --test")
    if not test.is_file():
        raise UsageError(f"--test {test}: no such file; give the file of test rows (.csv .tsv .parquet .jsonl)")
    try:
        same = test.exists() and Path(path).exists() and os.path.samefile(test, path)
    except OSError:
        same = False
    if same:
        raise UsageError(f"--test {test}: that is the training file itself; give a file of other rows")
    parts = read_parts(test)
    if SOURCE not in parts:
        raise UsageError(f"--test {test}: it holds a train/test split of its own; give one table of test rows")
    have = [str(c) for c in parts[SOURCE].columns]
    lost = [c for c in needed if c not in have]
    if lost:
        raise UsageError(f"--test {test}: no column{'s' if len(lost) > 1 else ''} {list_names(lost, quote=True)} "
                         f"that {path} has and the config uses; {did_you_mean(lost[0], have)}its columns: "
                         f"{list_names(have)}")


def _column_roles(frame: pd.DataFrame, columns: list[str], target: str) -> _Roles:
    """Each column's role, by `data.typing.column_type` (what fit does with an undeclared column),
    and what init offers besides: whole numbers that look like codes as categorical, a row index
    dropped, a column named like an identifier with a different value in every row as data.id."""
    roles, n = _Roles(), len(frame)
    for name in columns:
        if name == target:
            continue
        series = frame[name]
        ct = T.column_type(series, name)
        if ct.kind in ("empty", "sparse"):
            roles.drop[name] = ct.reason
        elif roles.id_col is None and _ID_NAME.search(name) and series.nunique(dropna=False) == n:
            roles.id_col = name
        elif ct.kind == "identifier" or ct.offer == "identifier":
            roles.drop[name] = ct.reason
        elif ct.offer == "categorical":
            roles.codes[name] = ct.reason
        elif ct.kind in ("numeric", "boolean"):
            roles.numeric[name] = ct.reason
        elif ct.kind == "date":
            roles.dates[name] = ct
        elif ct.kind == "text":
            roles.text[name] = ct.reason
        else:
            roles.categorical[name] = ct.reason
            if ct.embedding_dim:
                roles.embedded[name] = ct.embedding_dim
    return roles


def _missing_policy(frame: pd.DataFrame, roles: _Roles, target: str) -> tuple[dict[str, int], int, str, str]:
    """(missing values per feature, rows missing the target, the preprocessing.missing to suggest, why).

    Never `error`: the sample in hand having no gaps says nothing of the rows predict will get, and
    `error` stops predict at the first gap. A fill policy fills a gap in training and at predict time
    alike, from the training rows: the median of a numeric column (streamed: of the stream's
    sample of rows), the most frequent value of any other."""
    missing = {}
    for name in roles.features:
        present = T.present_values(frame[name])
        count = len(frame) - len(present)
        if name in roles.numeric and not pd.api.types.is_numeric_dtype(frame[name].dtype):
            count += int(present.map(unknown_mark).sum())  # "?" in a column of numbers written as text
        if count:
            missing[name] = count
    target_missing = int(frame[target].isna().sum())
    numbers = bool(roles.numeric or roles.dates)
    if not numbers:
        return missing, target_missing, "most_frequent", "each column's most frequent value"
    return missing, target_missing, "median", "a numeric column's median, any other's most frequent value"


# init's validation share of the non-test rows: early stopping and the schedule need few rows, the
# model gains from the rest (against 0.2, over three seeds: 28 instead of 25 of 30 fits within 1% of the
# boosting on bench/tables.py's ten tables, 32 instead of 28 of 45 on fifteen tables not tuned on)
VALIDATION_SHARE = 0.1


# Below TINY_ROWS training rows, init's model is the mean of ENSEMBLE_FOLDS models (data.split.refit:
# ensemble), each trained on 4/5 of the non-test rows and stopped early on the other fifth. Over three
# seeds against one model (validation 0.1), on the nine `bench/tables.py --tiny` tables: 23 instead of
# 21 of 27 fits within 1% of the boosting, mean ratios 1.049, 1.020, 1.068 instead of 1.008, 1.006,
# 0.991; on the five --holdout tables that small: 9 instead of 8 of 15, mean ratios 0.996, 0.996,
# 1.004 instead of 0.973, 0.989, 1.004. About 5x the fit time (a few seconds at this size). Not
# below ENSEMBLE_MIN_ROWS non-test rows (the smallest table measured had 151), nor where a class has
# fewer rows than folds (stratified folds could not all hold it).
ENSEMBLE_FOLDS = 5
ENSEMBLE_MIN_ROWS = 150


def ensemble_folds(labels: pd.Series, classes: bool, rows: int, fit_rows: int) -> int:
    """The data.split.folds init writes (with refit: ensemble) for `rows` non-test rows of which one
    model would train on `fit_rows`: ENSEMBLE_FOLDS for a table that small, else 1."""
    if fit_rows >= TINY_ROWS or rows < ENSEMBLE_MIN_ROWS or not folds_hold_classes(labels, classes, rows):
        return 1
    return ENSEMBLE_FOLDS


def folds_hold_classes(labels: pd.Series, classes: bool, rows: int) -> bool:
    """Whether every class has ENSEMBLE_FOLDS rows among the `rows` non-test rows (its share of them),
    so stratified folds can each hold it; always for a regression."""
    if not classes:
        return True
    counts = labels.dropna().value_counts()
    return not counts.empty and int(counts.min()) * rows >= ENSEMBLE_FOLDS * len(labels)


def _fractions(n: int, test_file: bool = False) -> tuple[float, float]:
    """Test and validation fractions that leave rows in every part (0 where the data is too small);
    no test fraction with a test file."""
    test = 0.2 if not test_file and n_held_out(0.2, n) >= 1 and n - n_held_out(0.2, n) >= 2 else 0.0
    rest = n - n_held_out(test, n)
    share = VALIDATION_SHARE
    validation = share if n_held_out(share, rest) >= 1 and rest - n_held_out(share, rest) >= 1 else 0.0
    return test, validation


def _render(path: Path, frame: pd.DataFrame, target: str, task: str, what: str, classes: bool, roles: _Roles,
            official: bool, paths: dict[str, str], output: Path | None, read: str = "") -> str:
    missing, target_missing, policy, fill = _missing_policy(frame, roles, target)
    test_file = "test" in paths
    test, validation = _fractions(len(frame), test_file)
    rest = len(frame) - n_held_out(test, len(frame))  # the rows outside the test split
    folds = 1 if official else ensemble_folds(frame[target], classes, rest, rest - n_held_out(validation, rest))
    out = [f"# Starting config for {show_name(path, 200)}: {len(frame)} rows"
           + (f" ({read})" if read else "") + f"; target {_q(target)} ({what}).",
           "# Run it with: nettrain fit THIS_FILE   (check it first with: nettrain validate THIS_FILE)"]
    if output is not None:
        out.append("# Paths in this file are relative to the folder that holds it.")
    elif not all(Path(p).is_absolute() for p in paths.values()):
        out.append("# paths are relative to the current directory; save this file here or use --output")
    out += ["",
            "# data: the file, the label column, and how rows are split into train/validation/test"
            if not test_file else
            "# data: the training file, its test file, the label column, and the "
            + ("folds" if folds > 1 else "validation rows") + " taken from the training file",
            "data:"]
    out += _column_comments(roles)
    for key, value in paths.items():
        out.append(f"  {key}: {_q(value)}")
    out += [f"  target: {_q(target)}",
            f"  task: {task}                # inferred from the target; 'auto' infers it again at each run"]
    if roles.id_col:
        out.append(f"  id: {_q(roles.id_col)}                # never a feature; predict passes it through")
    if roles.drop:
        out.append("  drop:")
        for name, why in roles.drop.items():
            out.append(f"    - {_q(name)}              # {why}")
    out += _columns_block(roles)
    if official:
        out.append("  # the file holds its own split: its x_test/y_test rows are the test split, validation rows "
                   "come from x_train/y_train")
    elif test_file:
        out.append("  # the test rows are the test file's; "
                   + ("the folds are of the training file" if folds > 1 else
                      "validation rows come from the training file"))
    head = "" if official or test_file else f"test: {test}, "
    tail = ", stratify: true}" if classes else "}"
    one_model = f"{{{head}validation: {validation}, shuffle: true{tail}"
    if folds > 1:
        out += [f"  split: {{{head}folds: {folds}, refit: ensemble, shuffle: true{tail}",
                f"  # {rest} rows to learn from: the model is the mean of {folds} models, each trained on "
                f"{folds - 1}/{folds} of them and stopped early",
                f"  # on the other 1/{folds} (on real tables under {TINY_ROWS:,} rows: better than one model, "
                f"for about {folds}x the fit time);",
                f"  # one model instead: split: {one_model} (see data.split.refit)"]
    else:
        out.append(f"  split: {one_model}" + (f"    # {validation:.0%} for validation (early stopping needs few "
                                               "rows; the model gains from the rest)" if validation else ""))
    if validation > 0 and not official and folds == 1 and folds_hold_classes(frame[target], classes, rest):
        out.append("  # steadier scores for about 5x the fit time: split: {folds: 5, refit: ensemble} (the model "
                   "is then the mean of 5, each trained on 4/5 of these rows; see data.split.refit)")
    n_categorical = len(roles.categorical) + len(roles.codes)
    encoded = f"{n_categorical - len(roles.embedded)} categorical one-hot encoded" + \
        (f", {len(roles.embedded)} embedded" if roles.embedded else "")
    out += ["",
            f"# preprocessing: {len(roles.numeric)} numeric column(s) by numeric: auto "
            + ("(each standardized and encoded piecewise-linearly between its training quantiles; heavy-tailed "
               "ones as quantile scores: on real tables 1-2 points better than standard)"
               if len(roles.numeric) <= PIECEWISE_MAX_COLUMNS else
               f"(more than {PIECEWISE_MAX_COLUMNS}: each standardized, as numeric: standard, one feature a column)")
            + (f" (and the parts of {len(roles.dates)} date column(s))" if roles.dates else "")
            + f", {encoded}; missing values: "
            + (", ".join(f"{_q(c)} {k}" for c, k in missing.items()) or "none in the features")
            + (f"; target missing in {target_missing} rows (dropped)" if target_missing else ""),
            f"# missing: {policy}: a gap is filled from the training rows ({fill}), in training and at",
            "# predict time alike (error would stop predict at the first gap in new data); rows without a target "
            "are dropped",
            "preprocessing:",
            "  numeric: auto",
            "  categorical: one_hot",
            f"  missing: {policy}",
            ""]
    fit_rows = rest - (rest // folds if folds > 1 else n_held_out(validation, rest))
    out += _model(fit_rows) + _training(fit_rows)
    out += (["# callbacks: stop when the validation loss has not improved for 10 epochs, keep the best weights;",
            "# halve the learning rate when it has not improved for 3 (a finer last stretch before the stop)",
            "callbacks:",
            "  early_stopping: {monitor: val_loss, patience: 10, restore_best_weights: true}",
            "  lr_schedule: {type: reduce_on_plateau, monitor: val_loss, factor: 0.5, patience: 3}"]
            if validation > 0 or folds > 1 else
            ["callbacks:",
             "  # early_stopping and lr_schedule need validation rows; this data set is too small for them"])
    if validation == 0:
        out.append("  checkpoint: {monitor: loss}")
    return "\n".join(out + [""])


def _columns_block(roles: _Roles) -> list[str]:
    """`data.columns`: the types init chose that fit would not choose by itself (dates it would, but
    the config says so), each with why."""
    entries = []
    for name, ct in roles.dates.items():
        parts = ", ".join(T.date_parts(ct))
        entries.append((f"{_q(name)}: {{type: date}}", f"{ct.reason}: {parts} as numbers ({name}.year, ...)"))
    for name, why in roles.codes.items():
        entries.append((f"{_q(name)}: {{type: categorical}}",
                        f"{why} taken as categories, a guess (counts usually start at 0 and stay numbers): "
                        "delete this line to use them as numbers"))
    for name, dim in roles.embedded.items():
        entries.append((f"{_q(name)}: {{type: categorical, embedding_dim: {dim}}}",
                        f"{roles.categorical[name].split(':')[0]}: an embedding instead of one-hot"))
    for name, why in roles.text.items():
        entries.append((f"{_q(name)}: {{type: text, max_tokens: 10000, output_mode: multi_hot}}",
                        "long free text: tokenized instead of one-hot"))
    if not entries:
        return []
    return ["  columns:"] + [f"    {entry}    # {why}" for entry, why in entries]


# The model and training init writes, chosen on bench/tables.py's ten real tables (issue 22): capacity,
# batch size and learning rate grow with the training rows; no dropout or weight decay (both cost 0.1-2
# points there at these sizes: early stopping that keeps the best epoch is the regularizer).
TINY_NET = [128, 64]            # below TINY_ROWS training rows (see below)
SMALL_NET = [64, 32]            # from TINY_ROWS to LARGE_ROWS (wider layers lost on 1.4k-3.6k-row tables)
LARGE_NET = [128, 128, 64]      # from LARGE_ROWS on (+0.5 to +4 points on the 5k-35k-row tables)
# Below TINY_ROWS, 128-64 against 64-32 over three seeds, on 14 tables of 360-950 training rows that
# no other default was chosen on (bench/tables.py --holdout and --tiny): 29 instead of 23 of 42 fits
# within 1% of the boosting, the mean ratio higher on both sets.
TINY_ROWS, LARGE_ROWS = 1000, 5000
# batch size: about BATCH_STEPS optimizer steps per epoch, a power of two within [BATCH_MIN, BATCH_MAX]
BATCH_STEPS, BATCH_MIN, BATCH_MAX = 100, 32, 1024
BASE_RATE = 0.001               # Adam's default rate, at BATCH_MIN


def batch_size_for(rows: int) -> int:
    """The batch size init writes for `rows` training rows: a power of two near rows / BATCH_STEPS,
    kept within [BATCH_MIN, BATCH_MAX] (small tables keep Keras's 32)."""
    if rows <= BATCH_MIN * BATCH_STEPS:
        return BATCH_MIN
    return int(min(BATCH_MAX, 2 ** round(math.log2(rows / BATCH_STEPS))))


def learning_rate_for(batch: int) -> float:
    """Adam's rate for `batch`: BASE_RATE at BATCH_MIN, times the square root of the batch's growth
    (the square-root scaling rule for Adam-like optimizers)."""
    return round(BASE_RATE * math.sqrt(batch / BATCH_MIN), 6)


def _model(rows: int) -> list[str]:
    """`model:`: two hidden layers for a small table (wider below TINY_ROWS training rows), three wider
    ones from LARGE_ROWS."""
    if rows < TINY_ROWS:
        units, why = TINY_NET, (f"wider than for a few thousand rows, for {rows} training rows (on real tables "
                                "this small it did better)")
    elif rows < LARGE_ROWS:
        units, why = SMALL_NET, f"a small network for {rows} training rows (wider ones overfit a table this small)"
    else:
        units, why = LARGE_NET, f"wider layers for {rows} training rows"
    return [f"# model: {len(units)} hidden layers, {why}; the output layer follows from the task (output: auto).",
            "# No dropout or weight decay: on real tables they cost more than they gave at this size; early",
            "# stopping below keeps the best epoch's weights instead.",
            "model:",
            "  layers:"] + [f"    - {{type: Dense, units: {u}, activation: relu}}" for u in units] + [
            "  output: auto",
            ""]


def _training(rows: int) -> list[str]:
    """`training:` with the batch size and learning rate for `rows` training rows, and why."""
    batch = batch_size_for(rows)
    why = ("Keras's default, for a table this small" if batch == BATCH_MIN else
           f"about {rows // batch} steps per epoch over {rows} training rows (32 would take {-(-rows // 32)})")
    rate = learning_rate_for(batch)
    rate_why = ("Adam's default" if batch == BATCH_MIN else
                f"Adam's 0.001 at batch 32, times sqrt({batch}/32) for the larger batch")
    return ["# training: loss and metrics follow from the task (auto)",
            "training:",
            "  loss: auto",
            f"  optimizer: {{name: adam, learning_rate: {rate:g}}}    # {rate_why}",
            "  metrics: auto",
            "  epochs: 50                # an upper bound: early stopping ends most runs well before",
            f"  batch_size: {batch}            # {why}",
            ""]


def _column_comments(roles: _Roles) -> list[str]:
    """`# numeric columns: a, b` ...: what each column is taken for, and why."""
    lines = []
    if roles.numeric:
        lines.append(f"  # numeric columns: {list_names(list(roles.numeric), 30)}")
    for name, why in roles.numeric.items():
        if why.startswith("numbers written") and why != T.TEXT_NUMBERS:  # $1,234.50, 12.5%, ?
            lines.append(f"  # numeric: {show_name(name)} ({why})")
    for name, why in roles.codes.items():
        lines.append(f"  # categorical (integer codes, one-hot): {show_name(name)} ({why})")
    for name, why in roles.categorical.items():
        how = "embedded" if name in roles.embedded else "one-hot"
        lines.append(f"  # categorical ({how}): {show_name(name)} ({why})")
    for name, ct in roles.dates.items():
        lines.append(f"  # date (numeric parts): {show_name(name)} ({ct.reason})")
    for name, why in roles.text.items():
        lines.append(f"  # text (tokenized): {show_name(name)} ({why})")
    if roles.id_col:
        lines.append(f"  # id: {show_name(roles.id_col)} (named like an identifier, a different value in every row; "
                     "not a feature)")
    for name, why in roles.drop.items():
        lines.append(f"  # dropped: {show_name(name)} ({why})")
    return lines


def _summary(path, target, what, roles: _Roles, read: str = "") -> str:
    categorical = [*roles.codes, *roles.categorical]
    parts = [f"{len(roles.numeric)} numeric",
             f"{len(categorical)} categorical" + (f" ({list_names(categorical, 5)})" if categorical else "")]
    if roles.dates:
        parts.append(f"{len(roles.dates)} date ({list_names(list(roles.dates), 5)})")
    parts.append(f"{len(roles.text)} text" + (f" ({list_names(list(roles.text), 5)})" if roles.text else ""))
    line = (f"init: {show_name(path, 200)}" + (f" ({read})" if read else "")
            + f": target '{show_name(target)}' ({what}); features: {', '.join(parts)}")
    if roles.id_col:
        line += f"; id column: {show_name(roles.id_col)}"
    drop = roles.drop
    if drop:
        line += "; dropped: " + ", ".join(f"{show_name(n)} ({why})" for n, why in list(drop.items())[:5])
        if len(drop) > 5:
            line += f", ... ({len(drop)} in all)"
    return line


def check_output(output: Path, data: Path, force: bool) -> Path:
    """Where `init --output` may write (UsageError saying why not): a .yaml/.yml file that is not the
    data file, not inside a run directory, and (without `force`) not there yet. The path rules are
    the one output-path policy, `nettrain.store.paths.check_output_path`."""
    from nettrain.store.paths import check_output_path

    path = Path(output)
    if path.suffix.lower() not in CONFIG_EXTENSIONS:
        raise UsageError(f"--output {path}: a config file name ends in .yaml or .yml; got "
                         f"{path.suffix or '(no extension)'!r}")
    return check_output_path(path, writer="init", wanted="a file name ending in .yaml", force=force,
                             not_the=[(data, "the data file; choose another name for the config")])


def write_config_file(path: Path, text: str, force: bool) -> None:
    """Write atomically: a temporary file in the same folder, then renamed into place; without
    `force` never over a file that appeared meanwhile (a hard link refuses an existing name)."""
    import tempfile

    from nettrain.store import atomic

    exists = f"--output {path} already exists; choose another name, or replace it with --force"
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{atomic.TEMP_MARK}", suffix=path.suffix, dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, atomic.FILE_MODE)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise UsageError(exists) from None
            except OSError:  # a filesystem without hard links: a plain rename after a last check
                if path.exists():
                    raise UsageError(exists) from None
                os.replace(tmp, path)
    except OSError as e:  # disk full, a folder that turned read-only: exit 1, nothing left behind
        raise WriteFailed(path, e) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


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
