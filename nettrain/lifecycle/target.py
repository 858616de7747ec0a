"""TARGET on the command line: a run directory or an .h5 file (from a run or copied away), and
the model it holds, loaded the way `evaluate` and `predict` both use it.

TensorFlow is imported only once a model is loaded (`load_model`, `model_feed`), so a bad TARGET
is reported without paying for the TensorFlow start-up. The rows a model is run on come from
`data.rows` (a data file, or a table in memory, as model inputs).
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
from nettrain.store.record import read_record


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
        """The epochs trained when the file was saved (a run's model.h5: all of them; retrain goes on from here)."""
        return int(self.meta.get("epoch") or 0)

    @property
    def weights_epoch(self) -> int:
        """The epoch whose weights the file holds: for a run's model.h5 the one run.json records
        (`weights_epoch`: an earlier, best epoch when early stopping restored its weights; for a run
        written before it was recorded, `best_epoch` when the config restores the best weights), else
        the epoch the file was saved at (a checkpoint holds that epoch's weights). A model.h5 also
        says so itself (metadata `weights_epoch`), so a copy away from its run knows it too."""
        own = self.meta.get("weights_epoch")
        if isinstance(own, int) and not isinstance(own, bool) and own >= 0:
            return own
        if self.run_dir is None or self.model_path.name != rundir.MODEL or self.model_path.parent != self.run_dir:
            return self.epoch
        record = read_record(self.run_dir)
        if record is None:
            return self.epoch
        kept = (record.model_extra or {}).get("weights_epoch")
        if isinstance(kept, int) and not isinstance(kept, bool) and kept >= 0:
            return kept
        callbacks = self.config.get("callbacks")
        early = callbacks.get("early_stopping") if isinstance(callbacks, dict) else None
        if isinstance(early, dict) and early.get("restore_best_weights") and record.best_epoch:
            return record.best_epoch
        return self.epoch


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
            _refuse_export(path)
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
        if path.suffix != ".h5":
            _refuse_export(path)
        if path.suffix.lower() == ".keras" and is_file:
            # (checkpoint.filename may write them: the native format, for other programs)
            raise UsageError(f"{path} is a native Keras checkpoint, which nettrain's commands do not read: give "
                             f"its run directory or an .h5 checkpoint (best.h5 and last.h5 are kept beside it); "
                             f"other programs load it with keras.saving.load_model")
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


def _refuse_export(path: Path) -> None:
    """An exported model (`nettrain export`) given where a run's model is needed is named as such."""
    from nettrain.lifecycle import served

    folder = served.export_folder(path)
    if folder is None:
        return
    try:
        info = served.read_export(folder)[0]
        fmt, source = info.get("format"), info.get("source")
    except UsageError:  # (an export that cannot be read is still named as one)
        fmt = source = None
    whence = f" of {source}" if isinstance(source, str) else ""
    how = f"nettrain export, format {fmt}" if isinstance(fmt, str) else "nettrain export"
    raise UsageError(f"{path} is an export{whence} ({how}): only `nettrain predict` takes an export; "
                     f"give the run directory or .h5 file it was exported from")


def _kfold_folds(run_dir: Path) -> int | None:
    """The number of folds of a k-fold parent run (`RunRecord.is_kfold_parent`), else None."""
    record = read_record(run_dir)
    return record.folds if record is not None and record.is_kfold_parent else None


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


# ------------------------------------------------------------------------------ running the model on rows

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
    check_widths(model, x, where)
    with runtime.quiet_native_stderr():
        pred = model.predict(feed.evaluation_dataset(x, None, batch), verbose=0)
    pred = np.asarray(pred)
    return pred.reshape(len(pred), -1)


def check_widths(model, x, where: str) -> None:
    """Each model input takes as many values per row as the feature schema makes (`x`: model_feed's)."""
    for tensor in model.inputs:
        want, have = tuple(tensor.shape), tuple(x[tensor.name].shape)
        if len(want) == len(have) and len(want) > 1 and want[-1] is not None and want[-1] != have[-1]:
            raise UsageError(f"{where}: the model's input {tensor.name!r} takes {want[-1]} values per row but its "
                             f"feature schema makes {have[-1]}; the .h5 file and its nettrain metadata do not "
                             "belong together")
