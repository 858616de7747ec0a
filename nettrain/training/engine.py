"""The epoch loop for data held in memory: Keras's own `train_step` and `test_step`, driven by one
`tf.function` per run of `steps_per_execution` batches that are gathered inside the graph from
tensors, instead of `model.fit` pulling each batch from a `tf.data` iterator.

The step is Keras's (loss, compiled metrics, optimizer update, loss scaling), the callbacks are
Keras callbacks in a `keras.callbacks.CallbackList`, called as `fit` calls them (batch hooks once
per run of batches, so a NaN guard, the progress bar and a signal poll keep working), and each
epoch's batches are the same (seed, epoch) permutation the tf.data feed gives: only the engine
differs. Measured on the bench MLP (200k x 20, Dense 64-64, batch 256, 2 CPU cores, Keras 3.15):
1.5-1.6x the samples/s of Keras `fit` with `steps_per_execution=32` on numpy arrays, because
nothing crosses from the host per batch (no iterator `get_next`, no per-execution input copy).

`ArrayLoop` serves a feed that holds arrays, `StreamLoop` a stream (its windows of rows copied
out one graph call at a time), both without a distribution strategy; under a strategy
`training.distributed` runs the same `train_step` through `strategy.run`, and with TensorBoard
`model.fit` trains (its graph is what TensorBoard draws).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import tensorflow as tf

import keras

from nettrain.training.feed import epoch_order


def _python(logs: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in logs.items()}


class _Loop:
    """The epoch driver both loops share: Keras callbacks in a CallbackList, called as `fit` calls
    them (batch hooks once per graph call of up to `steps_per_call` batches), validation through
    `model.evaluate` after each epoch, `model.stop_training` obeyed after every call."""

    def __init__(self, model: keras.Model, *, steps: int, steps_per_call: int):
        self.model, self.steps = model, max(1, steps)
        self.per_call = max(1, min(int(steps_per_call), self.steps))

    def _epoch(self, epoch: int, calls: "_Calls") -> dict[str, float]:
        raise NotImplementedError

    def fit(self, *, initial_epoch: int, epochs: int, callbacks: list[keras.callbacks.Callback],
            validation_data: tf.data.Dataset | None = None) -> keras.callbacks.History:
        model = self.model
        with self._session():
            cbs = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=False, model=model,
                                               verbose=0, epochs=epochs, steps=self.steps)
            model.stop_training = False
            cbs.on_train_begin()
            logs: dict[str, float] = {}
            for epoch in range(initial_epoch, epochs):
                model.reset_metrics()
                cbs.on_epoch_begin(epoch)
                epoch_logs = dict(self._epoch(epoch + 1, _Calls(cbs, model)))
                if validation_data is not None:  # as fit: also after a stop within the epoch
                    val = self._validate(validation_data, cbs.callbacks)
                    epoch_logs.update({f"val_{k}": v for k, v in val.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                logs = epoch_logs
                if self._stop():
                    break
            cbs.on_train_end(logs)
        return model.history

    def _session(self) -> contextlib.AbstractContextManager:
        """What surrounds the whole training (a distributed loop: its peers, its state built first)."""
        return contextlib.nullcontext()

    def _validate(self, data: tf.data.Dataset, callbacks: list[keras.callbacks.Callback]) -> dict[str, float]:
        """The validation metrics after an epoch."""
        return _python(self.model.evaluate(data, verbose=0, return_dict=True, callbacks=callbacks))

    def _stop(self) -> bool:
        """Whether training stops after this epoch."""
        return bool(self.model.stop_training)


class _Calls:
    """Counts an epoch's batches for the batch hooks around each graph call."""

    def __init__(self, cbs: keras.callbacks.CallbackList, model: keras.Model):
        self.cbs, self.model, self.done, self.logs = cbs, model, 0, {}

    def run(self, count: int, call) -> bool:
        """Call `call()` (which runs `count` batches); False once training must stop."""
        self.cbs.on_train_batch_begin(self.done)
        self.logs = _python(call())
        self.done += count
        self.cbs.on_train_batch_end(self.done - 1, self.logs)
        return not self.model.stop_training


class ArrayLoop(_Loop):
    """Train `model` on `x`/`y` (tensors of all training rows) in batches of `batch_size`, in the
    order drawn from (seed, epoch counted from 1), `steps_per_call` batches per graph call."""

    def __init__(self, model: keras.Model, x: dict[str, tf.Tensor], y: tf.Tensor, *, batch_size: int, seed: int,
                 steps_per_call: int, class_weight: dict[int, float] | None = None, mode: str = "regression"):
        self.n = int(y.shape[0])
        super().__init__(model, steps=-(-self.n // batch_size), steps_per_call=steps_per_call)
        weights = class_sample_weights(y.numpy(), mode, class_weight)
        self.x, self.y = x, y
        self.w = None if weights is None else tf.constant(weights)
        self.batch_size, self.seed = batch_size, seed
        self._run = tf.function(self._steps, reduce_retracing=True)

    def order(self, epoch: int) -> tf.Tensor:
        """Row order of `epoch` (from 1): the permutation `feed.training_dataset` gives too."""
        return epoch_order(self.n, self.seed, epoch)

    def _step(self, order: tf.Tensor, i: tf.Tensor):
        start = i * self.batch_size
        idx = order[start:tf.minimum(start + self.batch_size, self.n)]
        xb = {k: tf.gather(v, idx) for k, v in self.x.items()}
        yb = tf.gather(self.y, idx)
        return self.model.train_step((xb, yb) if self.w is None else (xb, yb, tf.gather(self.w, idx)))

    def _steps(self, order: tf.Tensor, first: tf.Tensor, count: tf.Tensor):
        logs = self._step(order, first)  # the loop's state needs the logs' structure first
        for i in tf.range(first + 1, first + count):
            logs = self._step(order, i)
        return logs

    def _epoch(self, epoch: int, calls: _Calls) -> dict[str, float]:
        order = self.order(epoch)
        return each_call(self.steps, self.per_call, calls, lambda first, count: self._run(order, first, count))


def each_call(steps: int, per_call: int, calls: "_Calls", run) -> dict[str, float]:
    """An epoch of `steps` batches as graph calls of up to `per_call` batches: `run(first, count)`
    (int64 tensors) for each, through `calls` (callbacks, stop requests); the epoch's logs."""
    for first in range(0, steps, per_call):
        count = min(per_call, steps - first)
        if not calls.run(count, lambda: run(tf.constant(first, tf.int64), tf.constant(count, tf.int64))):
            break
    return calls.logs


class StreamLoop(_Loop):
    """Train `model` on an epoch's rows that arrive in pieces: `chunks(epoch)` yields (x, y) numpy
    pieces in the epoch's order, or (x, y, order) pieces whose rows are served in `order` (positions
    into x and y: a shuffle window held once, in file order). The rows are cut into batches of
    `batch_size` that run across piece ends (the rows a piece leaves over go in front of the next
    one), as `Dataset.rebatch` cuts them; the last batch of the epoch may be short. `steps` is the
    epoch's number of batches (for the callbacks' progress). Only one graph call's rows are copied out
    of a piece at a time (`np.take` of its positions), and they are what becomes tensors."""

    def __init__(self, model: keras.Model, chunks, *, steps: int, batch_size: int, steps_per_call: int,
                 class_weight: dict[int, float] | None = None, mode: str = "regression"):
        super().__init__(model, steps=steps, steps_per_call=steps_per_call)
        self.chunks, self.batch_size, self.mode, self.class_weight = chunks, batch_size, mode, class_weight
        self._run = tf.function(self._steps, reduce_retracing=True)

    def _steps(self, x, y, w, first: tf.Tensor, count: tf.Tensor):
        def step(i):
            lo = i * self.batch_size
            hi = tf.minimum(lo + self.batch_size, tf.shape(y, out_type=tf.int64)[0])
            xb = {k: v[lo:hi] for k, v in x.items()}
            return self.model.train_step((xb, y[lo:hi]) if w is None else (xb, y[lo:hi], w[lo:hi]))

        logs = step(first)
        for i in tf.range(first + 1, first + count):
            logs = step(i)
        return logs

    def _call(self, x: dict[str, np.ndarray], y: np.ndarray, count: int, calls: _Calls) -> bool:
        """One graph call over the rows of x/y (`count` batches); False when stopped."""
        weights = class_sample_weights(y, self.mode, self.class_weight)
        xt = {k: tf.constant(v) for k, v in x.items()}
        yt, wt = tf.constant(y), None if weights is None else tf.constant(weights)
        zero = tf.constant(0, tf.int64)
        return calls.run(count, lambda: self._run(xt, yt, wt, zero, tf.constant(count, tf.int64)))

    def _block(self, piece: "_Piece", rows: int, calls: _Calls) -> bool:
        """Train on the first `rows` rows of `piece` (whole batches, but for the epoch's last); False
        when stopped."""
        steps = -(-rows // self.batch_size)
        for first in range(0, steps, self.per_call):  # only one call's rows become tensors at a time
            count = min(self.per_call, steps - first)
            lo = first * self.batch_size
            x, y = piece.rows(lo, min(rows, lo + count * self.batch_size))
            if not self._call(x, y, count, calls):
                return False
        return True

    def _epoch(self, epoch: int, calls: _Calls) -> dict[str, float]:
        rest: _Piece | None = None  # rows of earlier pieces not trained on yet (less than a batch)
        pieces = self.chunks(epoch)
        try:
            for item in pieces:
                piece = _Piece(*item, before=rest)
                del item
                whole = len(piece) - len(piece) % self.batch_size
                rest = _Piece(*piece.rows(whole, len(piece))) if whole < len(piece) else None
                if whole and not self._block(piece, whole, calls):
                    return calls.logs
                del piece
            if rest is not None:
                self._block(rest, len(rest), calls)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return calls.logs


class _Piece:
    """The rows of a piece of an epoch in their serving order: `before` (a few rows left over by the
    previous piece, in order), then x/y taken in `order` (None: as they are)."""

    def __init__(self, x: dict[str, np.ndarray], y: np.ndarray, order: np.ndarray | None = None, *,
                 before: "_Piece | None" = None):
        self.x, self.y, self.order = x, y, order
        self.before = before
        self.head = 0 if before is None else len(before)

    def __len__(self) -> int:
        return self.head + len(self.y)

    def _own(self, lo: int, hi: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if self.order is None:
            return {k: v[lo:hi] for k, v in self.x.items()}, self.y[lo:hi]
        idx = self.order[lo:hi]
        return {k: np.take(v, idx, axis=0) for k, v in self.x.items()}, np.take(self.y, idx, axis=0)

    def rows(self, lo: int, hi: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rows lo..hi (serving order) as new arrays (or views of unshuffled rows)."""
        if lo >= self.head:
            return self._own(lo - self.head, hi - self.head)
        first = self.before.rows(lo, min(hi, self.head))
        if hi <= self.head:
            return first
        second = self._own(0, hi - self.head)
        return ({k: np.concatenate([first[0][k], second[0][k]]) for k in self.x},
                np.concatenate([first[1], second[1]]))


def class_sample_weights(y: np.ndarray, mode: str, class_weight: dict[int, float] | None) -> np.ndarray | None:
    """Per-row weights from Keras-style `class_weight` (what `fit(class_weight=...)` does)."""
    if not class_weight:
        return None
    labels = np.asarray(y)
    if mode == "one_hot":
        labels = labels.argmax(axis=-1)
    labels = labels.reshape(-1).astype(np.int64)
    table = np.ones(int(max(max(class_weight), labels.max(initial=0))) + 1, dtype=np.float32)
    for k, w in class_weight.items():
        table[int(k)] = float(w)
    return table[labels]


PREDICT_ROWS = 8_192  # rows per call of `predict_rows` (the activations of 65,536 rows took 40 MB)


def predict_rows(model: keras.Model, x: dict[str, tf.Tensor], *, between=None) -> np.ndarray:
    """The model's outputs for all rows of `x`, called on slices of PREDICT_ROWS rows (no batching,
    no predict loop: for the final plots, where `model.predict`'s tracing and per-batch steps cost
    more than the arithmetic). `between()` runs after each slice (a signal poll)."""
    n = int(next(iter(x.values())).shape[0])
    out = []
    for lo in range(0, n, PREDICT_ROWS):
        out.append(np.asarray(model({k: v[lo:lo + PREDICT_ROWS] for k, v in x.items()}, training=False)))
        if between is not None:
            between()
    return np.concatenate(out) if out else np.zeros((0,) + tuple(model.output.shape[1:]))

