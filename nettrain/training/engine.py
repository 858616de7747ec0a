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

One `Loop` trains every run; what varies is its batch iterator and, under a distribution strategy,
its step. The iterators: `Arrays` (rows held as tensors, each call's batches gathered in the graph
by the epoch's order; `ArrayLoop` builds that loop), `Windows` (a stream's pieces, one graph call's
rows copied out at a time; `StreamLoop`), and under a strategy `Shares` (the `Arrays` batches, each
replica gathering its share of every batch) or `DistributedBatches` (a distributed dataset's
batches, the strategy dealing each replica its share). The strategy branch is `replicas` (a
`training.distributed.Replicas`): the step is then Keras's `train_step` through `strategy.run` on
every replica (Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`, keras-team/keras#20585),
the metrics read once per call, and `replicas` supplies what surrounds the training (its peers,
the state built and synced first), the validation and the stop all workers agree on. TensorBoard is
one of the callbacks, whatever the loop; `StepGraph` writes the graph of the one-device training
step (Keras's callback draws only `model.train_function`'s, which `fit` alone builds). Training
ends as `fit`'s does: `optimizer.finalize_variable_values` (with `use_ema`, the averaged weights).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

import keras

from nettrain import keras_compat
from nettrain.training.feed import epoch_order

if TYPE_CHECKING:
    from nettrain.training.distributed import Replicas


def as_floats(logs: dict[str, Any]) -> dict[str, float]:
    """Logs of tensors as Python floats (what the callbacks get)."""
    return {k: float(v) for k, v in logs.items()}


class Loop:
    """The one epoch engine: each epoch's graph calls come from `batches` (`Arrays`, `Windows`;
    under a strategy `Shares`, `DistributedBatches`), each call runs up to `steps_per_call` of Keras's
    `train_step` inside one `tf.function`, on the batches `batches.batch(data, i)` cuts from what the
    call was given. Keras callbacks in a CallbackList, called as `fit` calls them (batch hooks once
    per graph call), validation after each epoch, `model.stop_training` obeyed after every call,
    `finalize` at the end.

    `replicas` (None: one device) is the strategy branch: the step runs on every replica
    (`_replicated`), and `replicas` gives the session around the training, the validation and the
    stop agreed by all workers. `trainer` (None: the model) is what the steps train and whose
    metrics they log: `prefix.Front.trainer`, the model after its fixed front, when the batches
    hold that front's output; the callbacks, the validation and the stop are the model's."""

    def __init__(self, model: keras.Model, batches, *, steps: int, steps_per_call: int,
                 replicas: "Replicas | None" = None, trainer: keras.Model | None = None):
        self.model, self.batches, self.replicas = model, batches, replicas
        self.trainer = model if trainer is None else trainer  # what the steps train (`prefix.Front.trainer`)
        self.steps = max(1, steps)
        self.per_call = max(1, min(int(steps_per_call), self.steps))
        self.graph: tf.Graph | None = None  # the training step's graph, once traced for a `StepGraph`
        self._want_graph = False
        self._cbs: keras.callbacks.CallbackList | None = None  # inside `fit`
        # one device: no AutoGraph (the loop is an explicit while_loop; converting a function parses its
        # whole source file, ~0.7 s a function on 2 cores); the strategy branch's loop is converted
        self._run = tf.function(self._steps, reduce_retracing=True, autograph=False) if replicas is None else \
            tf.function(self._replicated, reduce_retracing=True)

    def fit(self, *, initial_epoch: int, epochs: int, callbacks: list[keras.callbacks.Callback],
            validation_data: tf.data.Dataset | None = None) -> keras.callbacks.History:
        model = self.model
        for c in callbacks:
            if isinstance(c, StepGraph):  # under a strategy no graph is kept: none is written
                c.loop, self._want_graph = self, self.replicas is None
        with self._session():
            cbs = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=False, model=model,
                                               verbose=0, epochs=epochs, steps=self.steps)
            self._cbs = cbs
            model.stop_training = False
            first = getattr(self.batches, "first", None)
            if self.replicas is None and first is not None:  # the state built first: one trace, not two
                keras_compat.build_training_state(self.trainer, first())
            cbs.on_train_begin()
            logs: dict[str, float] = {}
            for epoch in range(initial_epoch, epochs):
                reset_metrics(self.trainer) if self.replicas is None else model.reset_metrics()
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

    def _steps(self, data, first: tf.Tensor, count: tf.Tensor):
        trainer = self.trainer
        return steps_loop(trainer, lambda i: trainer.train_step(self.batches.batch(data, i)), first, count)

    def _replicated(self, data, first: tf.Tensor, count: tf.Tensor):
        """The strategy branch's step: batch i (cut in the cross-replica context) handed to
        `strategy.run`, each replica running Keras's `train_step` on its share (`batches.share`; the
        optimizer all-reduces the gradients); the metrics read once after the call (their variables
        sum over the replicas on read, so every worker gets the global values)."""
        strategy, model, share = self.replicas.strategy, self.model, self.batches.share
        for i in tf.range(first, first + count):
            strategy.run(lambda batch: model.train_step(share(batch)), args=(self.batches.batch(data, i),))
        return model.get_metrics_result()

    def _epoch(self, epoch: int, calls: "_Calls") -> dict[str, float]:
        with contextlib.closing(self.batches.calls(epoch, self.per_call)) as each:
            for data, first, count in each:
                run = (data, tf.constant(first, tf.int64), tf.constant(count, tf.int64))
                if not calls.run(count, lambda: self._traced(self._run, *run)):
                    break
                del data, run  # a window's call: its rows are let go before the next call's are taken
        return calls.logs

    def _traced(self, run, *args) -> dict[str, Any]:
        """`run(*args)` (the loop's `tf.function`), keeping its graph the first time a `StepGraph` wants it."""
        logs = run(*args)
        if self._want_graph and self.graph is None:  # one step's graph (the loop's holds it in a while body)
            data, first, _ = args
            step = tf.function(lambda d, i: self.trainer.train_step(self.batches.batch(d, i)), autograph=False)
            self.graph = step.get_concrete_function(data, first).graph
        return logs

    def _session(self) -> contextlib.AbstractContextManager:
        """What surrounds the whole training (under a strategy: its peers, its state built first)."""
        return contextlib.nullcontext() if self.replicas is None else self.replicas.session()

    def _validate(self, data: tf.data.Dataset, callbacks: list[keras.callbacks.Callback]) -> dict[str, float]:
        """The validation metrics after an epoch, `callbacks` called as `fit` calls them: through the
        training's own CallbackList (a new one would `set_model` each callback again, and TensorBoard
        would start new event files at every validation); under a strategy, `replicas.evaluate`."""
        if self.replicas is not None:
            return self.replicas.evaluate(data, callbacks)
        if isinstance(data, HeldRows):
            return data.evaluate(self.model, self._cbs)
        return as_floats(self.model.evaluate(data, verbose=0, return_dict=True, callbacks=self._cbs))

    def _stop(self) -> bool:
        """Whether training stops after this epoch (under a strategy: whether any worker stops)."""
        return bool(self.model.stop_training) if self.replicas is None else self.replicas.stop()


def steps_loop(model: keras.Model, step, first: tf.Tensor, count: tf.Tensor):
    """Inside a graph: `step(i)` (Keras's `train_step` or `test_step` on batch i) for i in first ..
    first + count - 1, then the model's metrics, which is what those steps return (Keras's
    `compute_metrics` returns `get_metrics_result()`). The loop carries no state, so the step is traced
    once, in the loop's body; carrying the logs would need a first step before the loop to give them
    their structure, and that traced the step twice (about a second more per model on 2 cores). The
    loop is TensorFlow's `while_loop` as written, so the functions that run it need no AutoGraph."""
    def body(i):
        step(i)
        return (i + 1,)

    tf.while_loop(lambda i: i < first + count, body, (first,))
    return model.get_metrics_result()


class HeldRows:
    """Labelled rows held as tensors (a validation or test split in memory), evaluated as Keras's
    `evaluate` evaluates them: the metrics reset, Keras's `test_step` on the same batches of
    `batch_size` in row order, the metrics read once at the end, the callbacks' test hooks called.
    What differs is the feed: up to `PER_CALL` batches per call of one `tf.function` per model
    (`test_steps`: traced once, whatever the split and its length), the batches sliced from the
    tensors inside the graph, instead of a tf.data iterator and `evaluate`'s set-up at every call.
    Measured on a 300-row validation split (2 cores): `evaluate` took ~60-150 ms per epoch, most of
    it set-up; this takes ~5-30 ms, and the final evaluation of three splits traces once, not three
    times."""

    PER_CALL = 32  # batches per graph call: the callbacks (an interrupt poll) run between calls

    def __init__(self, x: dict[str, tf.Tensor], y: tf.Tensor, *, batch_size: int):
        self.x, self.y = x, tf.convert_to_tensor(y)
        self.n, self.batch_size = int(self.y.shape[0]), max(1, int(batch_size))
        self.steps = -(-self.n // self.batch_size)

    def evaluate(self, model: keras.Model, callbacks: Any = None) -> dict[str, float]:
        """{metric: value} of `model` on the rows; `callbacks` a CallbackList or a list of callbacks."""
        if self.n and not metrics_built(model):  # a model compiled, never run
            build_evaluation_state(model, {k: v[:self.batch_size] for k, v in self.x.items()},
                                   self.y[:self.batch_size])
        run = test_steps(model, self.x, self.y)
        cbs = callbacks if isinstance(callbacks, keras.callbacks.CallbackList) else \
            keras.callbacks.CallbackList(list(callbacks or []), model=model, verbose=0)
        cbs.on_test_begin()
        reset_metrics(model)
        size = tf.constant(self.batch_size, tf.int64)
        logs = None
        for first in range(0, self.steps, self.PER_CALL):
            count = min(self.PER_CALL, self.steps - first)
            cbs.on_test_batch_begin(first)
            logs = as_floats(run(self.x, self.y, size, tf.constant(first, tf.int64), tf.constant(count, tf.int64)))
            cbs.on_test_batch_end(first + count - 1, logs)
        if logs is None:  # no rows
            logs = as_floats(model.get_metrics_result())
        result = dict(sorted(logs.items()))  # the metrics after the last step (the graph's), in `evaluate`'s order
        cbs.on_test_end(result)
        return result


# Graphs cached per model (held weakly: a sweep's trials must not keep their models alive), each
# with the identities of the metrics' variables it was traced with: a model compiled again (new
# metrics) gets new graphs.
_TEST_STEPS: "weakref.WeakKeyDictionary[keras.Model, tuple]" = weakref.WeakKeyDictionary()
_RESETS: "weakref.WeakKeyDictionary[keras.Model, tuple]" = weakref.WeakKeyDictionary()


def _metrics_key(model: keras.Model) -> tuple:
    return tuple(id(v) for v in model.metrics_variables)


def _cached(cache, model: keras.Model, make):
    """cache[model]'s graph if it was made for the model's current metrics, else a new one (`make()`)."""
    key = _metrics_key(model)
    got = cache.get(model)
    if got is None or got[0] != key:
        got = (key, make())
        cache[model] = got
    return got[1]


def metrics_built(model: keras.Model) -> bool:
    """Whether the model's metrics (the compiled loss and metrics too) have their variables."""
    return all(getattr(m, "built", True) for m in model.metrics)


def build_evaluation_state(model: keras.Model, x: Any, y: Any) -> None:
    """The compiled loss's and metrics' variables, made by one eager pass on a batch (x, y) as Keras
    makes them before evaluating, then reset. A graph traced afterwards creates none: a `tf.function`
    whose first trace creates variables is traced twice, and the metrics' variables are what an
    evaluation graph is cached under (a model compiled and never run, as a k-fold ensemble: its
    evaluation of two splits traced three times instead of once)."""
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    model.compute_metrics(x, y, y_pred)
    model.reset_metrics()


def reset_metrics(model: keras.Model) -> None:
    """`model.reset_metrics()`, as one traced call once the metrics are built (eagerly, a few ops per
    metric variable: ~2.5 ms a call for a loss, accuracy and a 200-threshold AUC, twice an epoch)."""
    if not metrics_built(model):
        model.reset_metrics()  # metrics that build later would be missing from a graph traced now
        return
    owner = weakref.ref(model)
    _cached(_RESETS, model, lambda: tf.function(lambda: owner().reset_metrics(), autograph=False))()


def test_steps(model: keras.Model, x: dict[str, tf.Tensor], y: tf.Tensor):
    """The model's one evaluation graph: `run(x, y, batch_size, first, count)` runs Keras's
    `test_step` on batches first .. first + count - 1 of (x, y) and returns the last step's logs. Its
    signature leaves the rows' count open, so every split of the model's rows uses the one trace."""
    return _cached(_TEST_STEPS, model, lambda: _test_graph(model, x, y))


def _test_graph(model: keras.Model, x: dict[str, tf.Tensor], y: tf.Tensor):
    owner = weakref.ref(model)  # the cached graph must not keep its model alive (a sweep's trials)

    def steps(x, y, batch_size, first, count):
        model = owner()
        n = tf.shape(y, out_type=tf.int64)[0]

        def batch(i):
            start = i * batch_size
            end = tf.minimum(start + batch_size, n)
            return {k: v[start:end] for k, v in x.items()}, y[start:end]

        return steps_loop(model, lambda i: model.test_step(batch(i)), first, count)

    def open_rows(t: tf.Tensor) -> tf.TensorSpec:
        return tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype)

    scalar = tf.TensorSpec((), tf.int64)
    return tf.function(steps, input_signature=[{k: open_rows(v) for k, v in x.items()}, open_rows(y),
                                               scalar, scalar, scalar], autograph=False)


def finalize(model: keras.Model, epochs: int) -> None:
    """What Keras's `fit` does once its epochs are over (`epochs` > 0, even when none was left to run),
    before `on_train_end`: `optimizer.finalize_variable_values`, which with `use_ema` puts the moving
    averages into the model's weights."""
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)


class StepGraph(keras.callbacks.Callback):
    """`callbacks.tensorboard.write_graph`: the graph of the loop's training step (one graph call of
    `steps_per_call` batches, Keras's `train_step` inside), written to `log_dir` after the first call.
    Only a `Loop` on one device traces one; under a distribution strategy none is written."""

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
        self.logs = as_floats(call())
        self.done += count
        self.cbs.on_train_batch_end(self.done - 1, self.logs)
        return not self.model.stop_training


def ArrayLoop(model: keras.Model, x: dict[str, tf.Tensor], y: tf.Tensor, *, batch_size: int, seed: int,
              steps_per_call: int, class_weight: dict[int, float] | None = None, mode: str = "regression",
              replicas: "Replicas | None" = None, trainer: keras.Model | None = None) -> Loop:
    """The `Loop` over `Arrays` that trains `model` on `x`/`y` (tensors of all training rows) in
    batches of `batch_size`, in the order drawn from (seed, epoch counted from 1), `steps_per_call`
    batches per graph call; under a strategy (`replicas`), the same batches in `Shares`. With a
    `trainer` (`prefix.Front.trainer`), `x` is its inputs (the model's fixed front computed) and the
    steps train it."""
    weights = class_sample_weights(y.numpy(), mode, class_weight)
    arrays = Arrays(x, y, batch_size=batch_size, seed=seed, weights=weights)
    batches = arrays if replicas is None else Shares(arrays, replicas.count)
    return Loop(model, batches, steps=arrays.steps, steps_per_call=steps_per_call, replicas=replicas, trainer=trainer)


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
        return self.take(self.positions(order, i))

    def first(self) -> tuple:
        """The first batch in row order (what the training state is built from)."""
        return self.take(tf.range(min(self.batch_size, self.n)))

    def positions(self, order: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        """The rows of batch i of the epoch whose row order is `order`."""
        start = i * self.batch_size
        return order[start:tf.minimum(start + self.batch_size, self.n)]

    def take(self, idx: tf.Tensor) -> tuple:
        """(x, y) or (x, y, weights) of the rows `idx`, gathered from the tensors."""
        xb = {k: tf.gather(v, idx) for k, v in self.x.items()}
        yb = tf.gather(self.y, idx)
        return (xb, yb) if self.w is None else (xb, yb, tf.gather(self.w, idx))


class Shares:
    """`Arrays` under a strategy of `replicas` replicas: the same (seed, epoch) batches of the global
    batch size B; batch i's row positions go to every replica, and replica r gathers its share, rows
    [r * ceil(B / R), (r + 1) * ceil(B / R)) of the batch, inside the graph (no per-batch input
    pipeline). That is data sharding of each global batch, with the one-device run's batches."""

    def __init__(self, arrays: Arrays, replicas: int):
        self.arrays, self.steps = arrays, arrays.steps
        self.rows = -(-arrays.batch_size // max(1, replicas))  # a replica's share of a whole batch

    def calls(self, epoch: int, per_call: int):
        return self.arrays.calls(epoch, per_call)

    def batch(self, order: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        """Batch i's row positions (in the cross-replica context)."""
        return self.arrays.positions(order, i)

    def share(self, idx: tf.Tensor) -> tuple:
        """This replica's rows of the batch whose positions are `idx` (in the replica context)."""
        r = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        n = tf.shape(idx, out_type=tf.int64)[0]
        lo = tf.minimum(r * self.rows, n)
        return self.arrays.take(idx[lo:tf.minimum(lo + self.rows, n)])


class DistributedBatches:
    """The batches of a distributed dataset (global batches dealt to the replicas by the strategy:
    `keras_compat.distribute_dataset`), iterated afresh each epoch (a stream's epoch order comes from
    the feed's epoch cursor, a callback that runs before the epoch's first batch); `steps` per epoch."""

    def __init__(self, dataset, *, steps: int):
        self.dataset, self.steps = dataset, max(1, steps)

    def calls(self, epoch: int, per_call: int):
        """(the epoch's iterator, first batch, batches) of each graph call of `epoch`."""
        iterator = iter(self.dataset)
        for first in range(0, self.steps, per_call):
            yield iterator, first, min(per_call, self.steps - first)

    def batch(self, iterator, i: tf.Tensor):
        """The next global batch, one share per replica (in the cross-replica context)."""
        return next(iterator)

    def share(self, batch) -> tuple:
        """This replica's share: the strategy dealt it already."""
        return batch


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

