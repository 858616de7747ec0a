"""`suggest_config(path, target)`: the YAML text `nettrain init` prints or writes for a data file.

The config says in comments which columns it treats as numeric, categorical, text, the id, and
which it drops, and why; `Suggestion.summary` says the same on one line (the CLI prints it on
stderr). `data.source` is written so that the config works where it is meant to live: relative
to the folder of `output` when the config is written to a file, else as given (relative to the
current directory, which a comment says).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nettrain.data.columns import as_strings, auto_kind, to_numbers
from nettrain.data.sources import SOURCE, read_parts
from nettrain.data.words import list_names, show_name
from nettrain.data.split import n_held_out
from nettrain.errors import ConfigError, UsageError, WriteFailed
from nettrain.words import did_you_mean

_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$)")
CONFIG_EXTENSIONS = (".yaml", ".yml")


@dataclass
class Suggestion:
    text: str            # the config file
    summary: str         # one line: the task and what each column was taken for


def suggest_config(path: Path, target: str, *, output: Path | None = None) -> str:
    """A starting config for `path` with label column `target`; loads cleanly with load_config
    (from `output`'s folder when given, else from the current directory)."""
    return suggest(path, target, output=output).text


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
    """What `init` made of each column besides the target."""

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, str] = field(default_factory=dict)  # column -> why
    text: dict[str, str] = field(default_factory=dict)
    id_col: str | None = None
    drop: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.numeric + list(self.categorical) + list(self.text)


def suggest(path: Path, target: str, *, output: Path | None = None) -> Suggestion:
    from nettrain.config import load_config
    from nettrain.data.task import infer_task

    frames = read_parts(path)
    official = SOURCE not in frames  # an .npz holding its own split: the config keeps it
    frame = frames[SOURCE] if not official else pd.concat([frames["train"], frames["test"]], ignore_index=True)
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise UsageError(f"{path}: no column '{show_name(target)}' to use as the target; "
                         f"{did_you_mean(target, columns)}columns: {list_names(columns)}")
    _check_target(path, frame[target], target)
    roles = _column_roles(path, frame, columns, target)
    if not roles.features:
        raise UsageError(f"{path}: no usable feature columns besides the target '{show_name(target)}'"
                         + (f" (columns: {list_names(columns)})" if len(columns) > 1 else
                            "; the file holds only the target column"))
    try:
        probe = load_config(None, data={"data": {"source": str(path), "target": target}}, check_names=False)
        task, classes = infer_task(probe, frame[target], target)
    except ConfigError as e:
        raise UsageError(f"{path}: {e.detail}") from None
    what = f"{task}, {len(classes)} classes" if classes else "regression"
    text = _render(path, frame, target, task, what, bool(classes), roles, official, source_for(path, output), output)
    return Suggestion(text=text, summary=_summary(path, target, what, roles.numeric, roles.categorical, roles.text,
                                                  roles.id_col, roles.drop))


def _column_roles(path: Path, frame: pd.DataFrame, columns: list[str], target: str) -> _Roles:
    roles, n = _Roles(), len(frame)
    for name in columns:
        if name == target:
            continue
        series = frame[name]
        if not _present(series).any():
            roles.drop[name] = "every value is missing"
            continue
        if roles.id_col is None and _ID_NAME.search(name) and series.nunique(dropna=False) == n:
            roles.id_col = name
            continue
        try:
            kind = auto_kind(series, name, str(path))
        except UsageError:
            roles.drop[name] = "dates/times: convert them to numbers to use them"
            continue
        if kind != "categorical":
            roles.numeric.append(name)
            continue
        values = series.dropna().astype(str)
        chars, words = values.str.len().median(), values.str.count(" ").median() + 1
        if len(values) and chars > 30 and words >= 4:
            roles.text[name] = f"long free text: median {chars:.0f} characters, {words:.0f} words"
        elif n >= 20 and values.nunique() == n:
            roles.drop[name] = "every value is different: looks like an identifier"
        else:
            roles.categorical[name] = f"text values, {values.nunique()} distinct"
    return roles


def _missing_policy(frame: pd.DataFrame, roles: _Roles, target: str) -> tuple[dict[str, int], int, str]:
    """(missing values per feature, rows missing the target, the preprocessing.missing to suggest)."""
    missing = {}
    for name in roles.features:
        series = frame[name]
        count = int(np.isnan(to_numbers(series)[0]).sum()) if name in roles.numeric else int(series.isna().sum())
        if count:
            missing[name] = count
    target_missing = int(frame[target].isna().sum())
    if any(c in roles.numeric for c in missing):
        return missing, target_missing, "median"
    if missing:
        return missing, target_missing, "most_frequent"
    return missing, target_missing, "drop_rows" if target_missing else "error"


def _fractions(n: int) -> tuple[float, float]:
    """Test and validation fractions that leave rows in every part (0 where the data is too small)."""
    test = 0.2 if n_held_out(0.2, n) >= 1 and n - n_held_out(0.2, n) >= 2 else 0.0
    rest = n - n_held_out(test, n)
    validation = 0.2 if n_held_out(0.2, rest) >= 1 and rest - n_held_out(0.2, rest) >= 1 else 0.0
    return test, validation


def _render(path: Path, frame: pd.DataFrame, target: str, task: str, what: str, classes: bool, roles: _Roles,
            official: bool, source: str, output: Path | None) -> str:
    missing, target_missing, policy = _missing_policy(frame, roles, target)
    test, validation = _fractions(len(frame))
    out = [f"# Starting config for {show_name(path, 200)}: {len(frame)} rows; target {_q(target)} ({what}).",
           "# Run it with: nettrain fit THIS_FILE   (check it first with: nettrain validate THIS_FILE)"]
    if output is not None:
        out.append("# Paths in this file are relative to the folder that holds it.")
    elif not Path(source).is_absolute():
        out.append("# paths are relative to the current directory; save this file here or use --output")
    out += ["",
            "# data: the file, the label column, and how rows are split into train/validation/test",
            "data:"]
    out += _column_comments(roles.numeric, roles.categorical, roles.text, roles.id_col, roles.drop)
    out += [f"  source: {_q(source)}",
            f"  target: {_q(target)}",
            f"  task: {task}                # inferred from the target; 'auto' infers it again at each run"]
    if roles.id_col:
        out.append(f"  id: {_q(roles.id_col)}                # never a feature; predict passes it through")
    if roles.drop:
        out.append("  drop:")
        for name, why in roles.drop.items():
            out.append(f"    - {_q(name)}              # {why}")
    if roles.text:
        out.append("  columns:                # long free text: tokenized instead of one-hot")
        for name in roles.text:
            out.append(f"    {_q(name)}: {{type: text, max_tokens: 10000, output_mode: multi_hot}}")
    if official:
        out.append("  # the file holds its own split: its x_test/y_test rows are the test split, validation rows "
                   "come from x_train/y_train")
        split = f"{{validation: {validation}, shuffle: true"
    else:
        split = f"{{test: {test}, validation: {validation}, shuffle: true"
    split += ", stratify: true}" if classes else "}"
    out.append(f"  split: {split}")
    out += ["",
            f"# preprocessing: {len(roles.numeric)} numeric column(s) standardized, {len(roles.categorical)} "
            "categorical one-hot encoded; missing values: "
            + (", ".join(f"{_q(c)} {k}" for c, k in missing.items()) or "none in the features")
            + (f"; target missing in {target_missing} rows (dropped)" if target_missing else ""),
            "preprocessing:",
            "  numeric: standard",
            "  categorical: one_hot",
            f"  missing: {policy}",
            ""]
    out += _MODEL_AND_TRAINING
    out += ["# callbacks: stop when the validation loss has not improved for 10 epochs, keep the best weights",
            "callbacks:",
            "  early_stopping: {monitor: val_loss, patience: 10, restore_best_weights: true}"
            if validation > 0 else
            "  # early_stopping needs validation rows; this data set is too small for them"]
    if validation == 0:
        out.append("  checkpoint: {monitor: loss}")
    return "\n".join(out + [""])


_MODEL_AND_TRAINING = [
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
]


def _column_comments(numeric, categorical, text, id_col, drop) -> list[str]:
    """`# numeric (standardized): a, b` ...: what each column is taken for, and why."""
    lines = []
    if numeric:
        lines.append(f"  # numeric columns (standardized): {list_names(numeric, 30)}")
    for name, why in categorical.items():
        lines.append(f"  # categorical (one-hot): {show_name(name)} ({why})")
    for name, why in text.items():
        lines.append(f"  # text (tokenized): {show_name(name)} ({why})")
    if id_col:
        lines.append(f"  # id: {show_name(id_col)} (named like an identifier, a different value in every row; "
                     "not a feature)")
    for name, why in drop.items():
        lines.append(f"  # dropped: {show_name(name)} ({why})")
    return lines


def _summary(path, target, what, numeric, categorical, text, id_col, drop) -> str:
    parts = [f"{len(numeric)} numeric",
             f"{len(categorical)} categorical" + (f" ({list_names(categorical, 5)})" if categorical else ""),
             f"{len(text)} text" + (f" ({list_names(text, 5)})" if text else "")]
    line = f"init: {show_name(path, 200)}: target '{show_name(target)}' ({what}); features: {', '.join(parts)}"
    if id_col:
        line += f"; id column: {show_name(id_col)}"
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
