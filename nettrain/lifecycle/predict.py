"""`nettrain predict`: run a trained model on raw rows; predictions in the original labels.

Output columns, rows in input order: the id column (when the schema has one and the input holds
it), `prediction` (the class label as the target held it: an integer for integer labels, a bool,
the text; or the number for regression), and with `proba` one `proba_<class>` column per class,
named after the class (`proba_-1`, `proba_10`, `proba_yes`). A sigmoid head gives p for the
second class and 1 - p for the first; a tanh head (hinge losses) gives a score s in [-1, 1],
mapped to (s + 1) / 2 for the second class (clipped to [0, 1]) so that the predicted class is the
one with proba > 0.5. The input's target column, when present, is ignored.

`--output FILE` (.csv or .parquet) is written atomically; missing parent folders are created.
Predict never overwrites user data or a run: the output may not be the input file (by any path
spelling, symlink or hard link), may not lie inside a run directory (a folder holding run.json,
or a folder directly inside one), and may not pass through an existing file used as a folder.
All of this is checked before the model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from nettrain.data.outputs import existing_folder as _existing_folder
from nettrain.data.outputs import run_dir_around as _run_dir_around
from nettrain.data.outputs import same_file as _same_file
from nettrain.errors import UsageError
from nettrain.lifecycle.target import Target, batch_size, load_model, model_feed, resolve_target
from nettrain.store import atomic

OUTPUT_KINDS = (".csv", ".parquet")


def check_output(output: str | Path | None, input_path: str | Path | None = None) -> Path | None:
    """The --output path if predictions may be written there (see the module docstring), else UsageError."""
    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_KINDS:
        raise UsageError(f"--output {path}: unknown output type {path.suffix or '(no extension)'!r}; "
                         f"allowed: {', '.join(OUTPUT_KINDS)}")
    try:
        if path.is_dir():
            raise UsageError(f"--output {path} is a folder; give a file name ending in .csv or .parquet")
        if path.exists() and not path.is_file():
            raise UsageError(f"--output {path} exists and is not a regular file; choose another name")
        folder = _existing_folder(path)
        if input_path is not None and _same_file(path, Path(input_path)):
            raise UsageError(f"--output {path} is the input file {input_path}; predict never overwrites its input: "
                             "choose another output file")
        run = _run_dir_around(folder)
        if run is not None:
            raise UsageError(f"--output {path}: {run} is a nettrain run directory (it holds run.json); predict "
                             "never writes into a run: choose a file outside it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"--output {path}: the folder {folder} is not writable")
    except (OSError, RuntimeError) as e:  # a name too long, a folder without access, a symlink loop
        raise UsageError(f"--output {path}: cannot use this path: {getattr(e, 'strerror', None) or e}") from None
    return path


def predict(target_path: str | Path, input_path: str | Path, *, output: str | Path | None = None,
            proba: bool = False) -> pd.DataFrame:
    """Predictions for the rows of `input_path` as a DataFrame; also written to `output` when given."""
    from nettrain.data import prepare_inputs, read_table

    out_path = check_output(output, input_path)
    target = resolve_target(target_path)
    if proba and target.label_mode == "regression":
        raise UsageError("--proba gives class probabilities, but this is a regression model")
    frame = read_table(input_path)
    if target.schema.target is not None and target.schema.target in frame.columns:
        # the labels are not needed to predict: gaps or labels unknown to the model are no error here
        frame = frame.drop(columns=[target.schema.target])
    rows = prepare_inputs(frame, target.schema, require_target=False, source=str(input_path))
    model = load_model(target)
    raw = predict_rows(model, rows, batch_size(target), str(input_path))
    check_outputs(target, raw)
    result = prediction_frame(target, raw, rows.ids, proba=proba)
    if out_path is not None:
        write_frame(result, out_path)
    return result


def predict_rows(model, rows, batch: int, where: str) -> np.ndarray:
    from nettrain.training import feed, runtime

    x = model_feed(model, rows, where)
    for tensor in model.inputs:
        want, have = tuple(tensor.shape), tuple(x[tensor.name].shape)
        if len(want) == len(have) and len(want) > 1 and want[-1] is not None and want[-1] != have[-1]:
            raise UsageError(f"{where}: the model's input {tensor.name!r} takes {want[-1]} values per row but its "
                             f"feature schema makes {have[-1]}; the .h5 file and its nettrain metadata do not "
                             "belong together")
    with runtime.quiet_native_stderr():
        pred = model.predict(feed.evaluation_dataset(x, None, batch), verbose=0)
    pred = np.asarray(pred)
    return pred.reshape(len(pred), -1)


def check_outputs(target: Target, raw: np.ndarray) -> None:
    """The model's outputs per row must fit its metadata (one score for a binary head, one per class)."""
    mode = target.label_mode
    if mode == "regression":
        return
    n = len(target.schema.class_names or [])
    want = 1 if mode == "binary" else n
    if raw.shape[1] != want:
        raise UsageError(f"{target.model_path}: the model gives {raw.shape[1]} output(s) per row but its metadata "
                         f"describes {want} ({mode} labels, {n} classes); the .h5 file and its nettrain metadata "
                         "do not belong together")


def probabilities(target: Target, raw: np.ndarray) -> np.ndarray:
    """(n, n_classes) class probabilities from the model outputs (see the module docstring)."""
    if target.label_mode == "binary":
        p = raw[:, 0].astype(np.float64)
        if target.threshold == 0.0:  # tanh head: a score in [-1, 1]
            p = np.clip((p + 1.0) / 2.0, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    return raw


def prediction_frame(target: Target, raw: np.ndarray, ids: np.ndarray | None, *, proba: bool) -> pd.DataFrame:
    from nettrain.model.outputs import predicted_classes

    columns: dict[str, object] = {}
    schema = target.schema
    if ids is not None and schema.id_column is not None:
        columns[schema.id_column] = ids
    if target.label_mode == "regression":
        if raw.shape[1] == 1:
            columns["prediction"] = raw[:, 0]
        else:
            for j in range(raw.shape[1]):
                columns[f"prediction_{j}"] = raw[:, j]
    else:
        columns["prediction"] = class_values(schema)[predicted_classes(raw, target.label_mode, target.threshold)]
        if proba:
            probs = probabilities(target, raw)
            for j, name in enumerate(schema.class_names):
                columns[f"proba_{name}"] = probs[:, j]
    return pd.DataFrame(columns)


def class_values(schema) -> np.ndarray:
    """The classes in output order as an array of the target's own type: int64 for integer labels
    (also 1.0, 2.0 of a float column with gaps), bool, float, or text (object) for everything else,
    including models written before the type was recorded."""
    labels = schema.class_labels or []
    kinds = {type(v) for v in labels}
    if kinds == {int}:
        return np.asarray(labels, dtype=np.int64)
    if kinds == {bool}:
        return np.asarray(labels, dtype=bool)
    if kinds == {float}:
        return np.asarray(labels, dtype=np.float64)
    return np.asarray([str(v) for v in labels], dtype=object)


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output {path}: cannot create the folder {path.parent}: {e.strerror or e}") from None
    if path.suffix.lower() == ".parquet":
        with atomic.atomic_path(path) as tmp:
            try:
                frame.to_parquet(tmp, index=False)
            except Exception as e:  # no parquet engine, unwritable
                raise UsageError(f"--output {path}: cannot write parquet: {str(e).splitlines()[0]}") from None
    else:
        atomic.write_text(path, frame.to_csv(index=False))
