"""The Keras name snapshot used by `nettrain validate` matches the installed Keras."""

import json

import pytest

from nettrain.config import catalog


def test_snapshot_matches_installed_keras():
    keras = pytest.importorskip("keras")
    snapshot = catalog.load()
    if snapshot["keras_version"] != keras.__version__:
        pytest.skip(f"snapshot is for Keras {snapshot['keras_version']}; run `make catalog`")
    fresh = json.loads(json.dumps(catalog.generate()))
    assert fresh == snapshot, "keras_catalog.json is stale: run `make catalog`"


def test_snapshot_knows_the_common_names():
    snap = catalog.load()
    for layer in ("Dense", "Dropout", "Conv2D", "LSTM", "Reshape", "BatchNormalization"):
        assert layer in snap["layers"]
    norm = {catalog.normalize(n) for n in snap["losses"]}
    for loss in ("mse", "mean_squared_error", "huber", "hinge", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy"):
        assert catalog.normalize(loss) in norm
    opt = {catalog.normalize(n) for n in snap["optimizers"]}
    assert {"sgd", "adam", "rmsprop"} <= opt
    assert "units" in snap["layers"]["Dense"]["required"]
