"""`nettrain predict`: run a trained model on raw rows; predictions in the original labels.

Output columns, rows in input order: the id column (when the schema has one and the input holds
it), `prediction` (the class name, or the number for regression), and with `proba` one
`proba_<class>` column per class. A sigmoid head gives p for the second class and 1 - p for the
first; a tanh head (hinge losses) gives a score s in [-1, 1], mapped to (s + 1) / 2 for the
second class (clipped to [0, 1]) so that the predicted class is the one with proba > 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nettrain.errors import UsageError
from nettrain.lifecycle.evaluate import batch_size, load_model, model_feed
from nettrain.lifecycle.target import Target, resolve_target
from nettrain.store import atomic

OUTPUT_KINDS = (".csv", ".parquet")


def check_output(output: str | Path | None) -> Path | None:
    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_KINDS:
        raise UsageError(f"--output {path}: unknown output type {path.suffix or '(no extension)'!r}; "
                         f"allowed: {', '.join(OUTPUT_KINDS)}")
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file name ending in .csv or .parquet")
    return path


def predict(target_path: str | Path, input_path: str | Path, *, output: str | Path | None = None,
            proba: bool = False) -> pd.DataFrame:
    """Predictions for the rows of `input_path` as a DataFrame; also written to `output` when given."""
    from nettrain.data import prepare_inputs, read_table

    out_path = check_output(output)
    target = resolve_target(target_path)
    if proba and target.label_mode == "regression":
        raise UsageError("--proba gives class probabilities, but this is a regression model")
    frame = read_table(input_path)
    rows = prepare_inputs(frame, target.schema, require_target=False, source=str(input_path))
    model = load_model(target)
    raw = predict_rows(model, rows, batch_size(target), str(input_path))
    result = prediction_frame(target, raw, rows.ids, proba=proba)
    if out_path is not None:
        write_frame(result, out_path)
    return result


def predict_rows(model, rows, batch: int, where: str) -> np.ndarray:
    from nettrain.training import feed, runtime

    x = model_feed(model, rows, where)
    with runtime.quiet_native_stderr():
        pred = model.predict(feed.evaluation_dataset(x, None, batch), verbose=0)
    pred = np.asarray(pred)
    return pred.reshape(len(pred), -1)


def probabilities(target: Target, raw: np.ndarray) -> np.ndarray:
    """(n, n_classes) class probabilities from the model outputs (see the module docstring)."""
    if target.label_mode == "binary":
        p = raw[:, 0].astype(np.float64)
        if target.threshold == 0.0:  # tanh head: a score in [-1, 1]
            p = np.clip((p + 1.0) / 2.0, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    return raw


def prediction_frame(target: Target, raw: np.ndarray, ids: np.ndarray | None, *, proba: bool) -> pd.DataFrame:
    from nettrain.training.fit import predicted_classes

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
        names = np.asarray(schema.class_names, dtype=object)
        columns["prediction"] = names[predicted_classes(raw, target.label_mode, target.threshold)]
        if proba:
            probs = probabilities(target, raw)
            for j, name in enumerate(schema.class_names):
                columns[f"proba_{name}"] = probs[:, j]
    return pd.DataFrame(columns)


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        with atomic.atomic_path(path) as tmp:
            try:
                frame.to_parquet(tmp, index=False)
            except Exception as e:  # no parquet engine, unwritable
                raise UsageError(f"--output {path}: cannot write parquet: {str(e).splitlines()[0]}") from None
    else:
        atomic.write_text(path, frame.to_csv(index=False))
