"""`training.prefix`: the model's fixed front (lookups, one-hot, numeric scaling) computed once over
the training rows, the rest of the model trained on it: the cut stops at the first trainable or
random layer, the trainer is the model's own layers and optimizer, and a fit trained that way gives
the same run as one whose every step runs the whole model."""

import json
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

import keras
import tensorflow as tf

from nettrain import api
from nettrain.config.loader import load_config
from nettrain.data import load_dataset
from nettrain.model.build import build_model
from nettrain.model.compile import compile_model
from nettrain.training import prefix


def _table(path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    heavy = rng.lognormal(3, 1.5, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    city = np.array([f"c{i}" for i in rng.integers(0, 80, size=n)])
    y = 2 * x + np.log1p(heavy) + (color == "red") + 0.1 * rng.normal(size=n)
    pd.DataFrame({"x": x, "heavy": heavy, "color": color, "city": city, "y": y}).to_csv(path, index=False)


CONFIG = """\
data:
  source: data.csv
  target: y
  columns:
    city: {type: categorical, embedding_dim: 4}
  split: {validation: 0.2, test: 0.2}
preprocessing: {numeric: auto}
model:
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 8, activation: relu}
training: {epochs: 4, batch_size: 32}
callbacks:
  early_stopping: null
"""


@pytest.fixture
def project(tmp_path):
    _table(tmp_path / "data.csv")
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def _built(project):
    cfg = load_config(project / "config.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(cfg)
    model = build_model(cfg, ds)
    x = {k: tf.convert_to_tensor(v) for k, v in ds.train.inputs.items()}
    return cfg, ds, model, x, tf.convert_to_tensor(ds.train.y)


def test_fixed_layers():
    assert prefix.fixed(keras.layers.StringLookup(vocabulary=["a"]))
    assert prefix.fixed(keras.layers.ReLU(max_value=1.0))
    assert not prefix.fixed(keras.layers.Dense(3))
    assert not prefix.fixed(keras.layers.Dropout(0.5))                       # random in training
    assert not prefix.fixed(keras.layers.Activation("relu", activity_regularizer="l2"))

    class MyReLU(keras.layers.ReLU):                                          # a subclass may do anything
        pass

    assert not prefix.fixed(MyReLU())
    trainable = keras.layers.EinsumDense("ab,bc->ac", output_shape=(2,))
    trainable.build((None, 3))
    assert not prefix.fixed(trainable)
    frozen = keras.layers.EinsumDense("ab,bc->ac", output_shape=(2,), trainable=False)
    frozen.build((None, 3))
    assert prefix.fixed(frozen)


def test_split_cuts_before_the_first_trainable_layer(project):
    cfg, ds, model, x, y = _built(project)
    front = prefix.split(model, x, y, lambda t: compile_model(cfg, t, ds.schema, optimizer=model.optimizer))
    assert front is not None
    # the city column's lookup (ids) comes out of the front, its Embedding is trained after it
    dtypes = sorted(v.dtype.name for v in front.features.values())
    assert "int64" in dtypes and "float32" in dtypes
    assert all(int(v.shape[0]) == len(ds.train) for v in front.features.values())
    # the same variables, in the same order (the optimizer's slots are saved in this order)
    assert [id(v) for v in front.trainer.trainable_weights] == [id(v) for v in model.trainable_weights]
    assert front.trainer.optimizer is model.optimizer and model.optimizer.built
    # the trainer on the computed front gives what the whole model gives on the rows
    np.testing.assert_allclose(front.trainer(front.features, training=False).numpy(),
                               model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    model.get_config()  # the model is still whole: its checkpoints save


def test_no_front_without_fixed_layers_past_an_input_or_over_the_size_limit(project, monkeypatch):
    inp = keras.Input((3,), name="numeric")
    plain = keras.Model({"numeric": inp}, keras.layers.Dense(1)(keras.layers.Dense(4)(inp)))
    plain.compile("adam", "mse")
    x, y = {"numeric": tf.zeros((10, 3))}, tf.zeros((10, 1))
    assert prefix.split(plain, x, y, lambda t: t.compile(plain.optimizer, "mse")) is None
    # an input that reaches a trainable layer as it is (besides a fixed branch): no front
    a, b = keras.Input((1,), name="a", dtype="string"), keras.Input((2,), name="b")
    both = keras.layers.Concatenate()([keras.layers.StringLookup(vocabulary=["u", "v"], output_mode="one_hot")(a),
                                       keras.layers.Dense(2)(b)])
    mixed = keras.Model({"a": a, "b": b}, keras.layers.Dense(1)(both))
    mixed.compile("adam", "mse")
    x = {"a": tf.constant([["u"], ["v"]]), "b": tf.zeros((2, 2))}
    assert prefix.split(mixed, x, tf.zeros((2, 1)), lambda t: t.compile(mixed.optimizer, "mse")) is None
    mixed.get_config()
    cfg, ds, model, x, y = _built(project)
    monkeypatch.setattr(prefix, "MAX_BYTES", 1000)
    assert prefix.split(model, x, y, lambda t: compile_model(cfg, t, ds.schema, optimizer=model.optimizer)) is None


def _weights(path):
    """The model's weights, then the optimizer's variables, as the legacy .h5 lists them (in order:
    the layers' names carry a per-process number)."""
    def names(group):
        return [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]

    with h5py.File(path, "r") as f:
        layers = f["model_weights"]
        out = [layers[layer.decode() if isinstance(layer, bytes) else layer][w][()]
               for layer in layers.attrs["layer_names"]
               for w in names(layers[layer.decode() if isinstance(layer, bytes) else layer])]
        optimizer = f["optimizer_weights"]
        return out + [optimizer[w][()] for w in names(optimizer)]


def test_fit_on_the_front_equals_fit_of_the_whole_model(project, monkeypatch):
    split = prefix.split
    used = []
    monkeypatch.setattr(prefix, "split", lambda *a, **k: used.append(split(*a, **k)) or used[-1])
    api.fit(project / "config.yaml", [], run_dir=project / "front", quiet=True, force=True)
    assert used and used[-1] is not None
    monkeypatch.setattr(prefix, "MAX_BYTES", 0)                  # every step runs the whole model
    api.fit(project / "config.yaml", [], run_dir=project / "whole", quiet=True, force=True)
    assert used[-1] is None
    a, b = (json.loads((project / run / "metrics.json").read_text()) for run in ("front", "whole"))
    assert a.keys() == b.keys()
    for split_name in ("train", "validation", "test"):
        for metric, value in b[split_name].items():
            assert a[split_name][metric] == pytest.approx(value, rel=1e-5), (split_name, metric)
    wa, wb = _weights(project / "front" / "model.h5"), _weights(project / "whole" / "model.h5")
    assert len(wa) == len(wb) > 20                                     # weights and the optimizer's slots
    for i, (p, q) in enumerate(zip(wa, wb)):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6, err_msg=str(i))
    history_a = (project / "front" / "metrics.csv").read_text().splitlines()[0]
    assert history_a == (project / "whole" / "metrics.csv").read_text().splitlines()[0]  # the same logs


def test_retrain_on_the_front_is_exact(project):
    """2 epochs, then 2 more in place (the optimizer's state read back from the run) = 4 straight
    (without the Dropout, whose random state a retrain does not carry on)."""
    cfg = project / "nodrop.yaml"
    cfg.write_text(CONFIG.replace("    - {type: Dropout, rate: 0.1}\n", ""))
    api.fit(cfg, [], run_dir=project / "straight", quiet=True, force=True)
    api.fit(cfg, ["training.epochs=2"], run_dir=project / "halves", quiet=True, force=True)
    api.retrain(project / "halves", epochs=2, quiet=True)
    wa, wb = _weights(project / "straight" / "model.h5"), _weights(project / "halves" / "model.h5")
    assert len(wa) == len(wb) > 20
    for i, (p, q) in enumerate(zip(wa, wb)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7, err_msg=str(i))


def test_a_front_of_one_tensor(tmp_path):
    """Numbers only: the front is one tensor (the scaled columns), all the training rows of it."""
    rng = np.random.default_rng(1)
    pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "y": rng.normal(size=50)}).to_csv(
        tmp_path / "data.csv", index=False)
    (tmp_path / "config.yaml").write_text("data: {source: data.csv, target: y}\npreprocessing: {numeric: standard}\n")
    cfg, ds, model, x, y = _built(tmp_path)
    front = prefix.split(model, x, y, lambda t: compile_model(cfg, t, ds.schema, optimizer=model.optimizer))
    (features,) = front.features.values()
    assert features.shape == (len(ds.train), 2)
    np.testing.assert_allclose(features.numpy().mean(axis=0), 0, atol=1e-5)   # standardized on these rows
