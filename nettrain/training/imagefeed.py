"""`ImageFeed`: the `Feed` of an image folder (`data.images.ImageDataset`), decoded from disk chunk by
chunk at every pass, never held whole.

Training goes through `engine.StreamLoop` (`epoch_arrays`): each epoch's files in a permutation drawn
from (seed, epoch) only, decoded `CHUNK` at a time by a thread of their own while the model trains on
the previous chunk. Validation, the final evaluation and the plots read their splits in order.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

import keras

from nettrain import keras_compat
from nettrain.config.schema import Config
from nettrain.data.images import IMAGE_INPUT, ImageDataset
from nettrain.data.stats import train_stats
from nettrain.data.stream import HOLDOUT_ROWS, read_ahead
from nettrain.data.types import Split
from nettrain.model.compile import class_weights, encode_targets
from nettrain.store.rundir import SPLITS
from nettrain.training.feed import EpochCursor, Holdout, model_inputs, steps_per_epoch


class ImageFeed:
    """A `Feed` over an `ImageDataset` (see the module docstring)."""

    def __init__(self, dataset: ImageDataset, *, mode: str, n_classes: int | None, batch_size: int, seed: int):
        self.dataset, self.mode, self.n_classes = dataset, mode, n_classes
        self.batch_size, self.seed = batch_size, seed

    def _split(self, name: str) -> Split | None:
        split = getattr(self.dataset, name)
        return split if split is not None and len(split) else None

    @property
    def steps(self) -> int:
        return steps_per_epoch(len(self.dataset.train), self.batch_size)

    @property
    def has_validation(self) -> bool:
        return self._split("validation") is not None

    def _pieces(self, split: Split, order: np.ndarray | None = None, limit: int | None = None):
        """(inputs, encoded targets) of `split`'s images, a chunk at a time, read ahead by a thread."""
        if order is not None:
            split = split.take(order)
        if limit is not None:
            split = split.take(slice(0, limit))

        def produce():
            for part in self.dataset.split_rows(split):
                yield {IMAGE_INPUT: part.inputs[IMAGE_INPUT]}, encode_targets(part.y, self.mode, self.n_classes)

        return read_ahead(produce(), depth=1)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training files' order in `epoch` (from 1): a permutation of (seed, epoch) only."""
        return np.random.default_rng([int(self.seed), int(epoch)]).permutation(len(self.dataset.train))

    def epoch_arrays(self, model: keras.Model, epoch: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """The training images of `epoch` as (inputs, targets) pieces in the epoch's order (`engine.Windows`)."""
        yield from self._pieces(self.dataset.train, self.epoch_order(epoch))

    def _dataset(self, model: keras.Model, split: Split, *, cursor: EpochCursor | None = None) -> tf.data.Dataset:
        shape = (None, *self.dataset.spec.shape)
        x_spec = {IMAGE_INPUT: tf.TensorSpec(shape, tf.float32)}
        y_spec = tf.TensorSpec((None,), tf.int32) if self.mode == "sparse" else \
            tf.TensorSpec((None, self.n_classes if self.mode == "one_hot" else 1), tf.float32)
        feed = self

        def pieces(epoch=None):
            order = None if epoch is None else feed.epoch_order(int(epoch))
            for x, y in feed._pieces(split, order):
                yield x, y.astype(np.int32) if feed.mode == "sparse" else y.astype(np.float32)

        if cursor is None:
            ds = tf.data.Dataset.from_generator(pieces, output_signature=(x_spec, y_spec))
        else:
            ds = tf.data.Dataset.from_tensors(0).flat_map(lambda _: tf.data.Dataset.from_generator(
                pieces, args=(cursor.epoch.read_value(),), output_signature=(x_spec, y_spec)))
        ds = ds.rebatch(self.batch_size)
        ds = keras_compat.assert_cardinality(ds, steps_per_epoch(len(split), self.batch_size))
        return ds.prefetch(tf.data.AUTOTUNE)

    def training(self, model: keras.Model, cursor: EpochCursor) -> tf.data.Dataset:
        return self._dataset(model, self.dataset.train, cursor=cursor)

    def validation(self, model: keras.Model) -> tf.data.Dataset | None:
        split = self._split("validation")
        return None if split is None else self._dataset(model, split)

    def first_batch(self, model: keras.Model) -> dict[str, tf.Tensor]:
        x, _ = next(iter(self._pieces(self.dataset.train, limit=self.batch_size)))
        return model_inputs(model, x)

    def class_weight(self, cfg: Config) -> dict[int, float] | None:
        return class_weights(cfg, self.dataset.schema, train_stats(self.dataset))

    def evaluation(self, model: keras.Model) -> dict[str, tf.data.Dataset]:
        return {name: self._dataset(model, self._split(name)) for name in SPLITS if self._split(name) is not None}

    def holdout(self, model: keras.Model) -> Holdout | None:
        """The first HOLDOUT_ROWS images of the test split, else of the validation split."""
        name = "test" if self._split("test") is not None else "validation"
        split = self._split(name)
        if split is None:
            return None
        parts = list(self.dataset.split_rows(split.take(slice(0, HOLDOUT_ROWS))))
        joined = Split.concat(parts)
        return Holdout(name, model_inputs(model, joined.inputs), joined.y)

    def caching(self, folder: Path) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # the files are on disk already
