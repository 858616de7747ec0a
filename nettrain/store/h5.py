"""Full-model `.h5` files: atomic save with nettrain metadata, load with the optimizer state.

Every nettrain `.h5` carries a JSON attribute `nettrain` (the feature schema, the resolved config,
the epoch it was saved at), so a checkpoint copied away from its run can still be evaluated,
used for predictions and retrained. Plain `keras.models.load_model` ignores the attribute.

Keras's legacy H5 loader drops the optimizer's slot variables, so the saved Adam moments (and
momentum buffers) would be lost and `fit` fails with "Unknown variable". `load_model` here
rebuilds the optimizer on the model's trainable variables and sets the saved values, which
continues training exactly. What that takes of the legacy layout and of Keras internals lives in
`nettrain.keras_compat`.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Any

import h5py

from nettrain import keras_compat as compat
from nettrain.config.args import CODE_LAYERS
from nettrain.errors import UsageError
from nettrain.store import atomic, plugins
from nettrain.store.meta import IMAGE_INPUT, NUMERIC_INPUT, check_meta, input_name
from nettrain.words import first_line

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
            if compat.H5_MODEL_CONFIG not in f.attrs and compat.H5_MODEL_WEIGHTS not in f:
                raise UsageError(f"{path} is an HDF5 file but holds no Keras model")
            raw = f.attrs.get(META_ATTR)
    except UsageError:
        raise
    except OSError as e:
        raise UsageError(f"{path} is not a readable .h5 model file (not HDF5, or truncated): {e}") from None
    except Exception as e:  # an attribute of a type h5py cannot read back
        raise UsageError(f"{path}: cannot read its attributes: {first_line(e)}") from None
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


def save_model(model, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Architecture, weights, optimizer state and metadata, written to a temp file then renamed."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        write_model(model, tmp, meta)
    return path


# model -> the `keras_compat.H5Rewriter` of its last full save (held weakly: a sweep's trials must not
# keep their models alive; the rewriter holds the variables and the file's bytes, not the model)
_REWRITERS: "weakref.WeakKeyDictionary[Any, compat.H5Rewriter]" = weakref.WeakKeyDictionary()
TEMPLATE_MAX = 64 << 20  # a larger model's file is not kept in memory: its epochs dwarf a full save


def write_model(model, path: Path, meta: dict[str, Any] | None = None) -> None:
    """Write (non-atomically) to `path`; callers that need atomicity use `save_model`.

    The first file of a model is Keras's `model.save`; a model saved again (a checkpoint every epoch)
    is written from that file's bytes with its new values over them (`keras_compat.H5Rewriter`: the
    same file, in a few milliseconds instead of ~30-140 ms), unless its variables changed since."""
    attrs = {META_ATTR: json.dumps(meta, default=atomic.json_default)} if meta is not None else None
    rewriter = _REWRITERS.get(model)
    if rewriter is not None and rewriter.current(model):
        rewriter.write(model, path, attrs)
        return
    model.save(str(path), include_optimizer=True)
    if attrs is not None:
        with h5py.File(path, "a") as f:
            f.attrs.update(attrs)
    rewriter = compat.H5Rewriter.of(model, path) if os.path.getsize(path) <= TEMPLATE_MAX else None
    if rewriter is None:
        _REWRITERS.pop(model, None)
    else:
        _REWRITERS[model] = rewriter


def export_keras(model, path: str | os.PathLike) -> Path:
    """The same model in the native `.keras` format, optimizer state included, written atomically."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        write_keras(model, tmp)
    return path


def write_keras(model, path: Path) -> None:
    """Write (non-atomically) the native `.keras` file; callers that need atomicity use `export_keras`.

    A legacy `.h5` save drops the optimizer from the model's live compile config, so a `.keras`
    saved afterwards would load with a default optimizer and no state; it is put back first.
    """
    compat.restore_compiled_optimizer(model)
    model.save(str(path))


def load_model(path: str | os.PathLike, *, restore_optimizer: bool = True):
    """A compiled model from an .h5 file, with the optimizer's saved state when present.

    Keras's safe mode stays on: a model holding a `Lambda` layer (Python code) or a class Keras
    does not know is refused with a UsageError, and no code from the file ever runs.
    """
    path = Path(path)
    meta = read_meta(path)  # clear errors for missing / non-HDF5 / truncated files and damaged metadata
    refuse_code_layers(path)
    plugins.load_for_model(path, meta.get("config"))  # the run's own checked copies, never code from the file
    import keras

    try:
        model = keras.models.load_model(path, compile=True, safe_mode=True)
    except Exception as e:  # corrupt content inside a valid HDF5 container, unknown classes
        text = first_line(e)
        if any(mark in text for mark in ("safe_mode", "Unknown layer", "Could not locate", "Unknown object",
                                         "custom_object", "register_keras_serializable")):
            raise UsageError(f"{path}: refused: the model uses a layer or function that is not part of Keras "
                             f"({text.split('. ')[0][:120]}); nettrain loads built-in Keras layers only and "
                             "never runs code from a model file") from None
        raise UsageError(f"cannot load the model in {path}: {text}") from None
    try:
        with h5py.File(path, "r") as f:
            training = compat.read_h5_training_state(f, optimizer_values=restore_optimizer)
        if training is not None and getattr(model, "optimizer", None) is not None:
            # Compile again: with the optimizer's saved state when asked, and always with the metrics
            # under the names fit logged (the loader turns "mae" into "mean_absolute_error") and the
            # saved loss weight (a regression model trained on its standardized target).
            optimizer = model.optimizer
            if restore_optimizer and training.optimizer_config is not None:
                optimizer = compat.restore_optimizer(model, training)
            model.compile(optimizer=optimizer, loss=model.loss,
                          metrics=plugin_metrics(compat.compiled_metrics(training)),
                          loss_weights=training.loss_weights,
                          steps_per_execution=training.steps_per_execution)
    except compat.OptimizerStateMismatch as e:
        raise UsageError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as e:
        raise UsageError(f"{path}: the saved training state (optimizer or metrics) is damaged: "
                         f"{first_line(e)}") from None
    check_model_against_meta(model, meta, path)
    return model


def plugin_metrics(metrics: list | None) -> list | None:
    """A plugin's function metric is saved by its registered name (`package>name`), which
    `keras.metrics.get` does not look up: the registered function itself (its plugin is imported)."""
    if not metrics:
        return metrics
    import keras

    return [(keras.saving.get_registered_object(m) or m) if isinstance(m, str) and ">" in m else m for m in metrics]


def check_model_against_meta(model, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """The model's inputs and outputs must be the ones its metadata describes (a model and metadata
    from different runs would otherwise fail deep inside Keras, or give wrong labels)."""
    features = meta.get("features")
    if not features:
        return
    columns = features["columns"]
    n_numeric = sum(1 for c in columns if c["kind"] == "numeric")
    produced = ({NUMERIC_INPUT} if n_numeric else set()) | \
        {input_name(c["name"]) for c in columns if c["kind"] != "numeric"}
    if not columns and features.get("inputs") == [IMAGE_INPUT]:  # an image folder's model
        produced = {IMAGE_INPUT}
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
            raw = f.attrs.get(compat.H5_MODEL_CONFIG)
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



