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


def test_a_snapshot_from_another_keras_version_is_not_used(monkeypatch, tmp_path):
    """A stale snapshot must never refuse a name the installed Keras has: fit checks at build time."""
    from nettrain.config import load_config

    stale = dict(catalog.load(), keras_version="0.0.0")
    monkeypatch.setattr(catalog, "load", lambda: stale)
    catalog.load_matching.cache_clear()
    try:
        path = tmp_path / "c.yaml"
        path.write_text("data: {source: sklearn:iris}\nmodel: {layers: [{type: BrandNewLayer}]}\n")
        cfg = load_config(path)  # not refused by the snapshot
        assert cfg.model.layers[0].type == "BrandNewLayer"
    finally:
        catalog.load_matching.cache_clear()
