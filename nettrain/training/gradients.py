"""What one batch does to a model: the loss, the gradient of every trainable variable (with
`tf.GradientTape`, as a hand-written training loop computes it), the outputs of the layers whose
activation can die or saturate, and the size of the step an optimizer would take.

Pure functions on (model, x, y), shared by `nettrain inspect` (lifecycle/inspect.py) and the
`callbacks.gradient_stats` callback (`GradientStats`, per-layer gradient norms per epoch). They
never change the model: the forward pass runs in training mode (dropout on, batch statistics
used), and every non-trainable variable it touches (BatchNormalization's moving statistics, the
random state of dropout) is put back afterwards, so training goes on exactly as without them.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

import keras

from nettrain.report.gradients import COLUMN_PREFIX

# Activations by what can go wrong with them (names as `keras.activations.serialize` gives them).
DYING = {"relu", "relu6"}                            # a unit whose input is negative for every row outputs 0: dead
RELU_LIKE = DYING | {"leaky_relu", "elu", "gelu", "silu", "swish", "mish", "celu", "glu", "softplus"}
SATURATING = {"sigmoid": (0.01, 0.99), "hard_sigmoid": (0.01, 0.99), "tanh": (-0.99, 0.99),
              "hard_tanh": (-0.99, 0.99), "softsign": (-0.9, 0.9)}  # saturated: at or beyond these outputs
GLOROT_LIKE = set(SATURATING)                        # want Glorot (variance 1 / fan_avg)
SELF_NORMALIZING = {"selu"}                           # wants LeCun normal

# Layer classes that are an activation by themselves.
ACTIVATION_LAYERS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "leaky_relu"}


# ------------------------------------------------------------------------------ the batch

def first_rows(feed: Any, model: keras.Model, rows: int) -> tuple[dict[str, tf.Tensor], np.ndarray]:
    """The first `rows` rows of the training split (in the split's order: shuffled with the seed
    unless `data.split.shuffle` is false; a stream's rows in file order; an image folder's images
    decoded) as (model inputs, encoded targets): the batch `inspect` and `gradient_stats` measure on."""
    from nettrain.data.images import ImageDataset
    from nettrain.data.stream import StreamDataset
    from nettrain.data.types import Split
    from nettrain.model.compile import encode_targets
    from nettrain.training.feed import model_inputs

    dataset = feed.dataset
    if isinstance(dataset, StreamDataset):
        pieces, total = [], 0
        chunks = dataset.reader.rows(dataset.codes["train"], limit=rows)
        try:
            for part in chunks:
                pieces.append(part)
                total += len(part)
                if total >= rows:
                    break
        finally:
            chunks.close()
        split = Split.concat(pieces)
    elif isinstance(dataset, ImageDataset):  # its split holds the files' paths: the first images decoded
        split = Split.concat(list(dataset.split_rows(dataset.train.take(slice(0, rows)))))
    else:
        split = dataset.train
    inputs = {k: v[:rows] for k, v in split.inputs.items()}
    y = encode_targets(np.asarray(split.y)[:rows], feed.mode, feed.n_classes)
    return model_inputs(model, inputs), y


# ------------------------------------------------------------------------------ layers

def activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a layer applies to its output ('relu', 'sigmoid', ...), None for none or linear."""
    kind = ACTIVATION_LAYERS.get(type(layer).__name__)
    if kind is not None:
        return kind
    fn = getattr(layer, "activation", None)
    if fn is None or not callable(fn):
        return None
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # noqa: BLE001 - a custom callable: nothing to say about it
        return None
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") if isinstance(name.get("config"), dict) else name.get("class_name")
    if not isinstance(name, str) or name in ("linear", "softmax", "log_softmax"):
        return None
    return name


def initializer_of(layer: keras.layers.Layer) -> keras.initializers.Initializer | None:
    init = getattr(layer, "kernel_initializer", None)
    return init if isinstance(init, keras.initializers.Initializer) else None


def initializer_name(init: keras.initializers.Initializer | None) -> str | None:
    """`he_normal`, `glorot_uniform`, ... (the Keras alias), or `VarianceScaling(scale=2, mode=fan_in)`."""
    if init is None:
        return None
    names = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal", "HeNormal": "he_normal",
             "HeUniform": "he_uniform", "LecunNormal": "lecun_normal", "LecunUniform": "lecun_uniform",
             "RandomNormal": "random_normal", "RandomUniform": "random_uniform", "TruncatedNormal": "truncated_normal",
             "Orthogonal": "orthogonal", "Zeros": "zeros", "Ones": "ones", "Constant": "constant",
             "Identity": "identity"}
    cls = type(init).__name__
    if cls in names:
        return names[cls]
    if isinstance(init, keras.initializers.VarianceScaling):
        return f"VarianceScaling(scale={init.scale:g}, mode={init.mode}, distribution={init.distribution})"
    return cls


def initializer_family(init: keras.initializers.Initializer | None) -> str | None:
    """'he' (variance 2 / fan_in), 'glorot' (1 / fan_avg), 'lecun' (1 / fan_in), or None (another kind)."""
    if not isinstance(init, keras.initializers.VarianceScaling):
        return None
    scale, mode = float(init.scale), init.mode
    if math.isclose(scale, 2.0) and mode == "fan_in":
        return "he"
    if math.isclose(scale, 1.0) and mode == "fan_avg":
        return "glorot"
    if math.isclose(scale, 1.0) and mode == "fan_in":
        return "lecun"
    return None


def kernel_of(layer: keras.layers.Layer):
    """The layer's first trainable variable of rank >= 2 (Dense/Conv kernel, Embedding matrix)."""
    return next((v for v in layer.trainable_variables if len(v.shape) >= 2), None)


# ------------------------------------------------------------------------------ one batch

@dataclass
class BatchGradients:
    loss: float
    variables: list                     # model.trainable_variables
    gradients: list[np.ndarray | None]  # one per variable (None: the loss does not depend on it)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # watched layer name -> its output

    def norm(self, i: int) -> float | None:
        g = self.gradients[i]
        return None if g is None else float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))


@contextlib.contextmanager
def preserved_state(model: keras.Model) -> Iterator[None]:
    """Put every non-trainable variable (moving statistics, random states) back on the way out."""
    saved = [(v, v.numpy()) for v in model.non_trainable_variables]
    try:
        yield
    finally:
        for v, value in saved:
            v.assign(value)


def batch_gradients(model: keras.Model, x: Any, y: Any, *, watch: list[keras.layers.Layer] = ()) -> BatchGradients:
    """The compiled loss of `model` on (x, y) and its gradient for every trainable variable:

        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred)   # compiled loss (+ regularization)
        gradients = tape.gradient(loss, model.trainable_variables)

    With `watch`, the outputs of those layers come from the same forward pass (a probe model over
    the same layers and weights). The model's state is left as it was (`preserved_state`).
    """
    variables = list(model.trainable_variables)
    watch = [layer for layer in watch if layer is not None]
    probe = None
    if watch:
        probe = keras.Model(inputs=model.input, outputs=[model.outputs[0]] + [layer.output for layer in watch])
    with preserved_state(model):
        with tf.GradientTape() as tape:
            if probe is None:
                y_pred, watched = model(x, training=True), []
            else:
                outs = probe(x, training=True)
                y_pred, watched = outs[0], outs[1:]
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        grads = tape.gradient(loss, variables)
    outputs = {layer.name: np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
               for layer, out in zip(watch, watched)}
    return BatchGradients(loss=float(keras.ops.convert_to_numpy(loss)), variables=variables,
                          gradients=[None if g is None else np.asarray(tf.convert_to_tensor(g), dtype=np.float64)
                                     for g in grads],
                          outputs=outputs)


def layer_gradient_norms(model: keras.Model, result: BatchGradients) -> dict[str, float]:
    """Layer name -> the norm of the gradient of all its trainable variables together, for every
    layer that has trainable variables (in model order)."""
    index = {id(v): i for i, v in enumerate(result.variables)}
    out: dict[str, float] = {}
    for layer in model.layers:
        own = [index[id(v)] for v in layer.trainable_variables if id(v) in index]
        if not own:
            continue
        squares = [result.norm(i) ** 2 for i in own if result.gradients[i] is not None]
        out[layer.name] = float(math.sqrt(sum(squares))) if squares else 0.0
    return out


def activation_shares(kind: str | None, output: np.ndarray) -> dict[str, float | None]:
    """`dead`: the share of ReLU units that give 0 for every row of the batch; `saturated`: the share
    of sigmoid/tanh outputs (rows x units) at the flat ends of the curve. None where it does not apply."""
    units = output.reshape(output.shape[0], -1) if output.ndim > 1 else output.reshape(-1, 1)
    dead = saturated = None
    if kind in DYING and units.size:
        dead = float(np.mean(np.all(units <= 0.0, axis=0)))
    if kind in SATURATING and units.size:
        lo, hi = SATURATING[kind]
        saturated = float(np.mean((units <= lo) | (units >= hi)))
    return {"dead": dead, "saturated": saturated}


def update_ratios(model: keras.Model, result: BatchGradients, optimizer: keras.optimizers.Optimizer) -> list[float | None]:
    """||step|| / ||weights|| per trainable variable for one step of `optimizer` (fresh: its first step)
    with these gradients; the weights are put back afterwards. None where the weights are all 0."""
    variables = result.variables
    before = [v.numpy() for v in variables]
    pairs = [(tf.constant(g, dtype=v.dtype), v) for g, v in zip(result.gradients, variables) if g is not None]
    try:
        optimizer.apply_gradients(pairs)
        after = [v.numpy() for v in variables]
    finally:
        for v, value in zip(variables, before):
            v.assign(value)
    ratios: list[float | None] = []
    for old, new, g in zip(before, after, result.gradients):
        size = float(np.linalg.norm(np.asarray(old, dtype=np.float64)))
        if g is None or size == 0.0 or not math.isfinite(size):
            ratios.append(None)
            continue
        ratios.append(float(np.linalg.norm(np.asarray(new, dtype=np.float64) - old) / size))
    return ratios


def stats(values: np.ndarray) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return {"mean": 0.0, "std": 0.0, "norm": 0.0}
    return {"mean": float(a.mean()), "std": float(a.std()), "norm": float(np.linalg.norm(a))}


# ------------------------------------------------------------------------------ the callback

class GradientStats(keras.callbacks.Callback):
    """`callbacks.gradient_stats`: every `every` epochs (the first, then every `every`-th), the
    gradient norm of each layer on one fixed batch (the first `rows` training rows), measured at
    the end of the epoch. `row(epoch)` gives them as metrics.csv columns (`grad_norm/<layer>`), and
    with a TensorBoard folder they are written there too (run `gradients`, one scalar per layer)."""

    def __init__(self, x: Any, y: Any, *, every: int = 1, tensorboard: Path | None = None):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.x, self.y, self.every = x, y, every
        self.tensorboard = Path(tensorboard) if tensorboard is not None else None
        self._writer = None
        self._values: tuple[int, dict[str, float]] | None = None

    def due(self, epoch: int) -> bool:
        """Epochs counted from 1: the first, then every `every`-th (1, 1 + every, ...)."""
        return (epoch - 1) % self.every == 0

    def measure(self) -> dict[str, float]:
        result = batch_gradients(self.model, self.x, self.y)
        return layer_gradient_norms(self.model, result)

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch + 1):
            self._values = None
            return
        norms = self.measure()
        self._values = (epoch + 1, norms)
        if self.tensorboard is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(str(self.tensorboard))
            with self._writer.as_default():
                for name, value in norms.items():
                    tf.summary.scalar(f"{COLUMN_PREFIX}{name}", value, step=epoch)
            self._writer.flush()

    def row(self, epoch: int) -> dict[str, float]:
        """The metrics.csv cells of `epoch` (from 1): {} when it was not measured."""
        if self._values is None or self._values[0] != epoch:
            return {}
        return {f"{COLUMN_PREFIX}{name}": value for name, value in self._values[1].items()}

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
