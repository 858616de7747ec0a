"""keras.Model(raw inputs -> preprocessing layers -> the configured stack -> output head).

Preprocessing statistics come from the statistics of the training rows the data stage computed
(`Dataset.stats`, a `data.stats.TrainStats`: the same for data in memory and a stream of chunks;
nothing here reads the training arrays) and are passed to the layers as constructor arguments
(Normalization mean/variance, lookup vocabularies, the target's Rescaling), so they live in the
layer config and a saved `.h5` model loads with plain `keras.models.load_model`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import keras

from nettrain import keras_compat
from nettrain.config import catalog, coherence
from nettrain.config.names import check_layer
from nettrain.config.schema import Config, LayerSpec
from nettrain.data.stats import TextSource, TrainStats, train_stats
from nettrain.data.types import NUMERIC_INPUT, ColumnInfo, Dataset, FeatureSchema, input_name
from nettrain.model.numeric import numeric_scaling
from nettrain.store import plugins
from nettrain.words import ascii_name, first_line
from nettrain.model.compile import TARGET_LAYER, compile_model, label_mode, output_activation_kind

DEFAULT_MAX_TOKENS = 10_000


def build_model(cfg: Config, dataset: Dataset, *, compile: bool = True, notes: list[str] | None = None) -> keras.Model:
    """The model; what nettrain added or filled in for the user's stack is appended to `notes`."""
    plugins.import_listed(cfg.plugins, cfg.source.file or "<config>")  # their objects registered with Keras first
    schema = dataset.schema
    stats = train_stats(dataset)
    notes = notes if notes is not None else []
    vocab: dict[str, int] = {}  # int-sequence text column -> vocabulary size (mask and OOV included)
    inputs, branches = _inputs_and_preprocessing(cfg, schema, stats, vocab, notes)
    x = branches[0] if len(branches) == 1 else _concat(cfg, branches)
    x = _row_shape(cfg, schema, x, notes)
    built: dict[str, keras.layers.Layer] = {}  # key path -> layer
    for i, spec in enumerate(cfg.model.layers):
        if i == 0 and spec.type == "Embedding" and vocab:
            spec = _fill_embedding(cfg, spec, vocab, notes)
        x = _apply(cfg, spec, x, f"model.layers.{i}", built)
    head = _head(cfg, schema, stats)
    if head is not None:
        x = _apply(cfg, head, x, "model.output", built, default_init=False)
    x = _target_scaling(cfg, schema, stats, x, notes)
    model = keras.Model(inputs=inputs, outputs=x, name=_model_name(cfg.name))
    _check_output(cfg, schema, model)
    _check_memory(cfg, model, built)
    if compile:
        compile_model(cfg, model, schema)
    return model


def _model_name(name: str | None) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in (name or "model"))


# ------------------------------------------------------------------------- preprocessing

def _user_embeds(cfg: Config) -> bool:
    """The user's stack starts with its own Embedding (a Keras text model as written)."""
    return bool(cfg.model.layers) and cfg.model.layers[0].type == "Embedding"


def _fill_embedding(cfg: Config, spec: LayerSpec, vocab: dict[str, int], notes: list[str]) -> LayerSpec:
    """`Embedding` first on an int-sequence text column: input_dim is the vocabulary size unless given."""
    column, size = next(iter(vocab.items()))
    given = spec.kwargs().get("input_dim")
    if given is None:
        notes.append(f"model.layers.0 Embedding: input_dim {size} filled in from the vocabulary of '{column}'")
        return LayerSpec(**{**spec.model_dump(), "input_dim": size})
    if given < size:
        raise cfg.error("model.layers.0.input_dim", f"Embedding input_dim {given} is smaller than the vocabulary of "
                        f"'{column}' ({size} token ids, mask and out-of-vocabulary included); omit input_dim "
                        f"(nettrain fills it in) or set data.columns.{column}.max_tokens: {given}")
    return spec


def _inputs_and_preprocessing(cfg: Config, schema: FeatureSchema, stats: TrainStats, vocab: dict[str, int],
                              notes: list[str]):
    inputs: dict[str, keras.KerasTensor] = {}
    branches = []
    pre = cfg.preprocessing
    from nettrain.data.images import is_image_config

    if is_image_config(cfg):  # an image folder
        return _image_input(cfg)
    numeric = schema.numeric_columns
    if numeric:
        inp = keras.Input(shape=(len(numeric),), name=NUMERIC_INPUT, dtype="float32")
        inputs[NUMERIC_INPUT] = inp
        branches.append(numeric_scaling(pre.numeric, stats.numeric, numeric, notes)(inp)
                        if pre.numeric != "none" else inp)
    for col in schema.other_columns:
        name = input_name(col.name)
        if col.kind == "categorical":
            inp = keras.Input(shape=(1,), name=name, dtype="string")
            branches.append(_categorical(pre.categorical, col, stats.categories[col.name])(inp))
        else:
            inp = keras.Input(shape=(), name=name, dtype="string")
            branches.append(_text(cfg, col, stats.texts[col.name], vocab, notes)(inp))
        inputs[name] = inp
    if not branches:
        raise cfg.error("data.features", "no feature columns left to train on")
    return inputs, branches


# The rank of the rows (without the batch) a stack's first layer takes, by the end of its type name
# (augmentation layers Random* take images); a stack that starts otherwise takes the columns as a vector.
_ROW_RANKS = (("1D", 2), ("2D", 3), ("3D", 4), ("LSTM", 2), ("GRU", 2), ("SimpleRNN", 2), ("Bidirectional", 2))


def _first_layer_rank(cfg: Config) -> int | None:
    if not cfg.model.layers:
        return None
    kind = cfg.model.layers[0].type
    if kind.startswith("Random") and kind != "RandomFourierFeatures":
        return 3
    return next((rank for end, rank in _ROW_RANKS if kind.endswith(end) or kind == end), None)


def _row_shape(cfg: Config, schema: FeatureSchema, x, notes: list[str]):
    """An .npz source whose rows have more than one dimension ((28, 28) images, (t, f) sequences) keeps
    their shape for a stack that starts with a layer taking such rows (Conv*/*Pooling*, an RNN, Random*
    augmentation): the scaled columns x0..xN are reshaped back into the row shape, a 2-D row given one
    channel for a 2-D layer. A stack that starts otherwise (Dense, Flatten, its own Reshape) gets the
    columns as one vector, as before."""
    from nettrain.data.sources import row_shape

    rank = _first_layer_rank(cfg)
    if rank is None or len(x.shape) != 2:
        return x
    shape = row_shape(cfg)
    numeric = schema.numeric_columns
    if shape is None or int(np.prod(shape)) != len(numeric) or numeric != [f"x{i}" for i in range(len(numeric))]:
        return x
    if len(shape) == rank - 1:
        shape = (*shape, 1)
    if len(shape) != rank:
        return x
    notes.append(f"the .npz rows keep their shape {list(shape)} for {cfg.model.layers[0].type} "
                 f"(model.layers.0): Reshape after the scaling of x0..x{len(numeric) - 1}")
    return keras.layers.Reshape(shape, name="row_shape")(x)


def _image_input(cfg: Config):
    """An image folder's one input, (height, width, channels) pixels 0..255, rescaled to 0..1 inside the
    model (so predict takes raw images)."""
    from nettrain.data.images import IMAGE_INPUT, ImageSpec

    inp = keras.Input(shape=ImageSpec.of(cfg.data.images).shape, name=IMAGE_INPUT, dtype="float32")
    return {IMAGE_INPUT: inp}, [keras.layers.Rescaling(1 / 255, name="rescaling")(inp)]


def _vocabulary(counts: dict[str, int]) -> list[str]:
    """Most frequent first, ties by value: stable across runs."""
    return [str(value) for value, _ in sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))]


def _categorical(mode: str, col: ColumnInfo, counts: dict[str, int]):
    """`preprocessing.categorical` `mode` for the column, unless the column has its own `embedding_dim`
    (`data.columns.X.embedding_dim`, or chosen for a column with many values): an embedding then."""
    vocab = _vocabulary(counts)
    name = _layer_name(col.name)
    if col.embedding_dim is not None:
        mode = "embedding"
    if mode == "one_hot":
        return keras.layers.StringLookup(vocabulary=vocab, output_mode="one_hot", name=f"onehot_{name}")
    lookup = keras.layers.StringLookup(vocabulary=vocab, output_mode="int", name=f"lookup_{name}")
    if mode == "none":  # ordinal code as one float feature
        return _chain(lookup, keras.layers.Flatten(name=f"flat_{name}"),
                      keras.layers.Activation("linear", dtype="float32", name=f"float_{name}"))
    dim = col.embedding_dim or min(50, (len(vocab) + 2) // 2)
    return _chain(lookup, keras.layers.Embedding(len(vocab) + 1, dim, name=f"embed_{name}"),
                  keras.layers.Flatten(name=f"flat_{name}"))


def _text(cfg: Config, col: ColumnInfo, texts: TextSource, vocab_sizes: dict[str, int], notes: list[str]):
    mode = col.output_mode or "multi_hot"
    max_tokens = col.max_tokens or DEFAULT_MAX_TOKENS
    name = _layer_name(col.name)
    probe = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode=mode,
                                           output_sequence_length=col.sequence_length if mode == "int" else None)
    _adapt(probe, texts)
    vocab = probe.get_vocabulary()
    if len(vocab) <= (2 if mode == "int" else 1):
        raise cfg.error(f"data.columns.{col.name}", f"text column '{col.name}' has no tokens in the training rows")
    kwargs: dict[str, Any] = dict(max_tokens=max_tokens, output_mode=mode, name=f"text_{name}")
    if mode == "int":
        kwargs["output_sequence_length"] = col.sequence_length
        kwargs["vocabulary"] = vocab[2:]  # drop the mask "" and OOV tokens that adapt added
    else:
        kwargs["vocabulary"] = vocab[1:]  # drop the OOV token
        if mode == "tf_idf":
            kwargs["idf_weights"] = keras_compat.adapted_idf_weights(probe)
    layer = keras.layers.TextVectorization(**kwargs)
    size = layer.vocabulary_size()
    length = f", sequences of {col.sequence_length}" if mode == "int" and col.sequence_length else ""
    notes.append(f"data.columns.{col.name}: TextVectorization (output_mode {mode}, {size} tokens{length}) added "
                 "as the first layer")
    if mode != "int":
        return layer
    vocab_sizes[col.name] = size
    if _user_embeds(cfg):  # the user's own Embedding comes next: no second one
        return layer
    if col.embedding_dim:
        notes.append(f"data.columns.{col.name}: Embedding({size}, {col.embedding_dim}) added after it "
                     "(embedding_dim)")
        return _chain(layer, keras.layers.Embedding(size, col.embedding_dim, name=f"embed_{name}"))
    return layer


def _adapt(probe: keras.layers.TextVectorization, texts: TextSource) -> None:
    """`probe.adapt` over one pass of a column's training texts: one array in memory, else a
    tf.data pipeline over the chunks (Keras accumulates the same counts batch by batch)."""
    parts = texts()
    if isinstance(parts, (list, tuple)) and len(parts) == 1:
        probe.adapt(np.asarray(parts[0]).astype(str).ravel())
        return
    import tensorflow as tf

    chunks = iter(parts)
    probe.adapt(tf.data.Dataset.from_generator(lambda: (np.asarray(c).astype(str).ravel() for c in chunks),
                                               output_signature=tf.TensorSpec([None], tf.string)))


def _layer_name(column: str) -> str:
    """A column's part of its layers' names: TensorFlow's scope names take ASCII letters, digits and
    `_` only, so any other character is `_`, and a name so changed ends in a hash of the column's
    own (`größe` -> `gr__e_c4be1f`; `a b` and `a_b` stay apart)."""
    plain, tag = ascii_name(column)
    return plain if plain == column else f"{plain}_{tag}"


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

# Layer arguments that name a Keras object, by the end of their name.
OBJECT_KINDS = {"_initializer": (keras.initializers, "initializer"), "_regularizer": (keras.regularizers, "regularizer"),
                "_constraint": (keras.constraints, "constraint")}


def keras_object(cfg: Config, key: str, value: Any, where: str) -> Any:
    """An initializer, regularizer or constraint as Keras users write it in YAML: a name (`l2`,
    `he_normal`, `max_norm`), `{name_or_type: ..., args...}`, or one name with its argument(s)
    (`{l2: 0.01}`, `{l1_l2: {l1: 0.01, l2: 0.01}}`, `{max_norm: 3}`)."""
    module, what = next(v for suffix, v in OBJECT_KINDS.items() if key.endswith(suffix))
    if value is None:
        return None
    name, args, positional = value, {}, None
    if isinstance(value, dict):
        if "class_name" in value:  # Keras's own serialized form
            name, args = value["class_name"], dict(value.get("config") or {})
        elif "type" in value or "name" in value:
            field = "type" if "type" in value else "name"
            name, args = value[field], {k: v for k, v in value.items() if k != field}
        elif len(value) == 1:
            (name, arg), = value.items()
            args, positional = (arg, None) if isinstance(arg, dict) else ({}, arg)
        else:
            raise cfg.error(where, f"{what} {value!r}: write a name (e.g. l2), {{type: NAME, ...arguments}} or "
                            "{NAME: argument}, e.g. {l2: 0.01}")
    cls = catalog.keras_class(module, name)
    try:
        if cls is None:
            if args or positional is not None:
                raise ValueError(f"Keras has no {what} '{name}'")
            return module.get(name)
        return cls(positional, **args) if positional is not None else cls(**args)
    except (TypeError, ValueError) as e:
        raise cfg.error(where, f"{what} {value!r}: {first_line(e)} (any name from keras.{what}s is allowed, "
                        f"with its arguments)") from None


def _construct(cfg: Config, spec: LayerSpec, path: str, default_init: bool = True) -> keras.layers.Layer:
    cls = catalog.keras_class(keras.layers, spec.type, keras.layers.Layer, exact=True)
    if cls is None:
        raise cfg.error(f"{path}.type", f"Keras has no layer '{spec.type}'; any class of keras.layers is allowed "
                        "(Dense, Dropout, Conv2D, LSTM, ...)")
    params, open_kwargs, required = catalog.init_params(cls)

    def raise_at(loc, msg):
        raise cfg.error(".".join(str(p) for p in loc), msg)

    kwargs = spec.kwargs()
    check_layer(spec.type, kwargs, tuple(path.split(".")),
                raise_at, {spec.type: {"params": params, "kwargs": open_kwargs, "required": required}})
    where = {key: f"{path}.{key}" for key in kwargs}
    if default_init and cfg.model.kernel_initializer is not None and "kernel_initializer" in params \
            and "kernel_initializer" not in kwargs:
        kwargs["kernel_initializer"] = cfg.model.kernel_initializer
        where["kernel_initializer"] = "model.kernel_initializer"
    for key in [k for k in kwargs if k.endswith(tuple(OBJECT_KINDS))]:
        kwargs[key] = keras_object(cfg, key, kwargs[key], where[key])
    if cfg.runtime.mixed_precision and path == "model.output":
        kwargs.setdefault("dtype", "float32")  # keep the head (and the loss) in float32
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise cfg.error(path, f"{spec.type}({_args(kwargs)}): {first_line(e)}") from None


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
                        f"{first_line(e)}{hint}") from None
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




# ---------------------------------------------------------------------------- the head

def _head(cfg: Config, schema: FeatureSchema, stats: TrainStats) -> LayerSpec | None:
    out = cfg.model.output
    if isinstance(out, LayerSpec):
        return out
    if out == "none":
        return None
    if schema.task == "regression":
        n = stats.target.columns if stats.target is not None else 1
        return LayerSpec(type="Dense", units=n, name="output")
    kind = output_activation_kind(cfg, schema)
    if kind in ("sigmoid", "tanh"):
        return LayerSpec(type="Dense", units=1, activation=kind, name="output")
    return LayerSpec(type="Dense", units=len(schema.class_names or []), activation="softmax", name="output")


def _target_scaling(cfg: Config, schema: FeatureSchema, stats: TrainStats, x, notes: list[str]):
    """preprocessing.target standard (regression): the head predicts the standardized target and a
    Rescaling(scale=std, offset=mean) layer (the training rows' statistics, per target column) puts it
    back into the target's units, so predictions and metrics are in those units and the model file
    loads with plain Keras. The loss weight that makes training step as on the standardized target is
    set at compile time, from this layer (`compile.loss_weight`)."""
    if schema.task != "regression" or cfg.preprocessing.target != "standard" or stats.target is None:
        return x
    bounded = _head_activation(cfg)
    if bounded is not None:
        where = "model.output" if isinstance(cfg.model.output, LayerSpec) else \
            f"model.layers.{len(cfg.model.layers) - 1}"
        notes.append(f"preprocessing.target: standard not applied: the output layer ({where}) ends in the "
                     f"activation {bounded}, whose range is meant in the target's units; the model trains on the "
                     "raw target (remove the activation to train on the standardized one, or set "
                     "preprocessing.target: none to silence this)")
        return x
    target = stats.target
    std = target.std
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)  # a constant target is centred only
    mean = np.where(np.isfinite(target.mean), target.mean, 0.0)
    units = x.shape[-1]
    if target.columns > 1 and units != target.columns:
        head = "model.output" if cfg.model.output != "none" else f"model.layers.{len(cfg.model.layers) - 1}"
        raise cfg.error(head, f"the model gives {units} outputs per row but the target has {target.columns} "
                        f"columns; fix: output: auto, or units: {target.columns}")
    one = target.columns == 1
    kwargs: dict[str, Any] = dict(scale=float(std[0]) if one else std.tolist(),
                                  offset=float(mean[0]) if one else mean.tolist(), name=TARGET_LAYER)
    if cfg.runtime.mixed_precision:
        kwargs["dtype"] = "float32"  # 5000 + 800 * z in float16 would be off by units
    shown = (f"{kwargs['scale']:.6g}", f"{kwargs['offset']:.6g}") if one else ("std per column", "mean per column")
    notes.append(f"preprocessing.target: standard: the head predicts the standardized target; "
                 f"Rescaling(scale={shown[0]}, offset={shown[1]}) puts it back in the target's units")
    return keras.layers.Rescaling(**kwargs)(x)


# Layer types that are an activation by themselves (their outputs bounded or one-signed).
ACTIVATION_LAYERS = {"activation", "relu", "leakyrelu", "elu", "prelu", "softmax", "thresholdedrelu"}


def _head_activation(cfg: Config) -> str | None:
    """The non-linear activation the regression output ends in (an explicit head, or the last layer of
    the stack with `output: none`), None for a linear one (the auto head). A head like
    Dense(1, activation=relu) keeps a price positive; on the standardized target (half of it below 0)
    it would cut off every prediction below the mean, so such a head trains on the raw target."""
    out = cfg.model.output
    if isinstance(out, LayerSpec):
        spec = out
    elif out == "none" and cfg.model.layers:
        spec = cfg.model.layers[-1]
    else:
        return None
    kwargs = spec.kwargs()
    kind = catalog.normalize(spec.type)
    activation = kwargs.get("activation")
    if kind in ACTIVATION_LAYERS and kind != "activation":
        return spec.type
    if activation is None or (isinstance(activation, str) and catalog.normalize(activation) == "linear"):
        return None
    return activation if isinstance(activation, str) else repr(activation)


def _check_output(cfg: Config, schema: FeatureSchema, model: keras.Model) -> None:
    shape = model.output.shape
    if len(shape) != 2:
        raise cfg.error("model.layers", f"the model output has shape {tuple(shape)}; it must be (batch, units): "
                        "add a Flatten or a pooling layer before the head")
    units = shape[-1]
    mode = label_mode(cfg, schema)
    head = "model.output" if cfg.model.output != "none" else f"model.layers.{len(cfg.model.layers) - 1}"
    problem = coherence.head_problem(mode, units, len(schema.class_names) if schema.class_names else None,
                                     cfg.training.loss)
    if problem:
        raise cfg.error(head, problem)
    problem = coherence.loss_problem(cfg.training.loss, mode)
    if problem:
        raise cfg.error("training.loss", problem)
    found = coherence.metrics_problem(cfg, mode, units)
    if found:
        raise cfg.error(".".join(map(str, found[0])), found[1])


SUMMARY_WIDTH = 120


def model_summary(model: keras.Model) -> str:
    """Keras's layer table at a fixed width: never cut to the terminal's (or a pipe's 80) columns.

    Keras sizes the table from the terminal and renders it in a Rich console that reads COLUMNS,
    so COLUMNS is set for the call.
    """
    lines: list[str] = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(SUMMARY_WIDTH + 4)
    try:
        model.summary(print_fn=lambda s, **_: lines.append(s), line_length=SUMMARY_WIDTH)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(line.rstrip() for line in lines)
