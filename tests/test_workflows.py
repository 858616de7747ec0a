"""The surprises a Keras user met, each reproduced through the CLI and now gone.

Retrain trains the epochs asked for; an early stop is always told; a Keras text stack
(int sequences, then the user's own Embedding) works as written; labels, losses, heads and
metrics that do not fit are refused before training; regularizers and constraints as Keras users
write them; Keras 2 names; .keras checkpoints; summary.txt is never cut; --json says where the
run is and what it wrote.
"""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("workflows")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    pd.DataFrame(x, columns=list("abcd")).assign(label=np.where(y, "yes", "no")).to_csv(d / "binary.csv", index=False)
    iris_like = rng.normal(size=(240, 4))
    cls = np.argmax(iris_like[:, :3], axis=1)
    pd.DataFrame(iris_like, columns=list("abcd")).assign(kind=np.array(["x", "y", "z"])[cls]).to_csv(
        d / "three.csv", index=False)
    good, bad = ["great", "fine", "love", "best", "nice"], ["awful", "bad", "hate", "worst", "poor"]
    filler = ["the", "movie", "was", "a", "plot", "actor", "and", "it"]
    rows = []
    for i in range(300):
        words = list(rng.choice(filler, 8)) + list(rng.choice(good if i % 2 else bad, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), "pos" if i % 2 else "neg"))
    pd.DataFrame(rows, columns=["review", "label"]).to_csv(d / "reviews.csv", index=False)
    return d


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------ retrain and early stopping

@pytest.mark.slow
def test_retrain_trains_the_epochs_asked_for_after_an_early_stop(folder):
    """Before: the parent's spent patience stopped the retrain after 1 epoch and restored older weights."""
    cfg = write(folder, "es.yaml", """
        data: {source: binary.csv, target: label}
        training: {epochs: 20}
        callbacks: {early_stopping: {patience: 2, min_delta: 100, restore_best_weights: true}}
        output: {plots: false}
    """)  # min_delta 100: no epoch counts as an improvement, so patience runs out after 3 epochs
    run = folder / "es-run"
    result = cli("fit", cfg, "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert "early stopping at epoch 3: val_loss did not improve for 2 epoch(s)" in result.stderr
    assert "the model keeps the weights of epoch 1 (restore_best_weights)" in result.stderr
    assert "early stopping" not in result.stdout  # notices on stderr, results on stdout
    assert json.loads((run / "run.json").read_text())["weights_epoch"] == 1

    result = cli("retrain", run, "--epochs", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3, 4, 5]  # both epochs trained
    assert "early stopping" not in result.stdout + result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_done"] == 5 and record["stopped_epoch"] is None and record["weights_epoch"] == 4
    assert "the model keeps the weights of epoch 4" in result.stderr


@pytest.mark.slow
def test_the_best_checkpoint_is_named_at_the_end(folder):
    cfg = write(folder, "plain.yaml", """
        data: {source: binary.csv, target: label}
        training: {epochs: 3}
        output: {plots: false}
    """)
    result = cli("fit", cfg, "--run-dir", folder / "plain-run", "--quiet")
    assert result.exit_code == 0, result.output
    best = int(json.loads((folder / "plain-run" / "run.json").read_text())["best_epoch"])
    assert f"best epoch {best} (val_loss " in result.stderr and "checkpoints/best.h5" in result.stderr
    assert "best epoch" not in result.stdout


# --------------------------------------------------------------------------- text models

TEXT = """
    data:
      source: reviews.csv
      target: label
      columns: {review: {type: text, output_mode: int, sequence_length: 12, max_tokens: 100}}
    model:
      layers:
        - {type: Embedding, output_dim: 8}
        - {type: GlobalAveragePooling1D}
        - {type: Dense, units: 8, activation: relu}
    training: {epochs: 12}
    output: {plots: false}
"""


@pytest.mark.slow
def test_keras_text_stack_works_as_written(folder):
    """Before: input_dim was refused ('nettrain builds the model inputs') and required at the same time."""
    cfg = write(folder, "text.yaml", TEXT)
    result = cli("validate", cfg, "--build")
    assert result.exit_code == 0, result.output
    assert "added: data.columns.review: TextVectorization (output_mode int" in result.stdout
    assert "added: model.layers.0 Embedding: input_dim" in result.stdout
    assert result.stdout.count("(Embedding)") == 1  # the user's own, not a second one
    result = cli("fit", cfg, "--run-dir", folder / "text-run", "--quiet")
    assert result.exit_code == 0, result.output
    metrics = json.loads((folder / "text-run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9  # the words decide the label
    notes = json.loads((folder / "text-run" / "run.json").read_text())["notes"]
    assert any("Embedding: input_dim" in n for n in notes)


def test_embedding_smaller_than_the_vocabulary_is_refused(folder):
    cfg = write(folder, "text-small.yaml", TEXT.replace("{type: Embedding, output_dim: 8}",
                                                         "{type: Embedding, input_dim: 5, output_dim: 8}"))
    result = cli("validate", cfg, "--build")
    assert result.exit_code == 2
    assert "model.layers.0.input_dim: Embedding input_dim 5 is smaller than the vocabulary of 'review'" in result.stderr


def test_keras2_names_are_read_with_a_note(folder):
    cfg = write(folder, "k2.yaml", TEXT.replace("{type: Embedding, output_dim: 8}",
                                                "{type: Embedding, output_dim: 8, input_length: 12}")
                + "        \n")
    with pytest.warns(UserWarning) as notes:
        result = cli("validate", cfg, "--set", "training.optimizer={name: adam, lr: 0.01}")
    assert result.exit_code == 0, result.output
    said = [str(w.message) for w in notes]
    assert any("training.optimizer.lr is Keras 2's name; read as learning_rate" in n for n in said), said
    assert any("model.layers.0.input_length is gone in Keras 3" in n for n in said), said
    result = cli("validate", cfg, "--set", "training.optimizer={name: adam, lr: 0.01, learning_rate: 0.1}")
    assert result.exit_code == 2 and "learning_rate or lr" in result.stderr


# ----------------------------------------------------------- labels, losses, heads, metrics

@pytest.mark.parametrize("sets, where, words", [
    (["training.loss=categorical_crossentropy", "training.metrics=[sparse_categorical_accuracy]"],
     "training.metrics.0", "expects integer class labels but the labels are one-hot"),
    (["training.metrics=[categorical_accuracy]"], "training.metrics.0",
     "expects one-hot labels but the labels are 0/1 labels for a 1-unit sigmoid head"),
    (["training.loss=sparse_categorical_crossentropy", "training.metrics=[categorical_accuracy]"],
     "training.metrics.0", "expects one-hot labels but the labels are integer class labels"),
    (["data.task=regression", "training.metrics=[accuracy]"], "training.metrics.0",
     "measures classes but the target is numbers"),
    (["training.loss=sparse_categorical_crossentropy", "training.metrics=[accuracy, auc]",
      "model.output={type: Dense, units: 2, activation: softmax}"], "training.metrics.1",
     "'auc' needs one probability per row"),
    (["training.loss=categorical_crossentropy", "model.output={type: Dense, units: 1, activation: sigmoid}"],
     "model.output", "the head has 1 unit(s) but the target has 2 classes"),
    (["model.output={type: Dense, units: 2, activation: softmax}"], "model.output",
     "the head has 2 units but loss auto on a binary target needs 1 sigmoid unit"),
    (["preprocessing.labels=sparse", "training.loss=binary_crossentropy"], "training.loss",
     "'binary_crossentropy' takes one 0/1 label per row (or one-hot labels), but the labels are integer classes"),
], ids=["one-hot+sparse-metric", "binary+categorical-metric", "sparse+categorical-metric", "regression+accuracy", "2-unit-softmax+auc",
        "categorical-ce+1-unit", "binary+2-unit-head", "sparse-labels+binary-loss"])
def test_labels_losses_heads_and_metrics_that_do_not_fit_are_refused_before_training(folder, tmp_path, sets,
                                                                                     where, words):
    cfg = write(folder, "binary.yaml", """
        data: {source: binary.csv, target: label}
        training: {epochs: 1}
        output: {plots: false}
    """)
    args = [a for s in sets for a in ("--set", s)]
    for command in (["validate", cfg, "--build"], ["fit", cfg, "--run-dir", tmp_path / "r"]):
        result = cli(*command, *args)
        assert result.exit_code == 2, result.output
        assert f"{where}: " in result.stderr and words in result.stderr, result.stderr
        assert "fix" in result.stderr.lower()  # what fits and the one-line fix
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 2
        assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("labels, metrics", [("sparse", ["loss", "accuracy"]), ("one_hot", ["loss", "accuracy", "auc"]),
                                             ("auto", ["loss", "accuracy", "auc"])])
def test_auto_metrics_of_a_binary_target_follow_its_labels(folder, tmp_path, labels, metrics):
    """metrics: auto on a binary target is accuracy and AUC, less AUC where the labels are integer classes
    for a 2-unit softmax head (labels: sparse), which AUC cannot read: it crashed inside Keras's AUC."""
    cfg = write(folder, f"auto-{labels}.yaml", """
        data: {source: binary.csv, target: label}
        training: {epochs: 1}
        output: {plots: false}
    """)
    result = cli("fit", cfg, "--run-dir", tmp_path / "r", "--quiet", "--set", f"preprocessing.labels={labels}")
    assert result.exit_code == 0, result.output
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c in ("loss", "accuracy", "auc")] == metrics


def test_a_multiclass_head_of_the_wrong_width_is_refused(folder):
    cfg = write(folder, "three.yaml", """
        data: {source: three.csv, target: kind}
        model: {output: {type: Dense, units: 4, activation: softmax}}
    """)
    result = cli("validate", cfg, "--build")
    assert result.exit_code == 2
    assert "model.output: the head has 4 unit(s) but the target has 3 classes" in result.stderr


# ---------------------------------------------- regularizers, constraints, .keras checkpoints

REGULARIZED = """
    data: {source: binary.csv, target: label}
    model: {layers: [{type: Dense, units: 8, activation: relu}]}
"""


@pytest.mark.parametrize("value", ["l2", "{l2: 0.01}", "{l1_l2: {l1: 0.01, l2: 0.001}}", "{type: L1L2, l1: 0.1}",
                                   "{name: l2, l2: 0.05}"])
def test_regularizers_and_constraints_as_keras_users_write_them(folder, value):
    cfg = write(folder, "reg.yaml", REGULARIZED)
    result = cli("validate", cfg, "--build", "--set", f"model.layers.0.kernel_regularizer={value}",
                 "--set", "model.layers.0.kernel_constraint={max_norm: 3}")
    assert result.exit_code == 0, result.output


def test_an_unknown_regularizer_is_named(folder):
    cfg = write(folder, "reg-unknown.yaml", REGULARIZED)
    result = cli("validate", cfg, "--build", "--set", "model.layers.0.kernel_regularizer={l3: 1}")
    assert result.exit_code == 2
    assert "model.layers.0.kernel_regularizer: regularizer {'l3': 1}: Keras has no regularizer 'l3'" in result.stderr


@pytest.mark.slow
def test_keras_checkpoints_in_the_native_format(folder):
    import keras

    cfg = write(folder, "native.yaml", """
        data: {source: binary.csv, target: label}
        training: {epochs: 2}
        model: {layers: [{type: Dense, units: 8, activation: relu, kernel_regularizer: {l2: 0.01}}]}
        callbacks: {checkpoint: {filename: "e{epoch:02d}.keras"}}
        output: {plots: false}
    """)
    run = folder / "native-run"
    result = cli("fit", cfg, "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.h5", "e01.keras", "e02.keras", "last.h5"]
    model = keras.models.load_model(run / "checkpoints" / "e02.keras")
    assert int(model.optimizer.iterations.numpy()) > 0  # optimizer state saved
    result = cli("validate", cfg, "--set", "callbacks.checkpoint.filename=e{epoch}.pt")
    assert result.exit_code == 2 and "must end in .h5 (nettrain's format) or .keras" in result.stderr
    # nettrain's commands take .h5 files: a .keras one is named as what it is (inspect read it as a
    # config, "not UTF-8 text"; the others called it "neither a run directory nor an .h5 model file")
    native = run / "checkpoints" / "e02.keras"
    for command in (["evaluate", native], ["inspect", native], ["predict", native, folder / "binary.csv"]):
        result = cli(*command)
        assert result.exit_code == 2 and f"{native} is a native Keras checkpoint" in result.stderr
        assert "best.h5 and last.h5 are kept beside it" in result.stderr


# ------------------------------------------------------------------------- output

@pytest.mark.slow
def test_summary_is_never_cut_whatever_the_terminal(folder, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    cfg = write(folder, "wide.yaml", """
        data: {source: binary.csv, target: label}
        model: {layers: [{type: Dense, units: 8, activation: relu, name: a_rather_long_layer_name_for_the_table}]}
        training: {epochs: 1}
        output: {plots: false}
    """)
    run = folder / "wide-run"
    assert cli("fit", cfg, "--run-dir", run, "--quiet").exit_code == 0
    summary = (run / "summary.txt").read_text()
    assert "a_rather_long_layer_name_for_the_table (Dense)" in summary
    assert "Param #" in summary and "Total params" in summary


def test_a_slow_model_gets_fewer_batches_per_call_so_the_bar_moves():
    """The progress bar moves once per call into TensorFlow: on a terminal, a call lasts ~0.5 s at most."""
    from nettrain.training.feed import LIVELY_SECONDS, steps_for

    assert steps_for(0.001, 32) == 32          # a fast MLP keeps the fast setting
    assert steps_for(0.06, 32) == 8            # an LSTM step of 60 ms: 8 batches, ~0.5 s per update
    assert steps_for(2.0, 32) == 1             # never fewer than one batch
    assert steps_for(0.06, 32) * 0.06 <= LIVELY_SECONDS
