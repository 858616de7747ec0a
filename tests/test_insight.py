"""Insight into a network: `nettrain inspect`, `nettrain lr-find` and `callbacks.gradient_stats`.

- inspect on the course's deep sigmoid stack reports vanishing gradients; the same stack with ReLU
  and He initialization does not;
- inspect's gradient norms equal a hand-written `tf.GradientTape` computation on the same batch;
- the variables it lists (trainable and not, BatchNormalization's moving statistics, the
  Normalization layer's mean and variance) and the findings on dead units and initializers;
- lr-find on iris suggests a rate that trains well (20 epochs at it reach a stated accuracy) and
  writes nowhere but its own folder;
- gradient_stats writes the per-layer norms into metrics.csv, TensorBoard and plots/gradients.png,
  and those norms are the ones inspect measures on the checkpoint of that epoch.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import digest

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

DEEP = """\
name: deep
seed: 42
data:
  source: {{generator: make_classification, n_samples: 200, n_features: 8, n_informative: 5, random_state: 0}}
model:
  kernel_initializer: {init}
  layers:
{layers}
training: {{epochs: 2, batch_size: 32, optimizer: {{name: sgd, learning_rate: 0.01}}}}
output: {{dir: runs, plots: false}}
"""


def deep_config(tmp_path: Path, activation: str, init: str, name: str = "deep.yaml") -> Path:
    layers = "\n".join(f"    - {{type: Dense, units: 16, activation: {activation}}}" for _ in range(8))
    path = tmp_path / name
    path.write_text(DEEP.format(init=init, layers=layers))
    return path


def inspect_json(*args: str) -> dict:
    result = runner.invoke(app, ["inspect", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def kinds(report: dict) -> list[str]:
    return [f["kind"] for f in report["findings"]]


# ------------------------------------------------------------------------------ inspect

def test_inspect_reports_vanishing_gradients_on_deep_sigmoid_and_not_with_relu_he(tmp_path):
    sigmoid = inspect_json(str(deep_config(tmp_path, "sigmoid", "glorot_uniform")))
    assert "vanishing_gradients" in kinds(sigmoid), sigmoid["findings"]
    finding = next(f for f in sigmoid["findings"] if f["kind"] == "vanishing_gradients")
    assert "model.layers.0" in finding["message"] and "relu" in finding["fix"] and "he_normal" in finding["fix"]
    dense = [x for x in sigmoid["layers"] if x["type"] == "Dense"]
    assert dense[0]["grad_per_weight"] < 1e-3 * dense[-1]["grad_per_weight"]  # orders of magnitude

    relu = inspect_json(str(deep_config(tmp_path, "relu", "he_normal")))
    assert "vanishing_gradients" not in kinds(relu), relu["findings"]
    assert "exploding_gradients" not in kinds(relu) and "initializer" not in kinds(relu)
    dense = [x for x in relu["layers"] if x["type"] == "Dense"]
    assert dense[0]["grad_per_weight"] > 1e-2 * dense[-1]["grad_per_weight"]
    assert [x["key"] for x in dense] == [f"model.layers.{i}" for i in range(8)] + ["model.output"]
    assert all(x["dead"] is not None and x["saturated"] is None for x in dense[:-1])


def test_inspect_of_a_first_layer_without_any_gradient(tmp_path):
    """kernel_initializer: zeros leaves the first of several layers no gradient at all, once training moved
    the biases and the last layer a little: a finding that says so (it divided by that zero)."""
    config = tmp_path / "zeros.yaml"
    config.write_text(DEEP.format(init="zeros", layers="\n".join(
        "    - {type: Dense, units: 16, activation: selu}" for _ in range(2))))
    fitted = runner.invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert fitted.exit_code == 0, fitted.output
    report = inspect_json(str(tmp_path / "run"))              # trained: the last layer's weights have moved
    finding = next(f for f in report["findings"] if f["kind"] == "vanishing_gradients")
    assert ": none at all, against that of the last layer" in finding["message"], finding["message"]



def test_inspect_gradient_norms_equal_a_hand_written_gradient_tape(tmp_path):
    import keras
    import tensorflow as tf

    from nettrain.config import load_config
    from nettrain.training.feed import model_inputs
    from nettrain.training.fit import new_model, prepare

    config = deep_config(tmp_path, "tanh", "glorot_uniform")
    report = inspect_json(str(config), "--batch", "24")
    assert report["rows"] == 24 and report["model"] == "freshly initialized"

    # the same fresh model (same seed) and the same batch: the first 24 rows of the training split
    prep = prepare(load_config(config))
    model = new_model(prep)
    train = prep.dataset.train
    x = model_inputs(model, {k: v[:24] for k, v in train.inputs.items()})
    y = tf.constant(train.y[:24].reshape(-1, 1), dtype=tf.float32)  # binary: 0/1 labels, sigmoid head
    loss_fn = keras.losses.BinaryCrossentropy()
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = loss_fn(y, y_pred)
    grads = tape.gradient(loss, model.trainable_variables)

    assert math.isclose(report["loss"], float(loss), rel_tol=1e-5)
    # layer names differ between two models built in one process (dense, dense_9, ...): match by position
    trainable = [v for v in report["variables"] if v["kind"] == "trainable"]
    assert len(trainable) == len(grads) == 18
    for entry, variable, grad in zip(trainable, model.trainable_variables, grads):
        assert entry["name"] == variable.name and entry["shape"] == list(variable.shape)
        assert math.isclose(entry["norm"], float(tf.norm(variable)), rel_tol=1e-5)
        assert math.isclose(entry["grad_norm"], float(tf.norm(grad)), rel_tol=1e-4, abs_tol=1e-12), entry
        if entry["name"] == "kernel":  # plain SGD steps by learning_rate * gradient
            assert math.isclose(entry["update_ratio"], 0.01 * entry["grad_norm"] / entry["norm"], rel_tol=1e-3)
    layers = [x for x in report["layers"] if x["grad_norm"] is not None]
    for layer, (kernel, bias) in zip(layers, zip(grads[0::2], grads[1::2])):
        assert math.isclose(layer["grad_norm"], math.sqrt(float(tf.norm(kernel)) ** 2 + float(tf.norm(bias)) ** 2),
                            rel_tol=1e-4)


def test_inspect_lists_every_variable_and_leaves_the_model_as_it_was(tmp_path):
    path = tmp_path / "bn.yaml"
    path.write_text("""\
data: {source: sklearn:iris}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: BatchNormalization}
    - {type: Dropout, rate: 0.5}
    - {type: Dense, units: 6, activation: relu, kernel_initializer: he_normal, bias_initializer: {type: Constant, value: -20.0}}
training: {optimizer: {name: adam, learning_rate: 0.001}}
""")
    report = inspect_json(str(path), "--batch", "20")
    variables = {(v["layer"], v["name"]): v for v in report["variables"]}
    bn = next(x["name"] for x in report["layers"] if x["type"] == "BatchNormalization")
    assert variables[(bn, "gamma")]["kind"] == "trainable"
    assert variables[(bn, "moving_mean")]["kind"] == "non-trainable"
    assert variables[(bn, "moving_variance")]["kind"] == "non-trainable"
    assert variables[(bn, "moving_mean")]["grad_norm"] is None
    norm = next(x["name"] for x in report["layers"] if x["type"] == "Normalization")
    assert variables[(norm, "mean")]["kind"] == "constant" and variables[(norm, "mean")]["count"] == 4
    assert variables[(norm, "variance")]["kind"] == "constant"
    first = next(x for x in report["layers"] if x["key"] == "model.layers.0")
    assert first["trainable"] == 4 * 8 + 8 and variables[(first["name"], "kernel")]["count"] == 32
    assert variables[(first["name"], "kernel")]["grad_norm"] == 0.0  # nothing flows back through a dead layer
    assert variables[(bn, "gamma")]["update_ratio"] is not None  # adam's first step, on what has a gradient
    # a bias of -20 kills every unit of model.layers.3; relu with glorot (the Keras default) misfits
    assert "dead_units" in kinds(report) and "initializer" in kinds(report)
    dead = next(f for f in report["findings"] if f["kind"] == "dead_units")
    assert "model.layers.3" in dead["message"] and "leaky_relu" in dead["fix"]
    init = next(f for f in report["findings"] if f["kind"] == "initializer")
    assert "model.layers.0" in init["message"] and "model.layers.0.kernel_initializer: he_normal" in init["fix"]
    assert "model.layers.3" not in init["message"]  # he_normal there


def test_batch_gradients_put_moving_statistics_and_random_state_back():
    import keras

    from nettrain.training.gradients import batch_gradients, layer_gradient_norms

    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = np.zeros((16, 1), "float32")
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    result = batch_gradients(model, x, y, watch=[model.layers[1]])
    after = [v.numpy() for v in model.non_trainable_variables]
    assert len(before) >= 3  # moving mean, moving variance, the dropout seed
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert set(layer_gradient_norms(model, result)) == {model.layers[i].name for i in (1, 2, 4)}
    assert result.outputs[model.layers[1].name].shape == (16, 4)


@pytest.mark.slow
def test_inspect_names_the_heads_activation_softmax_and_sigmoid(tmp_path):
    """The builder's softmax head showed as "-": the activation comes from the layer's config."""
    iris = tmp_path / "iris.yaml"
    iris.write_text("data: {source: sklearn:iris}\nmodel: {layers: [{type: Dense, units: 4, activation: relu}]}\n")
    report = inspect_json(str(iris), "--batch", "16")
    head = next(x for x in report["layers"] if x["key"] == "model.output")
    assert head["activation"] == "softmax", head
    assert "vanishing_gradients" not in kinds(report) and "saturated_units" not in kinds(report)
    text = runner.invoke(app, ["inspect", str(iris), "--batch", "16"])
    assert text.exit_code == 0, text.output
    row = next(line for line in text.stdout.splitlines() if "model.output" in line and "Dense" in line)
    assert row.split()[3] == "softmax", row  # layer, type, config key, activation
    binary = tmp_path / "binary.yaml"
    binary.write_text("data: {source: {generator: make_classification, n_samples: 60, n_features: 4, "
                      "random_state: 0}}\nmodel: {layers: [], output: {type: Dense, units: 1, activation: sigmoid}}\n")
    head = next(x for x in inspect_json(str(binary))["layers"] if x["key"] == "model.output")
    assert head["activation"] == "sigmoid", head


def test_inspect_bad_arguments_are_one_line(tmp_path):
    config = deep_config(tmp_path, "relu", "he_normal")
    for args, pattern in ((["--batch", "0"], "--batch 0: expected a whole number"),
                          (["--batch", "-3"], "--batch -3")):
        result = runner.invoke(app, ["inspect", str(config), *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and pattern in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2 and "missing.h5" in result.stderr


@pytest.mark.slow
def test_inspect_a_run_and_its_checkpoint(tmp_path):
    config = deep_config(tmp_path, "relu", "he_normal")
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    before = digest(tmp_path)
    on_run = inspect_json(str(run), "--batch", "16")
    assert on_run["kind"] == "run" and on_run["model"] == "trained (epoch 2)" and on_run["rows"] == 16
    assert on_run["learning_rate_from"] == "metrics.csv, epoch 2"
    on_file = inspect_json(str(run / "checkpoints" / "last.h5"), "--batch", "16")
    assert on_file["kind"] == "model"
    assert [x["grad_norm"] for x in on_file["layers"]] == pytest.approx([x["grad_norm"] for x in on_run["layers"]])
    refused = runner.invoke(app, ["inspect", str(run), "--set", "seed=1"])
    assert refused.exit_code == 2 and "--set applies to a CONFIG" in refused.stderr
    assert digest(tmp_path) == before  # inspect writes nothing


# ------------------------------------------------------------------------------ gradient_stats

@pytest.mark.slow
def test_gradient_stats_writes_per_layer_norms_tensorboard_and_plot(tmp_path):
    from nettrain.store.rundir import MetricsCSV

    config = deep_config(tmp_path, "sigmoid", "glorot_uniform")
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run), "--quiet",
                                 "--set", "training.epochs=3", "--set", "callbacks.gradient_stats={every: 2}",
                                 "--set", "callbacks.tensorboard={}", "--set", "output.plots=true"])
    assert result.exit_code == 0, result.output
    rows = MetricsCSV(run / "metrics.csv").read()
    columns = list(rows[0])
    layers = [c for c in columns if c.startswith("grad_norm/")]
    # one column per layer with weights, in model order (Keras names them dense, dense_1, ... in a fresh process)
    assert len(layers) == 9 and layers[-1] == "grad_norm/output"
    assert all(c.startswith("grad_norm/dense") for c in layers[:-1])
    assert columns.index("seconds") < columns.index(layers[0])  # after the contract's columns
    assert [r["epoch"] for r in rows if r[layers[0]] is not None] == [1, 3]  # every 2: epochs 1, 3
    assert rows[-1][layers[0]] < 1e-2 * rows[-1]["grad_norm/output"]  # the sigmoid stack's fan
    assert (run / "plots" / "gradients.png").stat().st_size > 1000
    assert (run / "plots" / "learning_curves.png").is_file()
    events = list((run / "tensorboard" / "gradients").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    # the norms of the last epoch are those inspect measures on its checkpoint (same first batch)
    report = inspect_json(str(run / "checkpoints" / "last.h5"), "--batch", "32")
    for layer in report["layers"]:
        if layer["grad_norm"] is not None:
            assert layer["grad_norm"] == pytest.approx(rows[-1][f"grad_norm/{layer['name']}"], rel=1e-4)


def test_gradient_stats_config_is_checked(write_config):
    from nettrain.config import load_config
    from nettrain.errors import ConfigError

    path = write_config("data: {source: sklearn:iris}\ncallbacks: {gradient_stats: {every: 0}}\n")
    with pytest.raises(ConfigError, match=r"callbacks\.gradient_stats\.every"):
        load_config(path)
    cfg = load_config(write_config("data: {source: sklearn:iris}\ncallbacks: {gradient_stats: {}}\n", "ok.yaml"))
    assert cfg.callbacks.gradient_stats.every == 1


# ------------------------------------------------------------------------------ lr-find

def test_lr_find_suggests_the_steepest_descent_of_a_known_curve():
    from nettrain.lifecycle.lrfind import rates, smooth, suggest, window

    lrs = rates(1e-6, 1.0, 120)
    x = np.log10(lrs)
    curve = 2.0 - 1.5 / (1.0 + np.exp(-(x + 2.0) * 3.0))  # falls fastest at 1e-2
    curve = np.where(x > -0.5, curve + 20 * (x + 0.5) ** 2, curve)  # then blows up
    noisy = curve + np.random.default_rng(0).normal(scale=0.05, size=curve.size)
    width = window(lrs)
    best, slope, lowest = suggest(lrs, smooth(list(noisy), width), width)
    assert 10 ** -2.3 < best < 10 ** -1.7 and slope < 0
    assert lrs[lowest] < 1.0
    flat = suggest(lrs, [1.0] * len(lrs), width)
    assert flat[0] is None


def _lr_result(losses, rates_, chance, stopped=None):
    from nettrain.lifecycle.lrfind import LRFindResult, smooth, suggest, window

    width = window(rates_)
    smoothed = smooth(list(losses), width)
    best, slope, lowest = suggest(rates_, smoothed, width)
    return LRFindResult(output=Path("x"), rates=list(rates_), losses=list(losses), smoothed=smoothed,
                        steps_planned=len(rates_), min_lr=rates_[0], max_lr=rates_[-1], suggestion=best,
                        steepest_slope=slope, lowest_rate=rates_[lowest], lowest_loss=smoothed[lowest],
                        stopped=stopped, chance_loss=chance, chance_what="the class shares"), width


def test_lr_find_judges_a_curve_that_never_beats_chance():
    """Noise around chance (after a fall from a worse start, then a rise) is no learning; a real
    descent well below chance is."""
    from nettrain.lifecycle.lrfind import no_learning, rates

    lrs = rates(1e-6, 1.0, 100)
    x = np.log10(lrs)
    noise = np.random.default_rng(0).normal(scale=0.05, size=x.size)
    priors = 0.693 + 0.1 * (x < -5) + np.where(x > -1, 2.0 * (x + 1) ** 2, 0.0) + noise  # learns the shares only
    result, width = _lr_result(priors, lrs, chance=0.693)
    assert result.suggestion is not None  # what lr-find suggested before
    why = no_learning(result, width)
    assert why and why.startswith("the network learned nothing") and "no better than chance (0.6930" in why
    assert "labels do not seem to depend on the features" in why
    flat, width = _lr_result(0.70 + noise[:40], lrs[:40], chance=0.693)  # 1e-6 to 1e-4 only: nothing moves
    assert "too small to change the weights" in no_learning(flat, width) and "--max" in no_learning(flat, width)
    curve = 0.693 - 0.5 / (1.0 + np.exp(-(x + 2.0) * 3.0)) + noise  # falls to 0.19, far below chance
    learned, width = _lr_result(curve, lrs, chance=0.693)
    assert no_learning(learned, width) is None


@pytest.mark.slow
def test_lr_find_on_random_labels_says_the_network_learned_nothing(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2400, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(label=rng.integers(0, 2, size=2400))
    frame.to_csv(tmp_path / "noise.csv", index=False)
    config = tmp_path / "noise.yaml"
    config.write_text("seed: 3\ndata: {source: noise.csv, target: label}\n"
                      "model: {layers: [{type: Dense, units: 16, activation: relu}]}\ntraining: {batch_size: 32}\n")
    result = runner.invoke(app, ["lr-find", str(config), "--steps", "50", "--output", str(tmp_path / "lr"),
                                 "--json"])
    assert result.exit_code == 0, result.output  # the test ran; its answer is "no rate"
    found = json.loads(result.stdout)
    assert found["suggestion"] is None and found["learned"] is False, found
    assert found["chance_loss"] == pytest.approx(math.log(2), abs=0.01)
    assert found["reason"].startswith("the network learned nothing") and "no better than chance" in found["reason"]
    text = runner.invoke(app, ["lr-find", str(config), "--steps", "50", "--output", str(tmp_path / "lr")])
    assert text.exit_code == 0, text.output
    assert "no suggestion: the network learned nothing" in text.stdout and "suggested" not in text.stdout


@pytest.mark.slow
def test_lr_find_with_rates_far_too_small_suggests_nothing(tmp_path):
    iris = tmp_path / "iris.yaml"
    iris.write_text("data: {source: sklearn:iris}\nmodel: {layers: [{type: Dense, units: 8, activation: relu}]}\n"
                    "training: {batch_size: 16}\n")
    result = runner.invoke(app, ["lr-find", str(iris), "--min", "1e-10", "--max", "1e-8", "--steps", "30",
                                 "--output", str(tmp_path / "lr"), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["suggestion"] is None and found["learned"] is False, found
    assert "too small to change the weights" in found["reason"] and "--max" in found["reason"]


def test_lr_find_bad_arguments_are_refused_before_anything_runs(tmp_path):
    iris = str(ROOT / "configs" / "iris.yaml")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    before = digest(tmp_path)
    cases = [(["--min", "0"], "--min 0.0: expected a learning rate"),
             (["--min", "1", "--max", "0.1"], "--min 1 --max 0.1: the range must grow"),
             (["--max", "inf"], "--max inf"),
             (["--steps", "5"], "--steps 5: expected a whole number from 10"),
             (["--output", str(tmp_path / "run" / "lr")], "is inside the run directory"),
             (["--output", str(tmp_path / "mine")], "holds other files (notes.txt)"),
             (["--set", "training.epochs=0"], "training.epochs")]
    for args, pattern in cases:
        result = runner.invoke(app, ["lr-find", iris, *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and pattern in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2
    assert digest(tmp_path) == before


@pytest.mark.slow
def test_lr_find_on_iris_suggests_a_rate_that_trains_well(tmp_path):
    """iris.yaml trains well at its own 0.05 (SGD, momentum 0.9). lr-find must land within a decade
    of it, and 20 epochs at the suggestion must reach 90% validation and 80% test accuracy."""
    iris = str(ROOT / "configs" / "iris.yaml")
    out = tmp_path / "lr"
    result = runner.invoke(app, ["lr-find", iris, "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    suggestion = found["suggestion"]
    assert 0.005 <= suggestion <= 0.5, found
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.csv", "lr_find.png"]
    with open(out / "lr_find.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["step", "learning_rate", "loss", "smoothed_loss"]
    assert len(table) == found["steps"] and float(table[0]["learning_rate"]) == pytest.approx(1e-6)
    rates = [float(r["learning_rate"]) for r in table]
    assert all(b > a for a, b in zip(rates, rates[1:]))

    run = tmp_path / "run"
    fit = runner.invoke(app, ["fit", iris, "--run-dir", str(run), "--json", "--set", "training.epochs=20",
                              "--set", f"training.optimizer.learning_rate={suggestion}"])
    assert fit.exit_code == 0, fit.output
    metrics = json.loads(fit.stdout)
    assert metrics["validation"]["accuracy"] >= 0.9, metrics
    assert metrics["test"]["accuracy"] >= 0.8, metrics


@pytest.mark.slow
def test_lr_find_prints_its_reasoning_and_writes_beside_the_runs(tmp_path):
    config = deep_config(tmp_path, "relu", "he_normal")
    (tmp_path / "runs" / "deep" / "20240101-000000").mkdir(parents=True)
    (tmp_path / "runs" / "deep" / "20240101-000000" / "run.json").write_text('{"status": "completed"}')
    before = digest(tmp_path / "runs" / "deep" / "20240101-000000")
    result = runner.invoke(app, ["lr-find", str(config), "--steps", "30", "--min", "1e-4", "--max", "10",
                                 "--set", "training.batch_size=16"])
    assert result.exit_code == 0, result.output
    assert "lr-find: " in result.stdout and "steps, learning rate 0.0001 to" in result.stdout
    assert "steepest descent" in result.stdout or "no suggestion" in result.stdout
    folders = sorted(p.name for p in (tmp_path / "runs" / "deep").iterdir())
    assert len(folders) == 2 and folders[1].startswith("lr-find-")
    assert sorted(p.name for p in (tmp_path / "runs" / "deep" / folders[1]).iterdir()) == ["lr_find.csv",
                                                                                         "lr_find.png"]
    assert digest(tmp_path / "runs" / "deep" / "20240101-000000") == before
    listed = runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
    assert [r["path"] for r in json.loads(listed.stdout)] == [str(tmp_path / "runs" / "deep" / "20240101-000000")]
