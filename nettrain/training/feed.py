"""Input feeding: the one place that turns a `Split` into what Keras consumes.

A training session takes its examples from a `Feed`: the training batches of one epoch, the
validation batches, the number of steps per epoch, and the labelled data of the final
evaluation. `ArrayFeed` serves a `Dataset` held in memory; `StreamFeed` a `StreamDataset`, whose
rows are read again from their file(s) chunk by chunk at every pass (`data.stream`).

In-memory arrays are converted to tensors once (no per-epoch copies). Each epoch's batch order
is a permutation drawn from (seed, epoch) only, so epoch N sees the same batches whether the
run got there straight or was resumed from a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import tensorflow as tf

import keras

from nettrain import keras_compat

from nettrain.config.schema import Config
from nettrain.data.stats import train_stats
from nettrain.data.stream import HOLDOUT_ROWS, SplitCache, StreamDataset, joined, read_ahead
from nettrain.data.types import Dataset, Split, column_of_input
from nettrain.model.compile import class_weights, encode_targets
from nettrain.store.rundir import SPLITS


def model_inputs(model: keras.Model, inputs: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    """Arrays -> tensors shaped like the model's inputs (strings as tf.string)."""
    out = {}
    for tensor in model.inputs:
        name = tensor.name
        column = name if name in inputs else column_of_input(name)
        if column not in inputs:
            raise KeyError(name)
        arr = inputs[column]
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


def epoch_order(n: int, seed: Any, epoch: Any) -> tf.Tensor:
    """The order of `n` training rows in an epoch (counted from 1): a permutation drawn from (seed,
    epoch) only. The one rule of batch order for data in memory (`training_dataset`, `engine.ArrayLoop`)."""
    keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]),
                                       dtype=tf.float32)
    return tf.cast(tf.argsort(keys, stable=True), tf.int64)


def training_dataset(x: dict[str, tf.Tensor], y: np.ndarray, *, batch_size: int, seed: int,
                     cursor: EpochCursor) -> tf.data.Dataset:
    """One epoch of batches, shuffled by (seed, epoch) where the epoch is read from `cursor`.

    Keras re-iterates the dataset each epoch (no steps_per_epoch), so the epoch boundary is
    exact also with steps_per_execution > 1, and the order depends on nothing but seed and epoch.
    """
    n = int(y.shape[0])
    y_t = tf.convert_to_tensor(y)
    full = n // batch_size
    rest = n - full * batch_size
    seed_t = tf.constant(seed, dtype=tf.int64)

    def epoch_batches(_):
        order = epoch_order(n, seed_t, cursor.epoch.read_value())
        ds = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], [full, batch_size]))
        if rest:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size:]))
        return ds

    def gather(idx):
        return {k: tf.gather(v, idx) for k, v in x.items()}, tf.gather(y_t, idx)

    steps = full + (1 if rest else 0)
    ds = tf.data.Dataset.from_tensors(0).flat_map(epoch_batches)
    ds = keras_compat.assert_cardinality(ds, steps)  # lets Keras know the epoch length
    # A plain map: one gather per batch is cheap, and a parallel map is rewritten (with a native
    # warning on stderr) whenever op determinism is on.
    return ds.map(gather).prefetch(tf.data.AUTOTUNE)


EVALUATION_ROWS = 1024  # the evaluation batch grows to this many rows ...
EVALUATION_GROWTH = 8   # ... but at most this many times the training batch (the memory of a forward pass)


def evaluation_batch(batch_size: int, *, images: bool = False) -> int:
    """Rows per batch wherever a model is evaluated rather than trained (the validation after each
    epoch, the final metrics, `evaluate`): the training batch grown to EVALUATION_ROWS, at most
    EVALUATION_GROWTH times. Nothing learns from these batches and a forward pass does not depend on
    the batch (only the metrics' float sums do, in their last bits), and each batch costs a fixed few
    hundred graph ops: a 2,464-row validation split took 50 ms at batch 128, 15 ms at 512 and 10 ms
    in one batch (2 cores), ten times an epoch's hundred training steps' share for a small table.
    Images keep the training batch: a conv stack's activations are what bounds their batch."""
    batch_size = max(1, int(batch_size))
    if images:
        return batch_size
    return max(batch_size, min(EVALUATION_ROWS, EVALUATION_GROWTH * batch_size))


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


def lively_steps(model: keras.Model, one: dict[str, tf.Tensor], most: int) -> int:
    """`steps_per_execution` for a run watched on a terminal: a training step is timed as three
    forward passes of `one` batch (run eagerly, in inference mode: no weight, statistic or random
    state changes), so a slow model gets fewer batches per call and its bar keeps moving.
    Speed-only: the batches and their order do not depend on it."""
    import time

    model(one, training=False)  # the first call builds what it needs
    start = time.perf_counter()
    model(one, training=False)
    return steps_for(3 * (time.perf_counter() - start), most)


# ------------------------------------------------------------------------------ feeds

@dataclass
class Holdout:
    """Labelled rows the final plots are drawn on: the test split, else the validation split."""

    name: str
    x: dict[str, tf.Tensor]        # the model inputs of the rows (tensors, ready for the model)
    y: np.ndarray                  # the labels as the data stage holds them (class indices or values)


class Feed(Protocol):
    """Where one training session's examples come from (see `fit.train`).

    Everything is asked for with the model, whose inputs say how the rows must be shaped.
    """

    @property
    def steps(self) -> int:
        """Training batches per epoch."""

    @property
    def has_validation(self) -> bool:
        """Whether there are validation rows (`val_*` metrics are logged)."""

    def training(self, model: keras.Model, cursor: EpochCursor) -> tf.data.Dataset:
        """One epoch of (inputs, targets) batches, in an order drawn from (seed, `cursor.epoch`)."""

    def validation(self, model: keras.Model) -> tf.data.Dataset | None:
        """The validation (inputs, targets) batches, or None."""

    def first_batch(self, model: keras.Model) -> dict[str, tf.Tensor]:
        """One batch of training inputs (to time a step)."""

    def class_weight(self, cfg: Config) -> dict[int, float] | None:
        """Keras `class_weight` from `training.class_weight` and the training labels."""

    def evaluation(self, model: keras.Model) -> dict[str, tf.data.Dataset]:
        """{split: (inputs, targets) batches} of the final metrics, splits in `SPLITS` order."""

    def holdout(self, model: keras.Model) -> Holdout | None:
        """The rows of the final plots, or None when there are no labelled held-out rows."""

    def caching(self, folder: Path) -> contextlib.AbstractContextManager:
        """A session's span, inside which rows read more than once may be kept in `folder`."""

    # Optional, for rows held in memory (ArrayFeed): `split_tensors(model, names)` gives the splits as
    # tensors, and the validation and final evaluation use `engine.HeldRows` (one traced graph) instead
    # of `validation` / `evaluation`'s tf.data batches.


class ArrayFeed:
    """A `Feed` over a `Dataset` held in memory (the numpy arrays of its splits).

    The training inputs are converted to tensors once per model and kept for the session.
    """

    def __init__(self, dataset: Dataset, *, mode: str, n_classes: int | None, batch_size: int, seed: int):
        self.dataset, self.mode, self.n_classes = dataset, mode, n_classes
        self.batch_size, self.seed = batch_size, seed
        self._train_x: tuple[keras.Model, dict[str, tf.Tensor]] | None = None

    @property
    def steps(self) -> int:
        return steps_per_epoch(len(self.dataset.train), self.batch_size)

    @property
    def has_validation(self) -> bool:
        return _has_rows(self.dataset.validation)

    def _targets(self, split: Split) -> np.ndarray | None:
        return encode_targets(split.y, self.mode, self.n_classes)

    def _train_inputs(self, model: keras.Model) -> dict[str, tf.Tensor]:
        if self._train_x is None or self._train_x[0] is not model:
            self._train_x = (model, model_inputs(model, self.dataset.train.inputs))
        return self._train_x[1]

    def training(self, model: keras.Model, cursor: EpochCursor) -> tf.data.Dataset:
        return training_dataset(self._train_inputs(model), self._targets(self.dataset.train),
                                batch_size=self.batch_size, seed=self.seed, cursor=cursor)

    def validation(self, model: keras.Model) -> tf.data.Dataset | None:
        split = self.dataset.validation
        if not _has_rows(split):
            return None
        return evaluation_dataset(model_inputs(model, split.inputs), self._targets(split),
                                  evaluation_batch(self.batch_size))

    def first_batch(self, model: keras.Model) -> dict[str, tf.Tensor]:
        return {k: v[: self.batch_size] for k, v in self._train_inputs(model).items()}

    def caching(self, folder: Path) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # the rows are in memory already

    def train_tensors(self, model: keras.Model) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """All training rows at once, (inputs, encoded targets) as tensors: what `engine.ArrayLoop`
        gathers its batches from (in the same (seed, epoch) order as `training`)."""
        return self._train_inputs(model), tf.constant(self._targets(self.dataset.train))

    def class_weight(self, cfg: Config) -> dict[int, float] | None:
        return class_weights(cfg, self.dataset.schema, train_stats(self.dataset))

    def evaluation(self, model: keras.Model) -> dict[str, tf.data.Dataset]:
        out = {}
        for name in SPLITS:
            split: Split | None = getattr(self.dataset, name)
            if _has_rows(split):
                x = self._train_inputs(model) if name == "train" else model_inputs(model, split.inputs)
                out[name] = evaluation_dataset(x, self._targets(split), evaluation_batch(self.batch_size))
        return out

    def split_tensors(self, model: keras.Model, names: tuple[str, ...] = SPLITS) -> dict[str, tuple]:
        """{split: (inputs, encoded targets)} as tensors, of the splits of `names` that have rows (in
        that order): what `engine.HeldRows` evaluates without a tf.data pipeline."""
        out = {}
        for name in names:
            split: Split | None = getattr(self.dataset, name)
            if _has_rows(split):
                x = self._train_inputs(model) if name == "train" else model_inputs(model, split.inputs)
                out[name] = (x, tf.constant(self._targets(split)))
        return out

    def holdout(self, model: keras.Model) -> Holdout | None:
        dataset = self.dataset
        name = "test" if _has_rows(dataset.test) else "validation"
        split = getattr(dataset, name)
        if not _has_rows(split) or split.y is None:
            return None
        return Holdout(name, model_inputs(model, split.inputs), split.y)


def _has_rows(split: Split | None) -> bool:
    return split is not None and len(split) > 0


class StreamFeed:
    """A `Feed` over a `StreamDataset`: every pass reads the file(s) again, chunk by chunk.

    Training: `tf.data.Dataset.from_generator` over the training rows of each shuffle window
    (`RowReader.rows(..., shuffle=(seed, epoch))`, the epoch read from the cursor when Keras starts
    the epoch's iteration), `rebatch(batch_size)` into batches that run across chunk boundaries, and
    the steps per epoch the first pass counted (so the epoch ends exactly where the in-memory one
    would: ceil(rows / batch_size) batches, the last one partial). A thread of its own reads and
    prepares the next chunks while the model trains on this one (`read_ahead`); the order of the rows
    does not depend on it. Validation and evaluation read their splits the same way, in file order.
    `engine.StreamLoop` trains from `epoch_arrays` instead (no tf.data). Inside `caching`, the pass
    that parses the file for the training rows writes every split's prepared rows to its cache, so
    the validation, the final evaluation and the plots read those back: one parse per session.
    """

    def __init__(self, dataset: StreamDataset, *, mode: str, n_classes: int | None, batch_size: int, seed: int):
        self.dataset, self.mode, self.n_classes = dataset, mode, n_classes
        self.batch_size, self.seed = batch_size, seed
        self.failure: BaseException | None = None  # a DataError raised while reading (the file changed)
        self._caches: dict[str, SplitCache] | None = None  # inside `caching`
        self._cache_dir: Path | None = None

    @property
    def steps(self) -> int:
        return steps_per_epoch(self.dataset.rows("train"), self.batch_size)

    @property
    def has_validation(self) -> bool:
        return self.dataset.rows("validation") > 0

    def _signature(self, model: keras.Model):
        x = {}
        for tensor in model.inputs:
            shape = (None,) + tuple(tensor.shape[1:])
            x[tensor.name] = tf.TensorSpec(shape, tf.string if tensor.dtype == "string" else tf.float32)
        if self.mode == "sparse":
            y = tf.TensorSpec((None,), tf.int32)
        else:
            width = self.n_classes if self.mode == "one_hot" else 1
            stats = self.dataset.stats
            if self.mode == "regression" and stats is not None and stats.target is not None:
                width = stats.target.columns
            y = tf.TensorSpec((None, width), tf.float32)
        return x, y

    def _arrays(self, model: keras.Model, split: Split, labels: bool = True):
        x = {}
        for tensor in model.inputs:
            arr = split.inputs[column_of_input(tensor.name)]
            if tensor.dtype == "string":
                arr = arr.reshape(-1) if len(tensor.shape) == 1 else arr
            else:
                arr = np.asarray(arr, dtype=np.float32)
            x[tensor.name] = arr
        if not labels:
            return x
        return x, encode_targets(split.y, self.mode, self.n_classes)

    def _dataset(self, model: keras.Model, split: str, rows: int, *, cursor: EpochCursor | None = None,
                 labels: bool = True) -> tf.data.Dataset:
        """Batches of the rows of `split` (shuffled by (seed, epoch) when a cursor is given)."""
        codes = self.dataset.codes[split]
        reader = self.dataset.reader
        feed = self
        cache = self._cache(split)
        side = self._side(split) if cursor is not None else []  # the training pass fills the others' caches

        def chunks(epoch=None):
            shuffle = None if epoch is None else (feed.seed, int(epoch))
            try:
                for part in read_ahead(reader.rows(codes, shuffle=shuffle, cache=cache, side=side), depth=1):
                    yield feed._arrays(model, part, labels)
                    del part
            except Exception as e:  # noqa: BLE001 - tf.data would hide it behind its own error
                feed.failure = e
                raise

        x_spec, y_spec = self._signature(model)
        spec = (x_spec, y_spec) if labels else x_spec
        if cursor is None:
            ds = tf.data.Dataset.from_generator(chunks, output_signature=spec)
        else:
            def epoch_chunks(_):
                return tf.data.Dataset.from_generator(chunks, args=(cursor.epoch.read_value(),), output_signature=spec)

            ds = tf.data.Dataset.from_tensors(0).flat_map(epoch_chunks)
        batch = self.batch_size if cursor is not None else evaluation_batch(self.batch_size)  # (no cursor: evaluated)
        ds = ds.rebatch(batch)
        ds = keras_compat.assert_cardinality(ds, steps_per_epoch(rows, batch))
        return ds.prefetch(tf.data.AUTOTUNE)

    def training(self, model: keras.Model, cursor: EpochCursor) -> tf.data.Dataset:
        return self._dataset(model, "train", self.dataset.rows("train"), cursor=cursor)

    def epoch_arrays(self, model: keras.Model, epoch: int
                     ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]]:
        """The training rows of `epoch` (from 1) as (inputs, targets, order) numpy pieces for
        `engine.StreamLoop`: one per shuffle window, its rows in file order and `order` the positions in
        the order `training` gives them (the loop takes a graph call's rows at a time, so no permuted
        copy of a window is ever made). Read ahead by a thread of its own, one window ahead (parsing
        overlaps training; two windows are held at a time)."""
        windows = self.dataset.reader.windows(self.dataset.codes["train"], shuffle=(self.seed, int(epoch)),
                                              cache=self._cache("train"), bare=True, side=self._side("train"))

        def pieces():
            with contextlib.closing(windows):
                for window in windows:
                    x, y = self._arrays(model, window.split)
                    order = window.order
                    del window
                    yield x, y, order

        yield from read_ahead(pieces(), depth=1)

    @contextlib.contextmanager
    def caching(self, folder: Path) -> Iterator[None]:
        """Inside, the rows of each split are parsed from the file once (all of them by the first
        training pass, see `_side`) and kept in `folder` (`SplitCache`, one file per split) for the
        later passes; the files are removed on the way out."""
        self._caches, self._cache_dir = {}, Path(folder)
        try:
            yield
        finally:
            caches, self._caches, self._cache_dir = self._caches, None, None
            for cache in caches.values():
                cache.remove()

    def _side(self, split: str) -> list[tuple[frozenset, SplitCache]]:
        """The other splits' (codes, cache): the pass that parses the file for `split` fills their caches
        too, so the file is parsed once per session (the validation after the first epoch, the final
        evaluation and plots read the caches)."""
        if self._caches is None:
            return []
        return [(self.dataset.codes[name], self._cache(name)) for name in SPLITS
                if name != split and self.dataset.rows(name)]

    def _cache(self, split: str) -> SplitCache | None:
        if self._caches is None:
            return None
        if split not in self._caches:
            self._caches[split] = SplitCache(self._cache_dir / f"{split}.bin")
        return self._caches[split]

    def validation(self, model: keras.Model) -> tf.data.Dataset | None:
        rows = self.dataset.rows("validation")
        return self._dataset(model, "validation", rows) if rows else None

    def first_batch(self, model: keras.Model) -> dict[str, tf.Tensor]:
        rows = self.dataset.reader.rows(self.dataset.codes["train"], limit=self.batch_size)
        try:
            first = next(rows)
        finally:
            rows.close()
        return model_inputs(model, first.inputs)

    def class_weight(self, cfg: Config) -> dict[int, float] | None:
        return class_weights(cfg, self.dataset.schema, train_stats(self.dataset))

    def evaluation(self, model: keras.Model) -> dict[str, tf.data.Dataset]:
        return {name: self._dataset(model, name, self.dataset.rows(name)) for name in SPLITS
                if self.dataset.rows(name)}

    def holdout(self, model: keras.Model) -> Holdout | None:
        """The first HOLDOUT_ROWS rows (file order) of the test split, else of the validation split."""
        name = "test" if self.dataset.rows("test") else "validation"
        if not self.dataset.rows(name):
            return None
        windows = self.dataset.reader.windows(self.dataset.codes[name], limit=HOLDOUT_ROWS, bare=True,
                                              cache=self._cache(name))
        split = joined((window.split for window in windows), rows=HOLDOUT_ROWS)
        if split is None or split.y is None:
            return None
        return Holdout(name, model_inputs(model, split.inputs), split.y)
