"""preprocessing.target (regression): the model predicts the standardized target and ends in a
`Rescaling(scale=std, offset=mean)` layer named `target_scale`, and the loss weight of
`compile.loss_weight` makes each training step the one training on (y - mean) / std would take,
while metrics and predictions are in the target's own units.

Built-only tests are quick; the ones that train (a few tiny epochs each) are marked slow.
"""

import json
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app

runner = CliRunner()


# ------------------------------------------------------------------------------ data, configs

def price_frame(n=240, seed=0):
    """A price-like target in the thousands: 5000 + 1000 a + 200 b^2 (+ a little noise)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = 5000 + 1000 * a + 200 * b ** 2 + rng.normal(scale=20, size=n)
    return pd.DataFrame({"a": a, "b": b, "price": y})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("target")
    price_frame().to_csv(d / "prices.csv", index=False)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        label=np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")).to_csv(d / "classes.csv", index=False)
    return d


def write(d, name, body):
    path = d / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def price_config(d, name="price", extra="", epochs=6, loss="auto", optimizer="{name: adam, learning_rate: 0.01}",
                 metrics="[mae]"):
    return write(d, name, f"""
        name: {name}
        seed: 7
        data: {{source: {d / 'prices.csv'}, target: price}}
        model: {{layers: [{{type: Dense, units: 16, activation: relu}}]}}
        training: {{epochs: {epochs}, batch_size: 16, loss: {loss}, optimizer: {optimizer}, metrics: {metrics}}}
        {extra}
    """)


def built(path, overrides=()):
    """(cfg, dataset, compiled model) as `nettrain fit` builds them, without training."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset
    from nettrain.model.build import build_model

    cfg = load_config(path, list(overrides))
    dataset = load_dataset(cfg)
    return cfg, dataset, build_model(cfg, dataset)


def rescaling_layers(model):
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling)]


def compiled_loss_weight(model):
    return model.get_compile_config().get("loss_weights")


def fit(*args):
    result = runner.invoke(app, ["fit", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


def train_target_stats(dataset):
    y = np.asarray(dataset.train.y, dtype=np.float64)
    return y.mean(), y.std()


# ------------------------------------------------------------------------------ the model

def test_regression_default_is_standard_the_model_ends_in_the_target_rescaling(data_dir):
    cfg, dataset, model = built(price_config(data_dir))
    assert cfg.preprocessing.target == "standard"
    last = model.layers[-1]
    assert rescaling_layers(model) == [last] and last.name == "target_scale"
    mean, std = train_target_stats(dataset)  # the training rows' statistics, not all rows'
    config = last.get_config()
    assert config["scale"] == pytest.approx(std, rel=1e-9) and config["offset"] == pytest.approx(mean, rel=1e-9)
    assert 900 < std < 1300 and 4900 < mean < 5400
    assert compiled_loss_weight(model) == pytest.approx(1 / std ** 2, rel=1e-9)  # auto loss: mse
    # the untrained model predicts about the mean, in the target's units (not about 0)
    pred = model.predict(dataset.test.inputs, verbose=0)
    assert abs(float(np.median(pred)) - mean) < 2 * std


def test_target_none_builds_no_rescaling_and_no_loss_weight(data_dir):
    _, _, model = built(price_config(data_dir, "none", extra="preprocessing: {target: none}"))
    assert rescaling_layers(model) == [] and model.layers[-1].name == "output"
    assert compiled_loss_weight(model) is None


@pytest.mark.parametrize("model, scaled", [
    ("{layers: [{type: Dense, units: 8}], output: {type: Dense, units: 1}}", True),
    ("{layers: [{type: Dense, units: 8}], output: {type: Dense, units: 1, activation: linear}}", True),
    ("{layers: [{type: Dense, units: 8}, {type: Dense, units: 1}], output: none}", True),
    ("{layers: [{type: Dense, units: 8}], output: {type: Dense, units: 1, activation: relu}}", False),
    ("{layers: [{type: Dense, units: 8}], output: {type: Dense, units: 1, activation: softplus}}", False),
    ("{layers: [{type: Dense, units: 1}, {type: Activation, activation: exponential}], output: none}", False),
    ("{layers: [{type: Dense, units: 1}, {type: ReLU}], output: none}", False)])
def test_an_explicit_head_with_an_activation_trains_on_the_raw_target(data_dir, model, scaled):
    """relu/softplus/exp heads keep a price positive; on the standardized target they would cut every
    prediction below the mean off, so such a head is left on the raw target, and a note says so."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset
    from nettrain.model.build import build_model

    cfg = load_config(price_config(data_dir, "head"), [f"model={model}"])
    notes: list[str] = []
    built_model = build_model(cfg, load_dataset(cfg), notes=notes)
    assert bool(rescaling_layers(built_model)) == scaled
    assert (compiled_loss_weight(built_model) is not None) == scaled
    said = [n for n in notes if n.startswith("preprocessing.target")]
    assert len(said) == 1 and ("not applied" in said[0]) != scaled


@pytest.mark.parametrize("target", ["standard", "none"])
def test_classification_is_unaffected(data_dir, target):
    path = write(data_dir, f"cls-{target}", f"""
        data: {{source: {data_dir / 'classes.csv'}, target: label}}
        preprocessing: {{target: {target}}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
    """)
    _, _, model = built(path)
    assert rescaling_layers(model) == [] and compiled_loss_weight(model) is None
    assert model.layers[-1].get_config()["activation"] == "sigmoid"


@pytest.mark.parametrize("loss, weight", [
    ("auto", lambda s: 1 / s ** 2), ("mse", lambda s: 1 / s ** 2), ("mean_squared_error", lambda s: 1 / s ** 2),
    ("{name: MeanSquaredError}", lambda s: 1 / s ** 2), ("mae", lambda s: 1 / s),
    ("MeanAbsoluteError", lambda s: 1 / s), ("huber", lambda s: 1 / s),  # delta 1 < std: the linear part
    ("{name: huber, delta: 5000.0}", lambda s: 1 / s ** 2),               # delta > std: the quadratic part
    ("log_cosh", lambda s: 1 / s), ("mape", lambda s: None)])
def test_loss_weight_by_loss(data_dir, loss, weight):
    cfg, dataset, model = built(price_config(data_dir, "w", loss=loss))
    _, std = train_target_stats(dataset)
    want = weight(std)
    got = compiled_loss_weight(model)
    assert got == (None if want is None else pytest.approx(want, rel=1e-9))


def test_validate_build_says_what_was_added(data_dir):
    result = runner.invoke(app, ["validate", str(price_config(data_dir)), "--build"])
    assert result.exit_code == 0, result.output
    assert "preprocessing.target: standard" in result.output and "Rescaling(scale=" in result.output


# ------------------------------------------------------------------------------ several target columns

def two_column_dataset(n=120):
    from nettrain.data.stats import stats_of
    from nettrain.data.types import ColumnInfo, Dataset, FeatureSchema, Split

    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = np.column_stack([5000 + 1000 * x[:, 0], 0.5 + 0.01 * x[:, 1]]).astype(np.float32)
    schema = FeatureSchema(task="regression", target="y", columns=[ColumnInfo("a", "numeric"),
                                                                   ColumnInfo("b", "numeric")])
    train = Split({"numeric": x[:80]}, y[:80])
    test = Split({"numeric": x[80:]}, y[80:])
    dataset = Dataset(schema, train, None, test, fingerprint="0", source="hand", n_rows=n)
    dataset.stats = stats_of(schema, train)
    return dataset


def test_several_target_columns_are_scaled_per_column(tmp_path):
    from nettrain.config import load_config
    from nettrain.model.build import build_model

    (tmp_path / "x.csv").write_text("a,y\n1,2\n")  # the config needs a source; the dataset is made here
    cfg = load_config(write(tmp_path, "two", f"""
        data: {{source: {tmp_path / 'x.csv'}, target: y, task: regression}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}]}}
    """))
    dataset = two_column_dataset()
    model = build_model(cfg, dataset)
    assert model.output.shape[-1] == 2
    config = model.layers[-1].get_config()
    y = dataset.train.y.astype(np.float64)
    np.testing.assert_allclose(config["scale"], y.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(config["offset"], y.mean(axis=0), rtol=1e-9)
    # one shared weight: 1 / (root mean square of the standard deviations)^2 (see docs/config.md)
    rms2 = float(np.mean(y.std(axis=0) ** 2))
    assert compiled_loss_weight(model) == pytest.approx(1 / rms2, rel=1e-9)
    # a head that predicts 0 (the standardized mean) gives each column's own mean
    head = model.get_layer("output")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    pred = model.predict(dataset.test.inputs, verbose=0)
    np.testing.assert_allclose(pred, np.broadcast_to(y.mean(axis=0), pred.shape), rtol=1e-6)

    from nettrain.errors import ConfigError

    wrong = load_config(write(tmp_path, "three", f"""
        data: {{source: {tmp_path / 'x.csv'}, target: y, task: regression}}
        model: {{layers: [{{type: Dense, units: 8}}], output: {{type: Dense, units: 3}}}}
    """))
    with pytest.raises(ConfigError, match="3 outputs per row but the target has 2 columns"):
        build_model(wrong, dataset)


# ------------------------------------------------------------------------------ mixed precision

def test_mixed_precision_keeps_the_rescaling_in_float32(data_dir):
    import keras

    try:
        keras.mixed_precision.set_dtype_policy("mixed_float16")  # what runtime.setup does for the config
        _, dataset, model = built(price_config(data_dir, "mp", extra="runtime: {mixed_precision: mixed_float16}"))
        hidden = [layer for layer in model.layers if layer.name.startswith("dense")][0]
        assert hidden.dtype_policy.name == "mixed_float16"  # the policy really is on
        last = model.layers[-1]
        assert last.name == "target_scale" and last.dtype_policy.name == "float32"
        assert model.get_layer("output").dtype_policy.name == "float32"
        assert model.output.dtype == "float32"
        # 5000 + 1000 z in float16 would be off by whole units (float16 spacing at 5000 is 4)
        head = model.get_layer("output")
        kernel, bias = head.get_weights()
        head.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.123456)])
        pred = model.predict(dataset.test.inputs, verbose=0)
        config = last.get_config()
        want = np.float32(config["offset"]) + np.float32(config["scale"]) * np.float32(0.123456)
        np.testing.assert_allclose(pred, want, atol=0.01)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# ------------------------------------------------------------------------------ the loss weight

@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_one_step_equals_training_on_the_standardized_target(data_dir, loss):
    """Rescaling + loss weight on y == no Rescaling on (y - mean) / std: the same loss, the same
    gradient, the same weights after a step of plain SGD (which passes the gradient's size through)."""
    opt = "{name: sgd, learning_rate: 0.05}"
    _, dataset, scaled = built(price_config(data_dir, f"eq-{loss}", loss=loss, optimizer=opt))
    _, _, plain = built(price_config(data_dir, f"eq-{loss}-none", loss=loss, optimizer=opt,
                                     extra="preprocessing: {target: none}"))
    plain.set_weights(scaled.get_weights())  # Rescaling has no weights: the lists line up
    mean, std = (float(v) for v in (scaled.layers[-1].get_config()["offset"], scaled.layers[-1].get_config()["scale"]))
    x = {k: v[:32] for k, v in dataset.train.inputs.items()}
    y = dataset.train.y[:32].astype(np.float32).reshape(-1, 1)
    z = ((y.astype(np.float64) - mean) / std).astype(np.float32)

    import tensorflow as tf

    def loss_and_grads(model, target):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            value = model.compute_loss(x=x, y=target, y_pred=pred)
        return float(value), tape.gradient(value, model.trainable_variables)

    l_scaled, g_scaled = loss_and_grads(scaled, y)
    l_plain, g_plain = loss_and_grads(plain, z)
    assert l_scaled == pytest.approx(l_plain, rel=1e-4)
    for a, b in zip(g_scaled, g_plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-6)
    # one training step each
    ls = scaled.train_on_batch(x, y, return_dict=True)["loss"]
    lp = plain.train_on_batch(x, z, return_dict=True)["loss"]
    assert ls == pytest.approx(lp, rel=1e-4)
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and the metric is in the target's units: std times the standardized one
    if loss == "mae":
        keras_mae = float(np.mean(np.abs(scaled.predict(x, verbose=0) - y)))
        assert keras_mae == pytest.approx(std * float(np.mean(np.abs(plain.predict(x, verbose=0) - z))), rel=1e-3)


# ------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def straight(data_dir):
    """Four epochs in one go (the reference for retrain and resume)."""
    fit(price_config(data_dir, "four", epochs=4), "--run-dir", data_dir / "four")
    return data_dir / "four"


def saved_loss_weight(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["training_config"])["loss_weights"]


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


@pytest.mark.slow
def test_metrics_and_predictions_are_in_the_target_units(data_dir, tmp_path):
    import keras

    run = tmp_path / "run"
    fit(price_config(data_dir, "units", epochs=30), "--run-dir", run)
    metrics = json.loads((run / "metrics.json").read_text())
    frame = price_frame()
    std = float(frame["price"].std())
    # mae is in dollars: far below the spread, far above a standardized error
    assert 5 < metrics["test"]["mae"] < 0.35 * std
    # loss is the standardized mse: about (mae / std)^2, nowhere near a squared price error
    assert metrics["test"]["loss"] < 0.2
    # plain Keras loads the model (no custom objects) and predicts prices, with the loss weight compiled in
    model = keras.models.load_model(run / "model.h5")
    assert model.layers[-1].name == "target_scale"
    x = frame[["a", "b"]].to_numpy(np.float32)
    pred = model.predict({"numeric": x}, verbose=0).ravel()
    assert np.median(np.abs(pred - frame["price"].to_numpy())) < 0.35 * std
    assert np.corrcoef(pred, frame["price"])[0, 1] > 0.9
    assert saved_loss_weight(run / "model.h5") == pytest.approx(compiled_loss_weight(model), rel=1e-12)
    assert 1e-7 < saved_loss_weight(run / "model.h5") < 1e-5          # 1 / std^2 of a price
    # nettrain predict: the prediction column is in the target's units too
    frame.head(20).to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(out["prediction"], pred[:20], rtol=1e-5)
    # nettrain evaluate: the same numbers as the run's test split
    result = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["mae"] == pytest.approx(metrics["test"]["mae"], rel=1e-4)


@pytest.mark.slow
def test_target_none_trains_on_the_raw_numbers(data_dir, tmp_path):
    import keras

    run = tmp_path / "none"
    fit(price_config(data_dir, "none", epochs=3, extra="preprocessing: {target: none}"), "--run-dir", run)
    model = keras.models.load_model(run / "model.h5")
    assert rescaling_layers(model) == [] and saved_loss_weight(run / "model.h5") is None
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["loss"] > 1e5  # a squared error in price units


@pytest.mark.slow
def test_retrain_keeps_the_loss_weight_and_continues_exactly(data_dir, straight, tmp_path):
    from nettrain.store import h5

    run = tmp_path / "two"
    fit(price_config(data_dir, "four", epochs=2), "--run-dir", run)
    weight = saved_loss_weight(run / "checkpoints" / "last.h5")
    assert weight == pytest.approx(saved_loss_weight(straight / "model.h5"), rel=1e-12)
    # the nettrain loader compiles the saved loss weight back in
    loaded = h5.load_model(run / "checkpoints" / "last.h5")
    assert compiled_loss_weight(loaded) == pytest.approx(weight, rel=1e-12)
    result = runner.invoke(app, ["retrain", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert saved_loss_weight(run / "model.h5") == pytest.approx(weight, rel=1e-12)
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-5
    continued, reference = pd.read_csv(run / "metrics.csv"), pd.read_csv(straight / "metrics.csv")
    assert list(continued["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(continued["loss"], reference["loss"], rtol=1e-4)
    np.testing.assert_allclose(continued["val_mae"], reference["val_mae"], rtol=1e-4)
    assert continued["loss"].iloc[-1] < 1  # still the standardized loss after the reload


@pytest.mark.slow
def test_retrain_with_another_loss_reweights(data_dir, straight, tmp_path):
    result = runner.invoke(app, ["retrain", str(straight), "--epochs", "1", "--run-dir", str(tmp_path / "mae"),
                                 "--set", "training.loss=mae", "--quiet"])
    assert result.exit_code == 0, result.output
    mean, std = price_frame()["price"].mean(), price_frame()["price"].std()
    with h5py.File(tmp_path / "mae" / "model.h5", "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    std_train = [la for la in layers if la["config"]["name"] == "target_scale"][0]["config"]["scale"]
    assert saved_loss_weight(tmp_path / "mae" / "model.h5") == pytest.approx(1 / std_train, rel=1e-9)
    assert 0.8 * std < std_train < 1.2 * std and mean > 0


@pytest.mark.slow
def test_resume_keeps_the_loss_weight_and_continues_exactly(data_dir, straight, tmp_path, monkeypatch):
    """A run that fails writing epoch 3's checkpoint resumes from epoch 2 with the loss weight of its
    checkpoint and ends where the straight run ended."""
    from nettrain.store import h5

    original = h5.write_model

    def failing(model, path, meta=None):
        if ".last.h5." in str(path) and meta is not None and meta.get("epoch") == 3:
            raise OSError(28, "No space left on device", str(path))
        return original(model, path, meta)

    config = price_config(data_dir, "four", epochs=4)
    run = tmp_path / "broken"
    monkeypatch.setattr(h5, "write_model", failing)
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run), "--quiet"])
    monkeypatch.setattr(h5, "write_model", original)
    assert result.exit_code != 0
    assert json.loads(h5py.File(run / "checkpoints" / "last.h5", "r").attrs["nettrain"])["epoch"] == 2
    assert saved_loss_weight(run / "checkpoints" / "last.h5") == pytest.approx(
        saved_loss_weight(straight / "model.h5"), rel=1e-12)
    result = runner.invoke(app, ["fit", str(config), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-5
    continued, reference = pd.read_csv(run / "metrics.csv"), pd.read_csv(straight / "metrics.csv")
    assert list(continued["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(continued["loss"], reference["loss"], rtol=1e-4)
    np.testing.assert_allclose(continued["val_mae"], reference["val_mae"], rtol=1e-4)


@pytest.mark.slow
def test_mixed_precision_training_keeps_the_target_units(data_dir, tmp_path):
    import keras

    run = tmp_path / "mp"
    try:
        fit(price_config(data_dir, "mp", epochs=8, extra="runtime: {mixed_precision: mixed_float16}"),
            "--run-dir", run)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")  # runtime.setup set it for the process
    model = keras.models.load_model(run / "model.h5")
    assert model.layers[-1].name == "target_scale" and model.layers[-1].dtype_policy.name == "float32"
    assert saved_loss_weight(run / "model.h5") == pytest.approx(compiled_loss_weight(model), rel=1e-12)
    metrics = json.loads((run / "metrics.json").read_text())
    frame = price_frame()
    std = float(frame["price"].std())
    assert metrics["test"]["loss"] < 0.5 and 5 < metrics["test"]["mae"] < 0.5 * std
    pred = model.predict({"numeric": frame[["a", "b"]].to_numpy(np.float32)}, verbose=0).ravel()
    assert pred.dtype == np.float32 and np.corrcoef(pred, frame["price"])[0, 1] > 0.8
