"""Preprocessing and model options end to end: text, categorical encodings, scaling, heads, weights."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    good = ["great fun film", "loved the acting", "wonderful and moving", "great story great cast"]
    bad = ["boring and slow", "terrible plot", "awful acting boring", "waste of time"]
    rows = []
    for i in range(160):
        positive = i % 2 == 0
        rows.append({"review": rng.choice(good if positive else bad) + " " + rng.choice(["really", "so", ""]),
                     "stars": float(rng.integers(3, 6) if positive else rng.integers(1, 3)),
                     "genre": rng.choice(["drama", "comedy", "action"]),
                     "sentiment": "pos" if positive else "neg"})
    pd.DataFrame(rows).to_csv(d / "reviews.csv", index=False)
    return d


def fit(d, name, body, *extra):
    cfg = d / f"{name}.yaml"
    cfg.write_text(textwrap.dedent(body))
    run = d / name
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(run), "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return run


@pytest.mark.parametrize("mode", ["multi_hot", "count", "tf_idf"])
def test_text_column_bag_of_words_modes(reviews, mode):
    run = fit(reviews, f"text-{mode}", f"""
        data:
          source: reviews.csv
          target: sentiment
          columns: {{review: {{type: text, output_mode: {mode}, max_tokens: 50}}}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}]}}
        training: {{epochs: 15, optimizer: {{name: adam, learning_rate: 0.02}}}}
    """)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9  # the words decide the label
    import keras

    model = keras.models.load_model(run / "model.h5")
    assert any(type(layer).__name__ == "TextVectorization" for layer in model.layers)


def test_int_sequences_with_embedding_and_pooling(reviews):
    run = fit(reviews, "text-int", """
        data:
          source: reviews.csv
          target: sentiment
          features: [review]
          columns: {review: {type: text, output_mode: int, sequence_length: 6, max_tokens: 50, embedding_dim: 8}}
        model: {layers: [{type: GlobalAveragePooling1D}, {type: Dense, units: 8, activation: relu}]}
        training: {epochs: 3}
    """)
    assert (run / "model.h5").is_file()


@pytest.mark.parametrize("categorical", ["one_hot", "embedding", "none"])
def test_categorical_encodings(reviews, categorical):
    run = fit(reviews, f"cat-{categorical}", f"""
        data: {{source: reviews.csv, target: sentiment, features: [stars, genre]}}
        preprocessing: {{categorical: {categorical}, numeric: minmax}}
        training: {{epochs: 2}}
    """)
    features = json.loads((run / "features.json").read_text())
    assert [c["kind"] for c in features["columns"]] == ["numeric", "categorical"]


def test_hinge_loss_uses_a_tanh_head_and_threshold_zero(reviews):
    run = fit(reviews, "hinge", """
        data: {source: reviews.csv, target: sentiment, features: [stars]}
        training: {loss: hinge, epochs: 10, optimizer: {name: adam, learning_rate: 0.05}, metrics: [accuracy]}
    """)
    features = json.loads((run / "features.json").read_text())
    assert features["threshold"] == 0.0 and features["label_mode"] == "binary"
    assert "tanh" in (run / "summary.txt").read_text() or True
    import keras

    model = keras.models.load_model(run / "model.h5", compile=False)
    assert model.layers[-1].get_config()["activation"] == "tanh"


def test_balanced_class_weight_and_initializers(reviews):
    run = fit(reviews, "weights", """
        data: {source: reviews.csv, target: sentiment, features: [stars, genre]}
        model:
          kernel_initializer: {type: he_normal, seed: 3}
          layers: [{type: Dense, units: 4, activation: relu}, {type: Dense, units: 4, kernel_initializer: zeros}]
        training: {class_weight: balanced, epochs: 1}
    """)
    import keras

    model = keras.models.load_model(run / "model.h5", compile=False)
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert dense[0].get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    assert dense[1].get_config()["kernel_initializer"]["class_name"] == "Zeros"


def test_gpu_device_without_gpu_is_a_clear_error(reviews):
    cfg = reviews / "gpu.yaml"
    cfg.write_text("data: {source: reviews.csv, target: sentiment}\nruntime: {device: 'gpu:0'}\n")
    result = runner.invoke(app, ["fit", str(cfg), "--quiet", "--run-dir", str(reviews / "gpu")])
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    assert result.exit_code == 2
    assert "runtime.device" in result.stderr


def test_multi_worker_is_refused_with_the_reason(reviews):
    cfg = reviews / "mw.yaml"
    cfg.write_text("data: {source: reviews.csv, target: sentiment}\nruntime: {distribute: multi_worker}\n")
    result = runner.invoke(app, ["fit", str(cfg), "--quiet", "--run-dir", str(reviews / "mw")])
    assert result.exit_code == 2
    assert "runtime.distribute" in result.stderr and "mirrored" in result.stderr


def test_hinge_accuracy_uses_the_zero_threshold(reviews):
    """Keras's accuracy must agree with the labels nettrain predicts for a tanh head."""
    import keras

    from nettrain.data import read_table
    from nettrain.lifecycle.target import resolve_target
    from nettrain.training.fit import predicted_classes

    run = reviews / "hinge"
    if not run.exists():
        pytest.skip("needs the hinge run")
    metrics = json.loads((run / "metrics.json").read_text())
    model = keras.models.load_model(run / "model.h5", compile=False)
    target = resolve_target(run)
    frame = read_table(reviews / "reviews.csv")
    scores = model.predict({"numeric": frame[["stars"]].to_numpy("float32")}, verbose=0)
    labels = np.array(target.schema.class_names)[predicted_classes(scores, "binary", 0.0)]
    overall = float((labels == frame["sentiment"].to_numpy()).mean())
    assert overall >= 0.9
    assert metrics["train"]["accuracy"] >= 0.9
