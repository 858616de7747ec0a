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
import os
from pathlib import Path
from typing import Any

import h5py

from nettrain.errors import UsageError
from nettrain.store import atomic

META_ATTR = "nettrain"


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The nettrain metadata of an .h5 file ({} for a foreign Keras file). No TensorFlow needed."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs and "model_weights" not in f:
                raise UsageError(f"{path} is an HDF5 file but holds no Keras model")
            raw = f.attrs.get(META_ATTR)
    except OSError as e:
        raise UsageError(f"{path} is not a readable .h5 model file (not HDF5, or truncated): {e}") from None
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


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


def load_model(path: str | os.PathLike, *, restore_optimizer: bool = True):
    """A compiled model from an .h5 file, with the optimizer's saved state when present."""
    import keras

    path = Path(path)
    read_meta(path)  # clear errors for missing / non-HDF5 / truncated files
    try:
        model = keras.models.load_model(path, compile=True)
    except Exception as e:  # corrupt content inside a valid HDF5 container
        raise UsageError(f"cannot load the model in {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    training = _training_config(path)
    if training is not None and getattr(model, "optimizer", None) is not None:
        # Compile again: with the optimizer's saved state when asked, and always with the metrics
        # under the names fit logged (the loader turns "mae" into "mean_absolute_error").
        optimizer = _restored_optimizer(model, path, training) if restore_optimizer else model.optimizer
        model.compile(optimizer=optimizer, loss=model.loss, metrics=_compiled_metrics(training),
                      steps_per_execution=training.get("steps_per_execution", 1))
    return model


def _training_config(path: Path) -> dict[str, Any] | None:
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("training_config")
    if raw is None:
        return None
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def _restored_optimizer(model, path: Path, training: dict[str, Any]):
    import keras

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
    if not metrics:
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
