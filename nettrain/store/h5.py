"""Full-model `.h5` files: atomic save with nettrain metadata, load with the optimizer state.

Every nettrain `.h5` carries a JSON attribute `nettrain` (the feature schema, the resolved config,
the epoch it was saved at), so a checkpoint copied away from its run can still be evaluated,
used for predictions and retrained. Plain `keras.models.load_model` ignores the attribute.

Keras 3.15's legacy H5 loader builds the optimizer without its slot variables, so the saved
Adam moments (and momentum buffers) would be dropped and `fit` fails with "Unknown variable".
`load_model` here rebuilds the optimizer on the model's trainable variables and sets the saved
values, which continues training exactly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import h5py

from nettrain.errors import UsageError
from nettrain.store import atomic

META_ATTR = "nettrain"


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The nettrain metadata of an .h5 file ({} for a foreign Keras file). No TensorFlow needed.

    The metadata is checked here, once (`check_meta`): a damaged or hand-edited attribute is a
    UsageError naming the file and what is wrong, so no later code meets a KeyError or TypeError.
    """
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as e:  # a name too long, a folder without access
        raise UsageError(f"cannot access {path}: {e.strerror or e}") from None
    if not is_file:
        raise UsageError(f"no such file: {path}")
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs and "model_weights" not in f:
                raise UsageError(f"{path} is an HDF5 file but holds no Keras model")
            raw = f.attrs.get(META_ATTR)
    except UsageError:
        raise
    except OSError as e:
        raise UsageError(f"{path} is not a readable .h5 model file (not HDF5, or truncated): {e}") from None
    except Exception as e:  # an attribute of a type h5py cannot read back
        raise UsageError(f"{path}: cannot read its attributes: {_first_line(e)}") from None
    if raw is None:
        return {}
    where = f"{path}: damaged nettrain metadata (the .h5 attribute '{META_ATTR}')"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{where}: not UTF-8 text") from None
    if not isinstance(raw, str):
        raise UsageError(f"{where}: not JSON text but {type(raw).__name__}")
    try:
        meta = json.loads(raw)
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply") from None
    except ValueError as e:
        raise UsageError(f"{where}: not valid JSON ({getattr(e, 'msg', e)}"
                         + (f", line {e.lineno} column {e.colno})" if hasattr(e, "lineno") else ")")) from None
    return check_meta(meta, where)


# ------------------------------------------------------------------------ the metadata shape

TASKS = ("regression", "binary", "multiclass")
KINDS = ("numeric", "categorical", "text")
LABEL_MODES = ("regression", "binary", "sparse", "one_hot")
COLUMN_KEYS = {"name": str, "kind": str, "max_tokens": int, "output_mode": str, "sequence_length": int,
               "embedding_dim": int}
CONFIG_SECTIONS = ("preprocessing", "model", "training", "callbacks", "runtime", "output")


class _Bad(Exception):
    pass


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise _Bad(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """The metadata `{features, config, epoch, run}` if it has the shape the code relies on.

    `where` starts the message ("FILE: damaged nettrain metadata ..."). An empty mapping, or
    one without `features` and `config`, means "no metadata" (a foreign Keras file); when
    either is present both must be, and valid.
    """
    try:
        _need(isinstance(meta, dict), f"{_kind(meta)} where a mapping with features, config, epoch and run "
              "is expected")
        epoch, run = meta.get("epoch"), meta.get("run")
        _need(epoch is None or (_is_int(epoch) and epoch >= 0),
              f"'epoch' is {_show(epoch)}; expected a whole number >= 0 or null")
        _need(run is None or isinstance(run, str), f"'run' is {_kind(run)}; expected a string or null")
        if "features" not in meta and "config" not in meta:
            return dict(meta)
        _need("features" in meta, "'features' is missing (it has 'config')")
        _need("config" in meta, "'config' is missing (it has 'features')")
        return {**meta, "features": _check_features(meta["features"], "features"),
                "config": _check_config(meta["config"], "config")}
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def check_features(features: Any, where: str) -> dict[str, Any]:
    """The feature schema (features.json, or `features` of the metadata) if well formed; `where` names it."""
    try:
        return _check_features(features, "features")
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def check_config(config: Any, where: str) -> dict[str, Any]:
    """A run's resolved config (config.yaml, or `config` of the metadata) if it is a mapping of sections."""
    try:
        return _check_config(config, "config")
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def _check_features(f: Any, key: str) -> dict[str, Any]:
    _need(isinstance(f, dict), f"'{key}' is {_kind(f)}; expected a mapping (the feature schema)")
    task = f.get("task")
    _need(task in TASKS, f"'{key}.task' is {_show(task)}; allowed: {', '.join(TASKS)}")
    _need("target" in f, f"'{key}.target' is missing")
    _need(f["target"] is None or isinstance(f["target"], str), f"'{key}.target' is {_kind(f['target'])}; "
          "expected a column name")
    columns = f.get("columns")
    _need(isinstance(columns, list) and len(columns) > 0,
          f"'{key}.columns' is {_kind(columns) if not isinstance(columns, list) else 'an empty list'}; "
          "expected a list of {name, kind} mappings")
    names = set()
    for i, col in enumerate(columns):
        at = f"{key}.columns.{i}"
        _need(isinstance(col, dict), f"'{at}' is {_kind(col)}; expected a mapping with name and kind")
        extra = [k for k in col if k not in COLUMN_KEYS]
        _need(not extra, f"'{at}' has unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(_show, extra))}; "
              f"allowed: {', '.join(COLUMN_KEYS)}")
        _need(isinstance(col.get("name"), str) and col["name"] != "",
              f"'{at}.name' is {_show(col.get('name'))}; expected a column name")
        _need(col["name"] not in names, f"'{at}.name' {_show(col['name'])} is listed twice")
        names.add(col["name"])
        _need(col.get("kind") in KINDS, f"'{at}.kind' is {_show(col.get('kind'))}; allowed: {', '.join(KINDS)}")
        for k, typ in COLUMN_KEYS.items():
            v = col.get(k)
            if k in ("name", "kind") or v is None:
                continue
            ok = (_is_int(v) and v >= 0) if typ is int else isinstance(v, typ)
            _need(ok, f"'{at}.{k}' is {_show(v)}; expected {'a whole number' if typ is int else 'a string'} or null")
    classes = f.get("class_names")
    if task == "regression":
        _need(classes is None or isinstance(classes, list), f"'{key}.class_names' is {_kind(classes)}")
    else:
        _need(isinstance(classes, list) and all(isinstance(c, str) for c in classes),
              f"'{key}.class_names' is {_show(classes)}; a {task} model needs its class names, a list of strings")
        _need(len(set(classes)) == len(classes), f"'{key}.class_names' lists a class twice")
        _need(len(classes) == 2 if task == "binary" else len(classes) >= 2,
              f"'{key}.class_names' has {len(classes)} class{'es' if len(classes) != 1 else ''}; a {task} model has "
              f"{'2' if task == 'binary' else 'at least 2'}")
    imputation = f.get("imputation")
    _need(imputation is None or (isinstance(imputation, dict) and all(
        v is None or isinstance(v, (str, int, float)) for v in imputation.values())),
        f"'{key}.imputation' is {_kind(imputation)}; expected a mapping column -> fill value")
    _need(f.get("id_column") is None or isinstance(f["id_column"], str),
          f"'{key}.id_column' is {_kind(f.get('id_column'))}; expected a column name or null")
    mode = f.get("label_mode")
    if task == "regression":
        _need(mode in (None, "regression"), f"'{key}.label_mode' is {_show(mode)} but the task is regression")
    else:
        allowed = ("binary", "sparse", "one_hot") if task == "binary" else ("sparse", "one_hot")
        _need(mode in allowed, f"'{key}.label_mode' is {_show(mode)}; a {task} model has one of "
              f"{', '.join(allowed)}")
    threshold = f.get("threshold")
    _need(threshold is None or (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                and math.isfinite(threshold)),
          f"'{key}.threshold' is {_show(threshold)}; expected a number")
    inputs = f.get("inputs")
    _need(inputs is None or (isinstance(inputs, list) and all(isinstance(n, str) for n in inputs)),
          f"'{key}.inputs' is {_show(inputs)}; expected a list of input names")
    return {**f, "imputation": imputation or {}}


def _check_config(c: Any, key: str) -> dict[str, Any]:
    _need(isinstance(c, dict), f"'{key}' is {_kind(c)}; expected a mapping (the run's resolved config)")
    _need(isinstance(c.get("data"), dict), f"'{key}.data' is {_kind(c.get('data'))}; expected a mapping")
    for section in CONFIG_SECTIONS:
        if section in c:
            _need(isinstance(c[section], dict), f"'{key}.{section}' is {_kind(c[section])}; expected a mapping")
    return c


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def save_model(model, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Architecture, weights, optimizer state and metadata, written to a temp file then renamed."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        write_model(model, tmp, meta)
    return path


def write_model(model, path: Path, meta: dict[str, Any] | None = None) -> None:
    """Write (non-atomically) to `path`; callers that need atomicity use `save_model`."""
    model.save(str(path), include_optimizer=True)
    if meta is not None:
        with h5py.File(path, "a") as f:
            f.attrs[META_ATTR] = json.dumps(meta, default=atomic._plain)


def export_keras(model, path: str | os.PathLike) -> Path:
    """The same model in the native `.keras` format, optimizer state included, written atomically.

    A legacy `.h5` save drops the optimizer from the model's live compile config, so a `.keras`
    saved afterwards would load with a default optimizer and no state; it is put back first.
    """
    path = Path(path)
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None and getattr(model, "optimizer", None) is not None:
        compile_config.config["optimizer"] = model.optimizer
    with atomic.atomic_path(path) as tmp:
        model.save(str(tmp))
    return path


# Layers whose config carries Python code (or a foreign framework's object): never loaded.
CODE_LAYERS = ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer")


def load_model(path: str | os.PathLike, *, restore_optimizer: bool = True):
    """A compiled model from an .h5 file, with the optimizer's saved state when present.

    Keras's safe mode stays on: a model holding a `Lambda` layer (Python code) or a class Keras
    does not know is refused with a UsageError, and no code from the file ever runs.
    """
    path = Path(path)
    meta = read_meta(path)  # clear errors for missing / non-HDF5 / truncated files and damaged metadata
    refuse_code_layers(path)
    import keras

    try:
        model = keras.models.load_model(path, compile=True, safe_mode=True)
    except Exception as e:  # corrupt content inside a valid HDF5 container, unknown classes
        text = _first_line(e)
        if any(mark in text for mark in ("safe_mode", "Unknown layer", "Could not locate", "Unknown object",
                                         "custom_object", "register_keras_serializable")):
            raise UsageError(f"{path}: refused: the model uses a layer or function that is not part of Keras "
                             f"({text.split('. ')[0][:120]}); nettrain loads built-in Keras layers only and "
                             "never runs code from a model file") from None
        raise UsageError(f"cannot load the model in {path}: {text}") from None
    try:
        training = _training_config(path)
        if training is not None and getattr(model, "optimizer", None) is not None:
            # Compile again: with the optimizer's saved state when asked, and always with the metrics
            # under the names fit logged (the loader turns "mae" into "mean_absolute_error").
            optimizer = _restored_optimizer(model, path, training) if restore_optimizer else model.optimizer
            model.compile(optimizer=optimizer, loss=model.loss, metrics=_compiled_metrics(training),
                          steps_per_execution=training.get("steps_per_execution", 1))
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as e:
        raise UsageError(f"{path}: the saved training state (optimizer or metrics) is damaged: "
                         f"{_first_line(e)}") from None
    check_model_against_meta(model, meta, path)
    return model


def check_model_against_meta(model, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """The model's inputs and outputs must be the ones its metadata describes (a model and metadata
    from different runs would otherwise fail deep inside Keras, or give wrong labels)."""
    features = meta.get("features")
    if not features:
        return
    from nettrain.data.types import NUMERIC_INPUT

    columns = features["columns"]
    n_numeric = sum(1 for c in columns if c["kind"] == "numeric")
    produced = ({NUMERIC_INPUT} if n_numeric else set()) | {c["name"] for c in columns if c["kind"] != "numeric"}
    where = f"{path}: the model and its nettrain metadata do not belong together"
    for tensor in getattr(model, "inputs", None) or []:
        name, shape = getattr(tensor, "name", None), tuple(getattr(tensor, "shape", ()) or ())
        if name not in produced:
            raise UsageError(f"{where}: the model takes an input {name!r} that the feature schema does not make "
                             f"(it makes: {', '.join(sorted(produced))})")
        if name == NUMERIC_INPUT and len(shape) == 2 and shape[-1] is not None and shape[-1] != n_numeric:
            raise UsageError(f"{where}: the model takes {shape[-1]} numeric values per row, the feature schema "
                             f"has {n_numeric} numeric columns")
    outputs = getattr(model, "outputs", None) or []
    mode = features.get("label_mode") or "regression"
    if len(outputs) != 1 or mode == "regression":
        return
    units = tuple(getattr(outputs[0], "shape", ()) or ())[-1:]
    want = 1 if mode == "binary" else len(features.get("class_names") or [])
    if units and units[0] is not None and units[0] != want:
        raise UsageError(f"{where}: the model gives {units[0]} output(s) per row, the metadata describes {want} "
                         f"({mode} labels, {len(features.get('class_names') or [])} classes)")


def refuse_code_layers(path: str | os.PathLike) -> None:
    """UsageError when the model config of an .h5 file names a layer that carries code (Lambda, ...)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except Exception:
        return  # read_meta has reported unreadable files; Keras reports the rest
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        config = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return  # Keras reports a damaged model config
    stack, found = [config], None
    while stack and found is None:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            if isinstance(name, str) and name.split(">")[-1] in CODE_LAYERS:
                found = name
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    if found is not None:
        raise UsageError(f"{path}: refused: the model holds a {found} layer, which carries Python code; "
                         "nettrain never runs code from a model file (use built-in Keras layers)")


def _training_config(path: Path) -> dict[str, Any] | None:
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("training_config")
    if raw is None:
        return None
    training = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    return training if isinstance(training, dict) else None


def _restored_optimizer(model, path: Path, training: dict[str, Any]):
    import keras

    if not isinstance(training.get("optimizer_config"), dict):
        return model.optimizer
    optimizer = keras.optimizers.deserialize(training["optimizer_config"])
    optimizer.build(model.trainable_variables)
    with h5py.File(path, "r") as f:
        if "optimizer_weights" not in f:
            return optimizer
        group = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        values = [group[n][()] for n in names]
    if len(optimizer.variables) != len(values):
        raise UsageError(f"{path}: the optimizer state does not match the model "
                         f"({len(values)} saved values, {len(optimizer.variables)} expected)")
    for var, value in zip(optimizer.variables, values):
        if tuple(var.shape) != tuple(value.shape):
            raise UsageError(f"{path}: optimizer value {var.path} has shape {value.shape}, expected {var.shape}")
        var.assign(value)
    return optimizer


def _compiled_metrics(training: dict) -> Any:
    import keras

    metrics = training.get("metrics")
    if not metrics or not isinstance(metrics, list):
        return None
    out = []
    for m in metrics:
        if isinstance(m, dict):
            out.append(keras.metrics.deserialize(m))
        elif isinstance(m, list):  # legacy nested per-output lists
            out.extend(m)
        else:
            out.append(m)
    return out
