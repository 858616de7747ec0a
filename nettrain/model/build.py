"""keras.Model(raw inputs -> preprocessing layers -> the configured stack -> output head).

Preprocessing statistics come from the training rows and are passed to the layers as
constructor arguments (Normalization mean/variance, lookup vocabularies), so they live in the
layer config and a saved `.h5` model loads with plain `keras.models.load_model`.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

import keras

from nettrain.config import catalog
from nettrain.config.loader import check_layer
from nettrain.config.schema import Config, LayerSpec
from nettrain.data.types import NUMERIC_INPUT, ColumnInfo, Dataset, FeatureSchema, Split
from nettrain.model.compile import compile_model, output_activation_kind

DEFAULT_MAX_TOKENS = 10_000


def build_model(cfg: Config, dataset: Dataset, *, compile: bool = True) -> keras.Model:
    schema = dataset.schema
    inputs, branches = _inputs_and_preprocessing(cfg, schema, dataset.train)
    x = branches[0] if len(branches) == 1 else _concat(cfg, branches)
    built: dict[str, keras.layers.Layer] = {}  # key path -> layer
    for i, spec in enumerate(cfg.model.layers):
        x = _apply(cfg, spec, x, f"model.layers.{i}", built)
    head = _head(cfg, schema, dataset.train)
    if head is not None:
        x = _apply(cfg, head, x, "model.output", built, default_init=False)
    model = keras.Model(inputs=inputs, outputs=x, name=_model_name(cfg.name))
    _check_output(cfg, schema, model, dataset.train)
    _check_memory(cfg, model, built)
    if compile:
        compile_model(cfg, model, schema)
    return model


def _model_name(name: str | None) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in (name or "model"))


# ------------------------------------------------------------------------- preprocessing

def _inputs_and_preprocessing(cfg: Config, schema: FeatureSchema, train: Split):
    inputs: dict[str, keras.KerasTensor] = {}
    branches = []
    pre = cfg.preprocessing
    numeric = schema.numeric_columns
    if numeric:
        inp = keras.Input(shape=(len(numeric),), name=NUMERIC_INPUT, dtype="float32")
        inputs[NUMERIC_INPUT] = inp
        branches.append(_numeric_scaling(pre.numeric, train.inputs[NUMERIC_INPUT])(inp)
                        if pre.numeric != "none" else inp)
    for col in schema.other_columns:
        if col.kind == "categorical":
            inp = keras.Input(shape=(1,), name=col.name, dtype="string")
            branches.append(_categorical(pre.categorical, col, train.inputs[col.name])(inp))
        else:
            inp = keras.Input(shape=(), name=col.name, dtype="string")
            branches.append(_text(cfg, col, train.inputs[col.name])(inp))
        inputs[col.name] = inp
    if not branches:
        raise cfg.error("data.features", "no feature columns left to train on")
    return inputs, branches


def _numeric_scaling(mode: str, x: np.ndarray) -> keras.layers.Layer:
    x = np.asarray(x, dtype=np.float64)
    if mode == "standard":
        mean, var = x.mean(axis=0), x.var(axis=0)
    else:  # minmax as (x - min) / (max - min): Normalization with mean=min, variance=range^2
        lo, hi = x.min(axis=0), x.max(axis=0)
        mean, var = lo, (hi - lo) ** 2
    var = np.where(var > 0, var, 1.0)  # constant columns pass through centred, not divided by 0
    return keras.layers.Normalization(mean=mean.tolist(), variance=var.tolist(), name=f"scale_{mode}")


def _vocabulary(values: np.ndarray) -> list[str]:
    uniq, counts = np.unique(values.astype(str).ravel(), return_counts=True)
    order = np.lexsort((uniq, -counts))  # most frequent first, ties by name: stable across runs
    return [str(u) for u in uniq[order]]


def _categorical(mode: str, col: ColumnInfo, values: np.ndarray):
    vocab = _vocabulary(values)
    name = _layer_name(col.name)
    if mode == "one_hot":
        return keras.layers.StringLookup(vocabulary=vocab, output_mode="one_hot", name=f"onehot_{name}")
    lookup = keras.layers.StringLookup(vocabulary=vocab, output_mode="int", name=f"lookup_{name}")
    if mode == "none":  # ordinal code as one float feature
        return _chain(lookup, keras.layers.Flatten(name=f"flat_{name}"),
                      keras.layers.Activation("linear", dtype="float32", name=f"float_{name}"))
    dim = col.embedding_dim or min(50, (len(vocab) + 2) // 2)
    return _chain(lookup, keras.layers.Embedding(len(vocab) + 1, dim, name=f"embed_{name}"),
                  keras.layers.Flatten(name=f"flat_{name}"))


def _text(cfg: Config, col: ColumnInfo, values: np.ndarray):
    mode = col.output_mode or "multi_hot"
    max_tokens = col.max_tokens or DEFAULT_MAX_TOKENS
    name = _layer_name(col.name)
    probe = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode=mode,
                                           output_sequence_length=col.sequence_length if mode == "int" else None)
    probe.adapt(values.astype(str).ravel())
    vocab = probe.get_vocabulary()
    kwargs: dict[str, Any] = dict(max_tokens=max_tokens, output_mode=mode, name=f"text_{name}")
    if mode == "int":
        kwargs["output_sequence_length"] = col.sequence_length
        kwargs["vocabulary"] = vocab[2:]  # drop the mask "" and OOV tokens that adapt added
    else:
        kwargs["vocabulary"] = vocab[1:]  # drop the OOV token
        if mode == "tf_idf":
            kwargs["idf_weights"] = np.asarray(probe._lookup_layer.idf_weights)[1:]
    if len(vocab) <= (2 if mode == "int" else 1):
        raise cfg.error(f"data.columns.{col.name}", f"text column '{col.name}' has no tokens in the training rows")
    layer = keras.layers.TextVectorization(**kwargs)
    if mode == "int" and col.embedding_dim:
        return _chain(layer, keras.layers.Embedding(max_tokens, col.embedding_dim, name=f"embed_{name}"))
    return layer


def _layer_name(column: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in column)


def _chain(*layers):
    def call(x):
        for layer in layers:
            x = layer(x)
        return x
    return call


def _concat(cfg: Config, branches: list) -> keras.KerasTensor:
    ranks = {len(b.shape) for b in branches}
    if ranks != {2}:
        raise cfg.error("data.columns", "an int-sequence text column must be the only input (its output is a "
                        "sequence); use output_mode multi_hot/count/tf_idf to combine it with other columns")
    return keras.layers.Concatenate(name="features")(branches)


# ------------------------------------------------------------------------------ layers

def _initializer(value: Any) -> Any:
    if isinstance(value, dict):
        args = {k: v for k, v in value.items() if k != "type"}
        return keras.initializers.get({"class_name": _registry_class(keras.initializers, value["type"]),
                                       "config": args})
    return value


def _registry_class(module, name: str) -> str:
    norm = catalog.normalize(name)
    for attr in dir(module):
        obj = getattr(module, attr)
        if inspect.isclass(obj) and catalog.normalize(attr) == norm:
            return attr
    return name


def _construct(cfg: Config, spec: LayerSpec, path: str, default_init: bool = True) -> keras.layers.Layer:
    cls = getattr(keras.layers, spec.type, None)
    if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
        raise cfg.error(f"{path}.type", f"Keras has no layer '{spec.type}'; any class of keras.layers is allowed "
                        "(Dense, Dropout, Conv2D, LSTM, ...)")
    params, open_kwargs, required = catalog.init_params(cls)

    def raise_at(loc, msg):
        raise cfg.error(".".join(str(p) for p in loc), msg)

    kwargs = spec.kwargs()
    check_layer(spec.type, kwargs, tuple(path.split(".")),
                raise_at, {spec.type: {"params": params, "kwargs": open_kwargs, "required": required}})
    if default_init and cfg.model.kernel_initializer is not None and "kernel_initializer" in params \
            and "kernel_initializer" not in kwargs:
        kwargs["kernel_initializer"] = cfg.model.kernel_initializer
    for key in [k for k in kwargs if k.endswith("_initializer")]:
        kwargs[key] = _initializer(kwargs[key])
    if cfg.runtime.mixed_precision and path == "model.output":
        kwargs.setdefault("dtype", "float32")  # keep the head (and the loss) in float32
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise cfg.error(path, f"{spec.type}({_args(kwargs)}): {_first_line(e)}") from None


def _apply(cfg: Config, spec: LayerSpec, x, path: str, built: dict, default_init: bool = True):
    layer = _construct(cfg, spec, path, default_init)
    built[path] = layer
    try:
        return layer(x)
    except (TypeError, ValueError) as e:
        hint = ""
        if len(x.shape) == 2 and any(k in spec.type for k in ("Conv", "Pool", "LSTM", "GRU", "RNN")):
            hint = " (the input is flat: add a Reshape layer before it, e.g. {type: Reshape, target_shape: [8, 8, 1]})"
        raise cfg.error(path, f"{spec.type} cannot take an input of shape {tuple(x.shape)}: "
                        f"{_first_line(e)}{hint}") from None
    except Exception as e:  # an allocation failure (ResourceExhaustedError, MemoryError) names the layer
        if not _out_of_memory(e):
            raise
        raise cfg.error(path, f"{spec.type}({_args(spec.kwargs())}) on an input of shape {tuple(x.shape)}: its "
                        "weights cannot be allocated (out of memory); use smaller layer sizes") from None


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or type(e).__name__ == "ResourceExhaustedError" or "OOM when allocating" in str(e)


# Bytes per parameter to train: weights, gradients and up to two optimizer slots (Adam), float32.
TRAINING_BYTES_PER_PARAM = 16


def physical_memory() -> int | None:
    """Bytes of memory of this machine, None if unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: Config, model: keras.Model, built: dict[str, keras.layers.Layer]) -> None:
    """Refuse a model whose training state cannot fit in this machine's memory, naming its largest layer.

    (Free memory is no measure here: TensorFlow's allocator keeps what building the model took.)
    """
    total = physical_memory()
    params = model.count_params()
    need = params * TRAINING_BYTES_PER_PARAM
    if total is None or need <= total or not built:
        return
    path, layer = max(built.items(), key=lambda item: item[1].count_params())
    raise cfg.error(path, f"the model has {params:,} parameters ({layer.count_params():,} in this "
                    f"{type(layer).__name__}); training needs about {need / 2**30:.1f} GiB of memory and this "
                    f"machine has {total / 2**30:.1f} GiB; use smaller layer sizes")


def _args(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ---------------------------------------------------------------------------- the head

def _head(cfg: Config, schema: FeatureSchema, train: Split) -> LayerSpec | None:
    out = cfg.model.output
    if isinstance(out, LayerSpec):
        return out
    if out == "none":
        return None
    if schema.task == "regression":
        n = 1 if train.y is None or train.y.ndim == 1 else train.y.shape[1]
        return LayerSpec(type="Dense", units=n, name="output")
    kind = output_activation_kind(cfg, schema)
    if kind in ("sigmoid", "tanh"):
        return LayerSpec(type="Dense", units=1, activation=kind, name="output")
    return LayerSpec(type="Dense", units=len(schema.class_names or []), activation="softmax", name="output")


def _check_output(cfg: Config, schema: FeatureSchema, model: keras.Model, train: Split) -> None:
    shape = model.output.shape
    if len(shape) != 2:
        raise cfg.error("model.layers", f"the model output has shape {tuple(shape)}; it must be (batch, units): "
                        "add a Flatten or a pooling layer before the head")
    units = shape[-1]
    if schema.task == "multiclass" and units not in (len(schema.class_names), 1):
        raise cfg.error("model.output", f"the model ends in {units} units but the target has "
                        f"{len(schema.class_names)} classes")


def model_summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s), line_length=100)
    return "\n".join(lines)
