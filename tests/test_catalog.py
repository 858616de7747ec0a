"""The Keras name snapshot used by `nettrain validate` matches the installed Keras."""

import json

from nettrain.config import catalog


def test_snapshot_matches_installed_keras():
    import keras

    snapshot = catalog.load()
    # pyproject.toml pins Keras to the checked versions: another one is a stale snapshot, not a skip
    assert snapshot["keras_version"] == keras.__version__, \
        f"snapshot is for Keras {snapshot['keras_version']}, Keras {keras.__version__} is installed: run `make catalog`"
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


def test_the_snapshot_is_for_a_checked_keras_version():
    """The snapshot, keras_compat.py and pyproject.toml's Keras range move together (see pyproject.toml)."""
    from nettrain import keras_compat

    assert catalog.load()["keras_version"] in keras_compat.CHECKED_KERAS, \
        "keras_catalog.json was made on a Keras version keras_compat.CHECKED_KERAS does not list"


def test_keras_class_is_the_one_lookup_by_name():
    import keras

    # spelling-insensitive by default (catalog.normalize), restricted to a base class when given
    assert catalog.keras_class(keras.regularizers, "l1_l2") is keras.regularizers.L1L2
    assert catalog.keras_class(keras.optimizers, "rms_prop", keras.optimizers.Optimizer) is keras.optimizers.RMSprop
    assert catalog.keras_class(keras.losses, "huber", keras.losses.Loss) is keras.losses.Huber
    assert catalog.keras_class(keras.losses, "huber", keras.optimizers.Optimizer) is None
    # exact for layer types: the spelling the catalog checks
    assert catalog.keras_class(keras.layers, "Dense", keras.layers.Layer, exact=True) is keras.layers.Dense
    assert catalog.keras_class(keras.layers, "dense", keras.layers.Layer, exact=True) is None
    assert catalog.keras_class(keras.layers, "__class__", keras.layers.Layer, exact=True) is None
    assert catalog.keras_class(keras.layers, None) is None
    assert catalog.normalize("RMS_prop") == catalog.normalize("rmsprop")


def test_one_keras_lookup_and_one_normalization_in_model_building():
    """model/ looks Keras classes up through catalog.keras_class only, and spells names through catalog.normalize."""
    from pathlib import Path

    root = Path(catalog.__file__).resolve().parent.parent
    for path in [root / "model" / "build.py", root / "model" / "compile.py"]:
        text = path.read_text(encoding="utf-8")
        assert "dir(" not in text, f"{path.name} enumerates a module itself; use catalog.keras_class"
        assert '.replace("_", "")' not in text and ".lower()" not in text, \
            f"{path.name} normalizes names itself; use catalog.normalize"
