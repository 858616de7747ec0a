"""Preprocessing and model options end to end: text, categorical encodings, scaling, heads, weights."""

import io
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


def layers_of(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind]


@pytest.mark.slow
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


@pytest.mark.slow
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
    import keras

    model = keras.models.load_model(run / "model.h5", compile=False)
    [vectorize] = layers_of(model, "TextVectorization")
    assert vectorize.get_config()["output_mode"] == "int" and vectorize.get_config()["output_sequence_length"] == 6
    [embedding] = layers_of(model, "Embedding")
    assert embedding.get_config()["output_dim"] == 8
    assert layers_of(model, "GlobalAveragePooling1D")


# Per encoding: the StringLookup's output mode, whether an Embedding follows it, and the width the
# genre column adds to the features the first Dense layer sees (one_hot: 3 genres + the
# out-of-vocabulary slot; embedding: the embedding's width; none: the ordinal code as one number).
ENCODINGS = {"one_hot": ("one_hot", False, lambda embedding: 3 + 1),
             "embedding": ("int", True, lambda embedding: embedding.get_config()["output_dim"]),
             "none": ("int", False, lambda embedding: 1)}


@pytest.mark.slow
@pytest.mark.parametrize("categorical", list(ENCODINGS))
def test_categorical_encodings(reviews, categorical):
    import keras
    import tensorflow as tf

    run = fit(reviews, f"cat-{categorical}", f"""
        data: {{source: reviews.csv, target: sentiment, features: [stars, genre]}}
        preprocessing: {{categorical: {categorical}, numeric: minmax}}
        training: {{epochs: 2}}
    """)
    features = json.loads((run / "features.json").read_text())
    assert [c["kind"] for c in features["columns"]] == ["numeric", "categorical"]
    output_mode, embedded, genre_width = ENCODINGS[categorical]
    model = keras.models.load_model(run / "model.h5", compile=False)
    [lookup] = layers_of(model, "StringLookup")
    assert lookup.get_config()["output_mode"] == output_mode
    assert sorted(lookup.get_vocabulary()[1:]) == ["action", "comedy", "drama"]  # index 0: out of vocabulary
    embeddings = layers_of(model, "Embedding")
    assert len(embeddings) == int(embedded)
    if embedded:
        assert embeddings[0].get_config()["input_dim"] == 3 + 1
    # the input width of the first Dense layer: stars (1) plus what the encoding makes of genre
    first_dense = layers_of(model, "Dense")[0]
    assert first_dense.get_weights()[0].shape[0] == 1 + genre_width(embeddings[0] if embedded else None)
    # an unseen genre goes to the out-of-vocabulary slot, the same one for every unseen value
    codes = lookup(tf.constant([["horror"], ["western"], ["drama"]])).numpy()
    if output_mode == "one_hot":
        assert codes[:2].tolist() == [[1, 0, 0, 0]] * 2 and codes[2][0] == 0
    else:
        assert codes[:2].ravel().tolist() == [0, 0] and codes[2][0] > 0
    rows = reviews / f"unseen-{categorical}.csv"
    pd.DataFrame({"stars": [4.0, 4.0], "genre": ["horror", "western"]}).to_csv(rows, index=False)
    result = runner.invoke(app, ["predict", str(run), str(rows), "--proba"])
    assert result.exit_code == 0, result.output
    proba = pd.read_csv(io.StringIO(result.stdout))[["proba_neg", "proba_pos"]].to_numpy()
    np.testing.assert_array_equal(proba[0], proba[1])  # one bucket, one prediction


@pytest.fixture(scope="module")
def hinge_run(reviews):
    """A hinge-loss binary run trained briefly, so that its tanh scores are not saturated: the
    positive rows with 3 stars score between 0 and 0.5, where thresholds 0 and 0.5 disagree."""
    return fit(reviews, "hinge", """
        data: {source: reviews.csv, target: sentiment, features: [stars]}
        training: {loss: hinge, epochs: 2, optimizer: {name: adam, learning_rate: 0.01}, metrics: [accuracy]}
    """)


@pytest.mark.slow
def test_hinge_loss_uses_a_tanh_head_and_threshold_zero(hinge_run):
    import keras

    features = json.loads((hinge_run / "features.json").read_text())
    assert features["threshold"] == 0.0 and features["label_mode"] == "binary"
    model = keras.models.load_model(hinge_run / "model.h5", compile=False)
    assert model.layers[-1].get_config()["activation"] == "tanh"


@pytest.mark.slow
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
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    cfg = reviews / "gpu.yaml"
    cfg.write_text("data: {source: reviews.csv, target: sentiment}\nruntime: {device: 'gpu:0'}\n")
    result = runner.invoke(app, ["fit", str(cfg), "--quiet", "--run-dir", str(reviews / "gpu")])
    assert result.exit_code == 2
    assert "runtime.device" in result.stderr


def test_multi_worker_without_a_cluster_says_how_to_give_one(reviews, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = reviews / "mw.yaml"
    cfg.write_text("data: {source: reviews.csv, target: sentiment}\nruntime: {distribute: multi_worker}\n")
    result = runner.invoke(app, ["fit", str(cfg), "--quiet", "--run-dir", str(reviews / "mw")])
    assert result.exit_code == 2
    assert "runtime.distribute" in result.stderr and "TF_CONFIG" in result.stderr and "--workers" in result.stderr
    assert not (reviews / "mw").exists()


@pytest.mark.slow
def test_hinge_accuracy_uses_the_zero_threshold(hinge_run, reviews):
    """Keras's accuracy must agree with the labels nettrain predicts for a tanh head (threshold 0)."""
    import keras

    frame = pd.read_csv(reviews / "reviews.csv")
    model = keras.models.load_model(hinge_run / "model.h5", compile=False)
    scores = model.predict({"numeric": frame[["stars"]].to_numpy("float32")}, verbose=0)[:, 0]
    assert ((scores > 0) & (scores < 0.5)).any()  # rows a 0.5 threshold would call negative
    result = runner.invoke(app, ["predict", str(hinge_run), str(reviews / "reviews.csv")])
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(io.StringIO(result.stdout))["prediction"].to_numpy()
    assert labels.tolist() == np.where(scores > 0, "pos", "neg").tolist()
    accuracy = float((labels == frame["sentiment"].to_numpy()).mean())
    assert accuracy >= 0.9
    result = runner.invoke(app, ["evaluate", str(hinge_run), "--data", str(reviews / "reviews.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keras_metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
