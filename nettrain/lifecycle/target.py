"""TARGET on the command line: a run directory or an .h5 file (from a run or copied away), and
the model it holds, loaded the way `evaluate` and `predict` both use it.

TensorFlow is imported only once a model is loaded (`load_model`, `model_feed`), so a bad TARGET
is reported without paying for the TensorFlow start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.data.types import FeatureSchema
from nettrain.errors import UsageError
from nettrain.store import h5, rundir
from nettrain.store.meta import check_config, check_features


@dataclass
class Target:
    model_path: Path
    run_dir: Path | None          # the run the file belongs to, if any
    meta: dict[str, Any]          # nettrain metadata: features, config, epoch, run
    schema: FeatureSchema

    @property
    def features(self) -> dict[str, Any]:
        return self.meta["features"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def label_mode(self) -> str:
        return self.features.get("label_mode") or "regression"

    @property
    def threshold(self) -> float:
        value = self.features.get("threshold")
        return 0.5 if value is None else float(value)

    @property
    def epoch(self) -> int:
        return int(self.meta.get("epoch") or 0)


# ------------------------------------------------------------------------------ the model of a target

def setup_runtime(config: dict[str, Any]) -> None:
    """The run's device choice (cpu hides the GPUs) and op determinism; never fails."""
    from nettrain.training import runtime

    rt = (config or {}).get("runtime") or {}
    runtime.apply_device_and_determinism(rt.get("device"), rt.get("deterministic", True))


def load_model(target: Target):
    """The compiled Keras model of a resolved TARGET (exit 2 for a file Keras cannot load)."""
    from nettrain.training import runtime

    setup_runtime(target.config)
    with runtime.quiet_native_stderr():
        model = h5.load_model(target.model_path, restore_optimizer=False)
    return model


def batch_size(target: Target) -> int:
    try:
        return int(target.config["training"]["batch_size"])
    except (KeyError, TypeError, ValueError):
        return 32


def n_classes(target: Target) -> int | None:
    return len(target.schema.class_names) if target.schema.class_names else None


def model_feed(model, split, where: str):
    """Split inputs -> the model's input tensors; a schema/model mismatch is named, not a KeyError."""
    from nettrain.training import feed

    try:
        return feed.model_inputs(model, split.inputs)
    except KeyError as e:
        raise UsageError(f"{where}: the model takes an input {e.args[0]!r} that its feature schema does not "
                         f"produce (inputs made: {', '.join(split.inputs)}); the .h5 file and its nettrain "
                         "metadata do not belong together") from None


# ------------------------------------------------------------------------------ resolving a target

def owning_run(model_path: Path) -> Path | None:
    for candidate in (model_path.parent, model_path.parent.parent):
        try:
            is_run = (candidate / rundir.RUN).is_file() and (candidate / rundir.CONFIG).is_file()
        except OSError:
            continue
        if is_run and (candidate == model_path.parent or model_path.parent.name == rundir.CHECKPOINTS):
            return candidate
    return None


def resolve_target(target: str | Path) -> Target:
    """The model file of TARGET (a run directory or an .h5 file) and its checked metadata.

    Every shape problem of the metadata (the .h5 attribute, or the run's features.json and
    config.yaml for files written before it existed) is a UsageError naming the file here, so
    the commands that use a Target never meet a KeyError or TypeError.
    """
    path = Path(target)
    try:
        is_dir, is_file, exists = path.is_dir(), path.is_file(), path.exists()
    except OSError as e:  # a name too long, a folder without access
        raise UsageError(f"cannot access {path}: {e.strerror or e}") from None
    if is_dir:
        model_path = path / rundir.MODEL
        if not (path / rundir.RUN).is_file():
            raise UsageError(f"{path} is not a run directory (no run.json); give a run directory or an .h5 file")
        if not model_path.is_file():
            folds = _kfold_folds(path)
            if folds:
                raise UsageError(f"{path} is a k-fold run: its {folds} models are in {path / 'fold-1'} ... "
                                 f"{path / f'fold-{folds}'} and it has no model of its own (no refit model.h5); give "
                                 f"one fold's run directory, e.g. "
                                 f"{path / 'fold-1'} (nettrain evaluate {path} measures every fold)")
            raise UsageError(f"{path} has no {rundir.MODEL} (the run did not finish); "
                             f"use a checkpoint such as {path / rundir.CHECKPOINTS / 'last.h5'}")
    elif path.suffix == ".h5" or is_file:
        if not exists:
            raise UsageError(f"no such file or run directory: {path}")
        if path.suffix != ".h5" or not is_file:
            raise UsageError(f"{path} is neither a run directory nor an .h5 model file")
        model_path = path
    else:
        raise UsageError(f"no such run directory or .h5 file: {path}")
    meta = h5.read_meta(model_path)
    run = owning_run(model_path)
    if not meta.get("features") and run is not None:  # files written before metadata existed
        meta = {"features": check_features(_json(run / rundir.FEATURES), str(run / rundir.FEATURES)),
                "config": check_config(rundir.read_run_config(run), str(run / rundir.CONFIG)),
                "epoch": None, "run": None}
    if not meta.get("features"):
        raise UsageError(f"{model_path} was not written by nettrain (no feature schema inside and no run "
                         "directory around it)")
    schema_fields = {k: v for k, v in meta["features"].items()
                     if k in FeatureSchema.__dataclass_fields__}
    try:
        schema = FeatureSchema.from_dict(schema_fields)
    except (KeyError, TypeError, ValueError) as e:  # check_features makes this unreachable
        raise UsageError(f"{model_path}: the feature schema cannot be used: {e}") from None
    return Target(model_path=model_path, run_dir=run, meta=meta, schema=schema)


def _kfold_folds(run_dir: Path) -> int | None:
    """The number of folds of a k-fold parent run (run.json names `folds` and is no fold itself)."""
    try:
        record = json.loads((run_dir / rundir.RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("fold") is not None:
        return None
    folds = record.get("folds")
    return folds if isinstance(folds, int) and not isinstance(folds, bool) and folds > 1 else None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: the model has no nettrain metadata inside, so its run's "
                         f"{path.name} is needed") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply") from None
    except ValueError as e:
        raise UsageError(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


# ------------------------------------------------------------------------------ the rows a model is run on

class Rows:
    """Rows as model inputs (`Split`s), produced again on every iteration, in order.

    `file_rows` streams a CSV/TSV/Parquet file chunk by chunk (bounded memory); `Rows.of` holds
    one Split in memory. `check()` produces the first chunk at once, so a missing column or a bad
    value in the first rows is reported before the model (and TensorFlow) is loaded.
    """

    def __init__(self, where: str, produce, single=None):
        self.where = where
        self._produce = produce
        self.single = single           # the one in-memory Split, when there is one
        self._pending = None

    @classmethod
    def of(cls, split, where: str) -> "Rows":
        return cls(where, lambda: iter([split]), single=split)

    def check(self) -> None:
        if self._pending is None:
            chunks = self._produce()
            self._pending = (next(chunks), chunks)

    def __iter__(self):
        if self._pending is not None:
            first, chunks = self._pending
            self._pending = None
            yield first
            yield from chunks
        else:
            yield from self._produce()


def table_rows(frame, schema: FeatureSchema, where: str, *, require_target: bool) -> Rows:
    """A table held in memory as Rows; without `require_target` its target column is not used
    (predict: gaps or labels the model does not know are no error). The columns of `text_columns`
    read as text are typed by the cell types fit stored (`data.cells.typed`)."""
    from nettrain.data import prepare_inputs
    from nettrain.data.cells import typed

    if not require_target and schema.target is not None and schema.target in frame.columns:
        frame = frame.drop(columns=[schema.target])
    frame = frame.assign(**{name: typed(frame[name], schema.cell_types.get(name))
                            for name in text_columns(schema) if name in frame.columns
                            and not _typed_already(frame[name])})
    return Rows.of(prepare_inputs(frame, schema, require_target=require_target, source=where), where)


def text_columns(schema: FeatureSchema) -> list[str]:
    """The columns a file read whole gives as the text of their cells, to be typed by the cell type
    fit stored (`schema.cell_types`): all but the numeric ones read as numbers, which the reader
    parses itself, as at fit. None for a schema written before cell types were stored (such a file
    is read as it always was)."""
    numeric = set(schema.numeric_columns) | ({schema.target} if schema.task == "regression" else set())
    return [name for name, kind in schema.cell_types.items() if not (name in numeric and kind == "number")]


def _typed_already(series) -> bool:
    """A column its reader typed (a number, boolean or category dtype: parquet, jsonl, a CSV read
    without `text`), not the text of its cells."""
    import pandas as pd

    return not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype))


def file_rows(path: str | Path, schema: FeatureSchema, *, require_target: bool) -> Rows:
    """The rows of a data file: streamed when `chunks.streamable(path)`, else read whole (`read_table`)."""
    from nettrain.data.chunks import streamable

    if not streamable(path):
        from nettrain.data import read_table

        return table_rows(read_table(path, text=text_columns(schema)), schema, str(path),
                          require_target=require_target)
    return Rows(str(path), lambda: _stream(Path(path), schema, require_target))


def _stream(p: Path, schema: FeatureSchema, require_target: bool):
    """Prepared chunks of a CSV/TSV/Parquet file; the file checks of `read_table` first."""
    import contextlib

    import pyarrow as pa

    from nettrain.data import prepare_inputs
    from nettrain.data.cells import typed as typed_cells
    from nettrain.data.chunks import CHUNK_ROWS, _bad_value, iter_chunks, kind_of
    from nettrain.data.stream import check_table_file
    from nettrain.data.words import list_names
    from nettrain.errors import DataError

    kind = kind_of(p)
    text = kind != ".parquet"
    names = check_table_file(p)
    _check_columns(p, names, schema, require_target)
    wanted = [c.name for c in schema.columns]
    target = schema.target if schema.target is not None and schema.target in names and require_target else None
    if target is not None:
        wanted.append(target)
    ident = schema.id_column if schema.id_column is not None and schema.id_column in names else None
    if ident is not None and ident not in wanted:
        wanted.append(ident)
    numeric = list(schema.numeric_columns) + ([target] if target and schema.task == "regression" else [])
    if text and numeric:
        numeric = _read_as_numbers(p, numeric, schema, iter_chunks)
    typed = [c.name for c in schema.other_columns] + [c for c in (target, ident) if c and c not in numeric]
    chunks = iter_chunks(p, numeric=numeric, columns=wanted, rows=CHUNK_ROWS)
    count = 0
    with contextlib.closing(chunks):
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except pa.ArrowInvalid as e:  # the first block is read (and may fail) before iter_chunks can catch it
                raise (_bad_value(p, count, numeric, wanted, e) if text else _unreadable(p, kind, count, e)) from None
            except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
                raise _unreadable(p, kind, count, e) from None
            frame = chunk.frame
            if text:
                for name in typed:  # as fit typed them
                    frame[name] = typed_cells(frame[name], schema.cell_types.get(name))
            count += len(frame)
            yield prepare_inputs(frame, schema, require_target=require_target, source=str(p),
                                 line_offset=2 if text else None)
    if count == 0:
        raise DataError(f"{p}: the file has a header but no rows (columns: {list_names(names)})")


def _unreadable(p: Path, kind: str, count: int, err: BaseException):
    from nettrain.errors import DataError

    reason = " ".join(str(err).split()) or type(err).__name__
    return DataError(f"{p}: cannot read it as {kind[1:]} after row {count}: {reason[:300]}")


def _check_columns(p: Path, names: list[str], schema: FeatureSchema, require_target: bool) -> None:
    """A column the model uses (or the target, when required) missing from the header: the message
    `prepare_inputs` gives, before a row is read."""
    import pandas as pd

    from nettrain.data.inputs import _check_columns as check

    check(pd.DataFrame({n: [None] for n in names}), schema, str(p), require_target)


def _read_as_numbers(p: Path, numeric: list[str], schema: FeatureSchema, iter_chunks) -> list[str]:
    """The numeric columns the chunk reader reads as numbers: those whose cells fit read as numbers
    (`schema.cell_types`; a column of true/false is read as text and converted by `prepare_inputs`);
    for a schema written before cell types were kept, as its first row suggests (`_parsed_by_arrow`)."""
    if all(name in schema.cell_types for name in numeric):
        return [name for name in numeric if schema.cell_types[name] == "number"]
    return _parsed_by_arrow(p, numeric, iter_chunks)


def _parsed_by_arrow(p: Path, numeric: list[str], iter_chunks) -> list[str]:
    """The numeric columns read as numbers by the chunk reader: all but those whose first rows hold
    true/false (a boolean column, numeric to nettrain), which are read as text and converted by
    `prepare_inputs` as they are when the file is read whole."""
    import contextlib

    import pyarrow as pa

    first = iter_chunks(p, columns=numeric, rows=1)
    with contextlib.closing(first):
        try:
            frame = next(first).frame
        except (StopIteration, pa.ArrowException, OSError, UnicodeDecodeError):
            return numeric  # no rows, or a file the real read reports on
    return [c for c in numeric if not frame[c].dropna().str.strip().str.lower().isin(["true", "false"]).any()]


def aligned(parts, multiple: int):
    """The Splits of `parts` re-cut so that every one but the last holds a multiple of `multiple`
    rows: batches of `multiple` drawn from each then match those drawn from all the rows at once
    (the same sums in the same order: the same metrics, bit for bit)."""
    tail = None
    for part in parts:
        if tail is not None:
            part, tail = _join(tail, part), None
        cut = len(part) - len(part) % multiple
        if cut == len(part):
            yield part
            continue
        if cut:
            yield _take(part, slice(0, cut))
        tail = _take(part, slice(cut, None))
    if tail is not None:
        yield tail


def _take(split, where: slice):
    from nettrain.data.types import Split

    pick = (lambda a: None if a is None else a[where])
    return Split(inputs={k: v[where] for k, v in split.inputs.items()}, y=pick(split.y), ids=pick(split.ids),
                 row_index=pick(split.row_index))


def _join(a, b):
    import numpy as np

    from nettrain.data.types import Split

    def both(x, y):
        return None if x is None or y is None else np.concatenate([x, y])

    return Split(inputs={k: np.concatenate([a.inputs[k], b.inputs[k]]) for k in a.inputs}, y=both(a.y, b.y),
                 ids=both(a.ids, b.ids), row_index=both(a.row_index, b.row_index))


def execution_rows(model, batch: int) -> int:
    """Rows per call into TensorFlow (`steps_per_execution` batches): chunks cut to a multiple of it
    keep every call of a chunk full, so Keras traces its function once, not once per chunk."""
    try:
        steps = int(getattr(model, "steps_per_execution", 1) or 1)
    except (TypeError, ValueError):
        steps = 1
    return batch * max(1, steps)


def model_outputs(model, rows, batch: int, where: str):
    """The model's raw outputs for a Split, (n, outputs) float32, batched as `fit` batches."""
    import numpy as np

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
