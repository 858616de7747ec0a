"""Input feeding: the one place that turns a `Split` into what Keras consumes.

In-memory arrays are converted to tensors once (no per-epoch copies). Each epoch's batch order
is a permutation drawn from (seed, epoch) only, so epoch N sees the same batches whether the
run got there straight or was resumed from a checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

import keras


def model_inputs(model: keras.Model, inputs: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    """Arrays -> tensors shaped like the model's inputs (strings as tf.string)."""
    out = {}
    for tensor in model.inputs:
        name = tensor.name
        if name not in inputs:
            raise KeyError(name)
        arr = inputs[name]
        if arr.dtype == object or arr.dtype.kind in "US":
            arr = arr.astype(str)
            if len(tensor.shape) == 1:
                arr = arr.reshape(-1)
            out[name] = tf.constant(arr, dtype=tf.string)
        else:
            out[name] = tf.convert_to_tensor(arr, dtype=tf.float32)
    return out


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return max(1, math.ceil(n_rows / batch_size))


class EpochCursor(keras.callbacks.Callback):
    """Tells the training dataset which epoch (counted from 1) Keras is about to run."""

    def __init__(self, first_epoch: int = 1):
        super().__init__()
        self.epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)


def training_dataset(x: dict[str, tf.Tensor], y: np.ndarray, *, batch_size: int, seed: int,
                     cursor: EpochCursor, shuffle: bool = True,
                     sample_weight: np.ndarray | None = None) -> tf.data.Dataset:
    """One epoch of batches, shuffled by (seed, epoch) where the epoch is read from `cursor`.

    Keras re-iterates the dataset each epoch (no steps_per_epoch), so the epoch boundary is
    exact also with steps_per_execution > 1, and the order depends on nothing but seed and epoch.
    """
    n = int(y.shape[0])
    y_t = tf.convert_to_tensor(y)
    w_t = None if sample_weight is None else tf.convert_to_tensor(sample_weight, dtype=tf.float32)
    full = n // batch_size
    rest = n - full * batch_size
    seed_t = tf.constant(seed, dtype=tf.int64)

    def epoch_batches(_):
        if shuffle:
            keys = tf.random.stateless_uniform([n], seed=tf.stack([seed_t, cursor.epoch.read_value()]),
                                               dtype=tf.float32)
            order = tf.argsort(keys, stable=True)
        else:
            order = tf.range(n)
        order = tf.cast(order, tf.int64)
        ds = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], [full, batch_size]))
        if rest:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size:]))
        return ds

    def gather(idx):
        xb = {k: tf.gather(v, idx) for k, v in x.items()}
        yb = tf.gather(y_t, idx)
        if w_t is None:
            return xb, yb
        return xb, yb, tf.gather(w_t, idx)

    steps = full + (1 if rest else 0)
    ds = tf.data.Dataset.from_tensors(0).flat_map(epoch_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps))  # lets Keras know the epoch length
    # A plain map: one gather per batch is cheap, and a parallel map is rewritten (with a native
    # warning on stderr) whenever op determinism is on.
    return ds.map(gather).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(x: dict[str, tf.Tensor], y: np.ndarray | None, batch_size: int) -> tf.data.Dataset:
    parts = x if y is None else (x, tf.convert_to_tensor(y))
    return tf.data.Dataset.from_tensor_slices(parts).batch(batch_size).prefetch(tf.data.AUTOTUNE)


# Seconds one execution (steps_per_execution batches, one call into TensorFlow) may take while a
# person watches the progress bar, which moves once per execution.
LIVELY_SECONDS = 0.5


def steps_for(step_seconds: float, most: int) -> int:
    """How many batches fit in one lively execution, between 1 and `most`."""
    if step_seconds <= 0:
        return most
    return max(1, min(most, int(LIVELY_SECONDS / step_seconds)))


def lively_steps(model: keras.Model, x: dict[str, tf.Tensor], batch_size: int, most: int) -> int:
    """`steps_per_execution` for a run watched on a terminal: a training step is timed as three
    forward passes of one batch (run eagerly, in inference mode: no weight, statistic or random
    state changes), so a slow model gets fewer batches per call and its bar keeps moving.
    Speed-only: the batches and their order do not depend on it."""
    import time

    one = {k: v[:batch_size] for k, v in x.items()}
    model(one, training=False)  # the first call builds what it needs
    start = time.perf_counter()
    model(one, training=False)
    return steps_for(3 * (time.perf_counter() - start), most)
