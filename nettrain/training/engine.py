"""nettrain's one epoch engine: Keras's own `train_step` and `test_step`, driven by one
`tf.function` per run of `steps_per_execution` batches that are cut inside the graph from
tensors, instead of `model.fit` pulling each batch from a `tf.data` iterator.

The step is Keras's (loss, compiled metrics, optimizer update, loss scaling), the callbacks are
Keras callbacks in a `keras.callbacks.CallbackList`, called as `fit` calls them (batch hooks once
per run of batches, so a NaN guard, the progress bar and a signal poll keep working), and each
epoch's batches are the same (seed, epoch) permutation the tf.data feed gives: only the engine
differs. Measured on the bench MLP (200k x 20, Dense 64-64, batch 256, 2 CPU cores, Keras 3.15):
1.5-1.6x the samples/s of Keras `fit` with `steps_per_execution=32` on numpy arrays, because
nothing crosses from the host per batch (no iterator `get_next`, no per-execution input copy).

One `Loop` trains on one device; what varies is its batch iterator: `Arrays` (rows held as
tensors, each call's batches gathered in the graph by the epoch's order; `ArrayLoop` builds
that loop) or `Windows` (a stream's pieces, one graph call's rows copied out at a time;
`StreamLoop`). Under a strategy `training.distributed` runs the same `train_step` through
`strategy.run` on `_Loop`, the epoch driver `Loop` shares. TensorBoard is one of
the callbacks, whatever the loop; `StepGraph` writes the graph of the loop's training step
(Keras's callback draws only `model.train_function`'s, which `fit` alone builds). Training ends
as `fit`'s does: `optimizer.finalize_variable_values` (with `use_ema`, the averaged weights).
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
    """The epoch driver every loop shares (`Loop`, the distributed ones): Keras callbacks in a
    CallbackList, called as `fit` calls them (batch hooks once per graph call of up to
    `steps_per_call` batches), validation through `model.evaluate` after each epoch,
    `model.stop_training` obeyed after every call, `finalize` at the end."""

    def __init__(self, model: keras.Model, *, steps: int, steps_per_call: int):
        self.model, self.steps = model, max(1, steps)
        self.per_call = max(1, min(int(steps_per_call), self.steps))
        self.graph: tf.Graph | None = None  # the training step's graph, once traced for a `StepGraph`
        self._want_graph = False
        self._cbs: keras.callbacks.CallbackList | None = None  # inside `fit`

    def _epoch(self, epoch: int, calls: "_Calls") -> dict[str, float]:
        raise NotImplementedError

    def fit(self, *, initial_epoch: int, epochs: int, callbacks: list[keras.callbacks.Callback],
            validation_data: tf.data.Dataset | None = None) -> keras.callbacks.History:
        model = self.model
        for c in callbacks:
            if isinstance(c, StepGraph):
                c.loop, self._want_graph = self, True
        with self._session():
            cbs = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=False, model=model,
                                               verbose=0, epochs=epochs, steps=self.steps)
            self._cbs = cbs
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
            finalize(model, epochs)
            cbs.on_train_end(logs)
        return model.history

    def _traced(self, run, *args) -> dict[str, Any]:
        """`run(*args)` (the loop's `tf.function`), keeping its graph the first time a `StepGraph` wants it."""
        logs = run(*args)
        if self._want_graph and self.graph is None:
            self.graph = run.get_concrete_function(*args).graph  # the trace just made: no new one
        return logs

    def _session(self) -> contextlib.AbstractContextManager:
        """What surrounds the whole training (a distributed loop: its peers, its state built first)."""
        return contextlib.nullcontext()

    def _validate(self, data: tf.data.Dataset, callbacks: list[keras.callbacks.Callback]) -> dict[str, float]:
        """The validation metrics after an epoch, `callbacks` called as `fit` calls them: through the
        training's own CallbackList (a new one would `set_model` each callback again, and TensorBoard
        would start new event files at every validation)."""
        return _python(self.model.evaluate(data, verbose=0, return_dict=True, callbacks=self._cbs))

    def _stop(self) -> bool:
        """Whether training stops after this epoch."""
        return bool(self.model.stop_training)


def finalize(model: keras.Model, epochs: int) -> None:
    """What Keras's `fit` does once its epochs are over (`epochs` > 0, even when none was left to run),
    before `on_train_end`: `optimizer.finalize_variable_values`, which with `use_ema` puts the moving
    averages into the model's weights."""
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)


class StepGraph(keras.callbacks.Callback):
    """`callbacks.tensorboard.write_graph`: the graph of the loop's training step (one graph call of
    `steps_per_call` batches, Keras's `train_step` inside), written to `log_dir` after the first call.
    Only a loop of this module traces one; under a distribution strategy none is written."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir, self.loop, self.written = log_dir, None, False

    def on_train_batch_end(self, batch, logs=None):
        graph = None if self.written or self.loop is None else self.loop.graph
        if graph is None:
            return
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            tf.summary.graph(graph)
        writer.close()
        self.written = True


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


class Loop(_Loop):
    """The one-device loop: each epoch's graph calls come from `batches` (`Arrays` or `Windows`),
    each call runs up to `steps_per_call` of Keras's `train_step` inside one `tf.function`, on the
    batches `batches.batch(data, i)` cuts from what the call was given."""

    def __init__(self, model: keras.Model, batches: "Arrays | Windows", *, steps: int, steps_per_call: int):
        super().__init__(model, steps=steps, steps_per_call=steps_per_call)
        self.batches = batches
        self._run = tf.function(self._steps, reduce_retracing=True)

    def _steps(self, data, first: tf.Tensor, count: tf.Tensor):
        logs = self.model.train_step(self.batches.batch(data, first))  # the loop's state needs the logs' structure
        for i in tf.range(first + 1, first + count):
            logs = self.model.train_step(self.batches.batch(data, i))
        return logs

    def _epoch(self, epoch: int, calls: _Calls) -> dict[str, float]:
        with contextlib.closing(self.batches.calls(epoch, self.per_call)) as each:
            for data, first, count in each:
                run = (data, tf.constant(first, tf.int64), tf.constant(count, tf.int64))
                if not calls.run(count, lambda: self._traced(self._run, *run)):
                    break
                del data, run  # a window's call: its rows are let go before the next call's are taken
        return calls.logs


def ArrayLoop(model: keras.Model, x: dict[str, tf.Tensor], y: tf.Tensor, *, batch_size: int, seed: int,
              steps_per_call: int, class_weight: dict[int, float] | None = None, mode: str = "regression") -> Loop:
    """The `Loop` over `Arrays` that trains `model` on `x`/`y` (tensors of all training rows) in
    batches of `batch_size`, in the order drawn from (seed, epoch counted from 1), `steps_per_call`
    batches per graph call."""
    weights = class_sample_weights(y.numpy(), mode, class_weight)
    batches = Arrays(x, y, batch_size=batch_size, seed=seed, weights=weights)
    return Loop(model, batches, steps=batches.steps, steps_per_call=steps_per_call)


def StreamLoop(model: keras.Model, chunks, *, steps: int, batch_size: int, steps_per_call: int,
               class_weight: dict[int, float] | None = None, mode: str = "regression") -> Loop:
    """The `Loop` over `Windows` that trains `model` on an epoch's rows that arrive in pieces
    (`chunks`); `steps` is the epoch's number of batches (for the callbacks' progress)."""
    return Loop(model, Windows(chunks, batch_size=batch_size, class_weight=class_weight, mode=mode),
                steps=steps, steps_per_call=steps_per_call)


class Arrays:
    """The batches of rows held as tensors: each graph call gets the epoch's row order (the
    permutation of (seed, epoch) that `feed.training_dataset` gives too) and gathers its batches
    from the tensors inside the graph, so nothing crosses from the host per batch."""

    def __init__(self, x: dict[str, tf.Tensor], y: tf.Tensor, *, batch_size: int, seed: int,
                 weights: np.ndarray | None = None):
        self.x, self.y, self.n = x, y, int(y.shape[0])
        self.w = None if weights is None else tf.constant(weights)
        self.batch_size, self.seed = batch_size, seed
        self.steps = -(-self.n // batch_size)

    def calls(self, epoch: int, per_call: int):
        """(order, first batch, batches) of each graph call of `epoch` (from 1)."""
        order = epoch_order(self.n, self.seed, epoch)
        steps = max(1, self.steps)
        for first in range(0, steps, per_call):
            yield order, first, min(per_call, steps - first)

    def batch(self, order: tf.Tensor, i: tf.Tensor) -> tuple:
        start = i * self.batch_size
        idx = order[start:tf.minimum(start + self.batch_size, self.n)]
        xb = {k: tf.gather(v, idx) for k, v in self.x.items()}
        yb = tf.gather(self.y, idx)
        return (xb, yb) if self.w is None else (xb, yb, tf.gather(self.w, idx))


def each_call(steps: int, per_call: int, calls: "_Calls", run) -> dict[str, float]:
    """An epoch of `steps` batches as graph calls of up to `per_call` batches: `run(first, count)`
    (int64 tensors) for each, through `calls` (callbacks, stop requests); the epoch's logs."""
    for first in range(0, steps, per_call):
        count = min(per_call, steps - first)
        if not calls.run(count, lambda: run(tf.constant(first, tf.int64), tf.constant(count, tf.int64))):
            break
    return calls.logs


class Windows:
    """The batches of an epoch's rows that arrive in pieces: `chunks(epoch)` yields (x, y) numpy
    pieces in the epoch's order, or (x, y, order) pieces whose rows are served in `order` (positions
    into x and y: a shuffle window held once, in file order). The rows are cut into batches of
    `batch_size` that run across piece ends (the rows a piece leaves over go in front of the next
    one), as `Dataset.rebatch` cuts them; the last batch of the epoch may be short. Only one graph
    call's rows are copied out of a piece at a time (`np.take` of its positions), and they are what
    becomes tensors: each call gets (x, y, weights) of its rows and slices its batches from them."""

    def __init__(self, chunks, *, batch_size: int, class_weight: dict[int, float] | None = None,
                 mode: str = "regression"):
        self.chunks, self.batch_size, self.mode, self.class_weight = chunks, batch_size, mode, class_weight

    def batch(self, data: tuple, i: tf.Tensor) -> tuple:
        x, y, w = data
        lo = i * self.batch_size
        hi = tf.minimum(lo + self.batch_size, tf.shape(y, out_type=tf.int64)[0])
        xb = {k: v[lo:hi] for k, v in x.items()}
        return (xb, y[lo:hi]) if w is None else (xb, y[lo:hi], w[lo:hi])

    def _tensors(self, x: dict[str, np.ndarray], y: np.ndarray) -> tuple:
        weights = class_sample_weights(y, self.mode, self.class_weight)
        return ({k: tf.constant(v) for k, v in x.items()}, tf.constant(y),
                None if weights is None else tf.constant(weights))

    def _block(self, piece: "_Piece", rows: int, per_call: int):
        """The graph calls over the first `rows` rows of `piece` (whole batches, but for the epoch's last)."""
        steps = -(-rows // self.batch_size)
        for first in range(0, steps, per_call):  # only one call's rows become tensors at a time
            count = min(per_call, steps - first)
            lo = first * self.batch_size
            yield self._tensors(*piece.rows(lo, min(rows, lo + count * self.batch_size))), 0, count

    def calls(self, epoch: int, per_call: int):
        """(x, y, weights), 0, batches of each graph call of `epoch`; the pieces are closed at the end."""
        rest: _Piece | None = None  # rows of earlier pieces not trained on yet (less than a batch)
        pieces = self.chunks(epoch)
        try:
            for item in pieces:
                piece = _Piece(*item, before=rest)
                del item
                whole = len(piece) - len(piece) % self.batch_size
                rest = _Piece(*piece.rows(whole, len(piece))) if whole < len(piece) else None
                if whole:
                    yield from self._block(piece, whole, per_call)
                del piece
            if rest is not None:
                yield from self._block(rest, len(rest), per_call)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


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

