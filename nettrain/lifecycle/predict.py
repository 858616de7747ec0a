"""`nettrain predict`: run a trained model on raw rows; predictions in the original labels.

Output columns, rows in input order: the id column (when the schema has one and the input holds
it), `prediction` (the class label as the target held it: an integer for integer labels, a bool,
the text; or the number for regression), and with `proba` one `proba_<class>` column per class,
named after the class (`proba_-1`, `proba_10`, `proba_yes`). A sigmoid head gives p for the
second class and 1 - p for the first; a tanh head (hinge losses) gives a score s in [-1, 1],
mapped to (s + 1) / 2 for the second class (clipped to [0, 1]) so that the predicted class is the
one with proba > 0.5. The input's target column, when present, is ignored.

A CSV/TSV/Parquet input is read in chunks (`data.rows.file_rows`) and the predictions are written as
each chunk is done, so memory stays flat however large the file; a bad value names its row and,
in a CSV/TSV, its line. Other inputs (.jsonl, .npz, .xz/.zip/.zst files) are read whole.

`--output FILE` (.csv or .parquet) is written atomically: every chunk goes into one temporary
file next to FILE, renamed over it at the end; on an error or an interrupt the temporary file is
removed and FILE is left as it was. Missing parent folders are created.
Predict never overwrites user data or a run: the output may not be the input file (by any path
spelling, symlink or hard link), may not lie inside a run directory (a folder holding run.json,
at any depth below it: `store.paths`), and may not pass through an existing file used as a folder.
All of this is checked before the model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np
import pandas as pd

from nettrain.data import contract
from nettrain.data.rows import Rows, aligned, file_rows
from nettrain.data.stream import read_ahead
from nettrain.errors import DataError, UsageError
from nettrain.lifecycle.target import Target, batch_size, execution_rows, load_model, model_outputs, resolve_target
from nettrain.store import atomic, guard
from nettrain.words import first_line

OUTPUT_KINDS = (".csv", ".parquet")


def check_output(output: str | Path | None, input_path: str | Path | None = None,
                 config: dict | None = None) -> Path | None:
    """The --output path if predictions may be written there (see the module docstring), else
    UsageError. The path rules are the one output-path policy, `nettrain.store.paths.check_output_path`;
    the files it may not be are the input and the data files of the model's run (`config`, its saved
    config: `predict RUN new.csv -o train.csv` replaced the run's training file with predictions)."""
    from nettrain.store.paths import check_output_path

    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_KINDS:
        raise UsageError(f"--output {path}: unknown output type {path.suffix or '(no extension)'!r}; "
                         f"allowed: {', '.join(OUTPUT_KINDS)}")
    protect = [] if input_path is None else [
        (input_path, f"the input file {input_path}; predict never overwrites its input: choose another output file")]
    data = config.get("data") if isinstance(config, dict) else None
    for key in ("source", "train", "validation", "test"):
        file = data.get(key) if isinstance(data, dict) else None
        if isinstance(file, str):
            protect.append((file, f"the data file of the model's run (data.{key}: {file}); predict never "
                                  "overwrites a run's data: choose another output file"))
    return check_output_path(path, writer="predict", wanted="a file name ending in .csv or .parquet", not_the=protect)


@dataclass
class Written:
    """What `predict` wrote: the number of rows, the file (None: a stream) and the columns."""

    rows: int
    path: Path | None
    columns: list[str]
    input_check: dict | None = None   # the drift of the input from the run's signature.json (`data.contract`)


def predict(target_path: str | Path, input_path: str | Path, *, output: str | Path | None = None,
            proba: bool = False, to: TextIO | None = None, strict: bool = False,
            notify=None) -> "pd.DataFrame | Written":
    """Predictions for the rows of `input_path`, in input order.

    With `output` (.csv or .parquet) they are written there chunk by chunk, atomically, and only a
    summary (`Written`) comes back; with `to` (a text stream such as sys.stdout) they are written
    to it as CSV chunk by chunk (the header once). A CSV/TSV/Parquet input is read in chunks, so
    neither holds more than a chunk in memory. With neither, the predictions come back as one
    DataFrame (every row in memory: for small inputs).

    The input is checked against the run's signature.json (`data.contract`): the summary of any
    drift goes to `notify` (one line per drifting column; nothing when the rows match), and the report
    into the result (`Written.input_check`, or the DataFrame's `attrs["input_check"]`). With `strict`
    a drift is a DataError before anything is predicted: every row is checked first.
    """
    if output is not None and to is not None:
        raise UsageError("predict: give either an output file or a stream to write to, not both")
    from nettrain.lifecycle import served

    if served.is_export(target_path):  # an exported SavedModel folder or .onnx file (nettrain export)
        target = served.served_target(target_path)
        contract_dir = target.model_path.parent  # the export keeps a copy of the run's signature.json
        out_path = check_output(output, input_path)

        def frames_of(rows: Rows) -> Iterator[pd.DataFrame]:
            return served.prediction_frames(target, rows, proba=proba)
    else:
        target = resolve_target(target_path)
        contract_dir = target.run_dir
        out_path = check_output(output, input_path, target.config)

        def frames_of(rows: Rows) -> Iterator[pd.DataFrame]:
            return prediction_frames(target, load_model(target), rows, proba=proba)
    if proba and target.label_mode == "regression":
        raise UsageError("--proba gives class probabilities, but this is a regression model")
    from nettrain.data.images import is_image_model

    if is_image_model(target):  # a model of an image folder: files, not rows
        return _predict_images(target, Path(input_path), frames_of, out_path, to, notify)
    watch = contract.watch_for(contract_dir)
    rows = file_rows(input_path, target.schema, require_target=False, watch=watch)
    rows.check()  # a missing column or a bad value in the first rows: reported before the model loads
    if strict and watch is not None:
        for _ in rows:  # every row checked before the model loads and anything is written
            pass
        contract.conclude(watch, rows.where, strict=True, notify=notify)
    out = _written(frames_of, rows, out_path, to)  # the model loads here
    report = watch.report if strict and watch is not None else contract.conclude(watch, rows.where, strict=False,
                                                                               notify=notify, run_dir=contract_dir)
    checked = report.to_dict() if report is not None else None
    if isinstance(out, Written):
        out.input_check = checked
    else:
        out.attrs["input_check"] = checked
    return out


def _written(frames_of, rows, out_path: Path | None, to: TextIO | None) -> "pd.DataFrame | Written":
    """The prediction frames of `rows` written to `out_path` (its folder made first), or to `to`, or
    joined into one DataFrame."""
    if out_path is not None:
        _make_folder(out_path)
    frames = frames_of(rows)
    if out_path is not None:
        return write_file(frames, out_path)
    if to is not None:
        return write_stream(frames, to)
    parts = list(frames)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else pd.DataFrame())


def _predict_images(target: Target, input_path: Path, frames_of, out_path: Path | None, to: TextIO | None,
                    notify) -> "pd.DataFrame | Written":
    """Predictions for image files (an image folder, an image file or a .txt list of them: `data.images.
    listed_files`), one row per file: its path, then the prediction columns. An unreadable file is
    refused or left out (told on `notify` with a count), as the run's data.images.bad says."""
    from nettrain.data.images import ImageSpec, bad_message, image_rows, listed_files

    spec = ImageSpec.of(((target.config or {}).get("data") or {}).get("images"))
    files = listed_files(input_path)
    skipped: list = []
    rows = image_rows(files, spec, str(input_path), skipped=skipped)
    rows.check()  # the first chunk decoded (a bad file under bad: error) before the model loads
    out = _written(frames_of, rows, out_path, to)
    if skipped and notify is not None:
        notify(f"warning: {bad_message(skipped, len(files))}; left out, no prediction (data.images.bad: skip)")
    return out


def prediction_frames(target: Target, model, rows: Rows, *, proba: bool) -> Iterator[pd.DataFrame]:
    """One frame of predictions per chunk of `rows` (see `prediction_frame`), in order."""
    batch = batch_size(target)
    with rows.meter("predict") as meter:   # progress on stderr (a Ctrl-C while predicting says where it stopped)
        for part in read_ahead(aligned(rows, execution_rows(model, batch))):
            raw = predict_rows(model, part, batch, rows.where)
            check_outputs(target, raw)
            n = len(part)
            yield prediction_frame(target, raw, part.ids, proba=proba)
            meter.add(n)


def predict_rows(model, rows, batch: int, where: str) -> np.ndarray:
    return model_outputs(model, rows, batch, where)


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
    """(n, n_classes) class probabilities from the model outputs (see the module docstring), float32
    as the model gives them, so that they print with float32's shortest digits (0.1, not
    0.10000000149011612)."""
    one = np.float32(1.0)
    if target.label_mode == "binary":
        p = raw[:, 0].astype(np.float32)
        if target.threshold == 0.0:  # tanh head: a score in [-1, 1]
            p = np.clip((p + one) / np.float32(2.0), np.float32(0.0), one)
        return np.stack([one - p, p], axis=1)
    return raw.astype(np.float32, copy=False)


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


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output {path}: cannot create the folder {path.parent}: {e.strerror or e}") from None


def write_file(frames: Iterable[pd.DataFrame], path: Path) -> Written:
    """The frames into one temporary file next to `path`, renamed over it once all are written; on
    any error or interrupt the temporary file is removed and `path` is left as it was. A signal is
    taken between two chunks."""
    _make_folder(path)
    with atomic.atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            rows, columns = _write_parquet(frames, tmp, path)
        else:
            rows, columns = _write_csv(frames, tmp)
    return Written(rows, path, columns)


def write_frame(frame: pd.DataFrame, path: Path) -> Written:
    return write_file([frame], path)


def write_stream(frames: Iterable[pd.DataFrame], stream: TextIO) -> Written:
    """CSV on `stream` as the frames come (the header once), flushed after each."""
    rows, columns = 0, []
    for frame in frames:
        stream.write(frame.to_csv(index=False, header=not columns))
        stream.flush()
        rows, columns = rows + len(frame), columns or [str(c) for c in frame.columns]
    return Written(rows, None, columns)


def _write_csv(frames: Iterable[pd.DataFrame], tmp: Path) -> tuple[int, list[str]]:
    rows, columns = 0, []
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        for frame in frames:
            frame.to_csv(f, index=False, header=not columns, lineterminator="\n")
            rows, columns = rows + len(frame), columns or [str(c) for c in frame.columns]
            guard.poll()
        f.flush()
        os.fsync(f.fileno())
    return rows, columns


def _write_parquet(frames: Iterable[pd.DataFrame], tmp: Path, path: Path) -> tuple[int, list[str]]:
    """One row group per chunk. The first chunk fixes the column types: a later chunk's columns are
    cast to them (an id column with gaps, ...), or refused when they cannot be."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def arrow(step):
        try:
            return step()
        except (pa.ArrowException, ValueError, TypeError) as e:  # a value Arrow cannot store
            raise UsageError(f"--output {path}: cannot write parquet: {first_line(e)[:300]}") from None

    rows, writer = 0, None
    with open(tmp, "wb") as f:
        try:
            for frame in frames:
                table = arrow(lambda: pa.Table.from_pandas(frame, preserve_index=False))
                if writer is None:
                    writer = arrow(lambda: pq.ParquetWriter(f, table.schema))
                elif not table.schema.equals(writer.schema):
                    table = _conform(table, writer.schema, path, rows)
                arrow(lambda: writer.write_table(table))
                rows += len(frame)
                guard.poll()
        finally:
            if writer is not None:
                writer.close()
        f.flush()
        os.fsync(f.fileno())
    return rows, list(writer.schema.names) if writer is not None else []


def _conform(table, schema, path: Path, before: int):
    import pyarrow as pa

    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError, TypeError):
        pass
    for field, have in zip(schema, table.schema):
        if not have.type.equals(field.type):
            raise DataError(f"--output {path}: column '{field.name}' holds {field.type} values in the first rows "
                            f"but {have.type} values after row {before}; a parquet file keeps one type per column: "
                            "write a .csv file instead")
    raise DataError(f"--output {path}: the columns after row {before} differ from the first rows'")
