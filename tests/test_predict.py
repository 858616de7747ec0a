"""`nettrain predict` through the CLI on the session's shared tiny runs (tests/conftest.py)."""

import io
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import keras
from nettrain.cli import app

runner = CliRunner()
CLASSES = ["high", "low", "mid"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr, result.stderr


def train(root, csv_text_maker, config: str):
    csv_text_maker()
    cfg = root / "config.yaml"
    cfg.write_text(textwrap.dedent(config))
    out = root / "run"
    result = cli("fit", cfg, "--run-dir", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def run(mixed_run):
    return mixed_run  # predict writes nothing into a run: the shared one is read as it is


@pytest.fixture(scope="module")
def data(run):
    return run.parent / "mixed.csv"


def keras_predict(model_path, frame):
    """Plain Keras on raw columns: the reference the probabilities must equal."""
    model = keras.models.load_model(model_path)
    x = {"numeric": frame[["x1", "x2"]].to_numpy(dtype="float32"),
         "color": tf.constant(frame[["color"]].to_numpy().astype(str))}
    return model.predict(x, verbose=0)


def predict_csv(*args):
    result = cli("predict", *args)
    assert result.exit_code == 0, result.output
    return result, pd.read_csv(io.StringIO(result.stdout))


def test_labels_in_input_order_with_the_id_column(run, data, tmp_path):
    out = tmp_path / "pred.csv"
    result = cli("predict", run, data, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the notice goes to stderr
    pred = pd.read_csv(out)
    source = pd.read_csv(data)
    assert list(pred.columns) == ["id", "prediction"]
    assert pred["id"].tolist() == source["id"].tolist()
    assert set(pred["prediction"]) <= set(CLASSES)
    reference = keras_predict(run / "model.h5", source)
    assert pred["prediction"].tolist() == [CLASSES[i] for i in reference.argmax(axis=1)]


def test_proba_equals_plain_keras_predict(run, data):
    _, pred = predict_csv(run, data, "--proba")
    assert list(pred.columns) == ["id", "prediction"] + [f"proba_{c}" for c in CLASSES]
    reference = keras_predict(run / "model.h5", pd.read_csv(data))
    probs = pred[[f"proba_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs, reference, atol=1e-6, rtol=0)
    assert pred["prediction"].tolist() == [CLASSES[i] for i in probs.argmax(axis=1)]


def test_stdout_is_only_csv(run, data):
    result, pred = predict_csv(run, data)
    lines = result.stdout.splitlines()
    assert lines[0] == "id,prediction"
    assert len(lines) == 1 + len(pred) == 1 + len(pd.read_csv(data))


def test_parquet_output(run, data, tmp_path):
    out = tmp_path / "pred.parquet"
    assert cli("predict", run, data, "--proba", "-o", out).exit_code == 0
    parquet = pd.read_parquet(out)
    _, csv = predict_csv(run, data, "--proba")
    assert parquet["id"].tolist() == csv["id"].tolist()
    assert parquet["prediction"].tolist() == csv["prediction"].tolist()
    np.testing.assert_allclose(parquet["proba_mid"].to_numpy(), csv["proba_mid"].to_numpy(), atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_without_target_and_id_with_unseen_category_and_extra_column(run, tmp_path):
    frame = pd.DataFrame({"x1": [0.1, -2.0], "x2": [10.0, 4.0], "color": ["purple", "red"], "note": ["a", "b"]})
    path = tmp_path / "rows.jsonl"
    frame.to_json(path, orient="records", lines=True)
    _, pred = predict_csv(run / "checkpoints" / "last.h5", path, "--proba")
    assert list(pred.columns) == ["prediction"] + [f"proba_{c}" for c in CLASSES]
    assert len(pred) == 2
    np.testing.assert_allclose(pred[[f"proba_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A 2-epoch model of a yes/no target (sigmoid head) on 120 rows of bin.csv, next to it. Read-only."""
    tmp_path = tmp_path_factory.mktemp("binary")

    def make():
        rng = np.random.default_rng(1)
        x = rng.normal(size=(120, 2))
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x.sum(axis=1) > 0, "yes", "no")}) \
            .to_csv(tmp_path / "bin.csv", index=False)
    return train(tmp_path, make, """
        data: {source: bin.csv, target: y}
        training: {epochs: 2}
        output: {plots: false}
    """)


@pytest.mark.slow
def test_binary_proba_is_p_and_one_minus_p(binary_run):
    run = binary_run
    tmp_path = run.parent
    _, pred = predict_csv(run, tmp_path / "bin.csv", "--proba")
    assert list(pred.columns) == ["prediction", "proba_no", "proba_yes"]
    frame = pd.read_csv(tmp_path / "bin.csv")
    p = keras.models.load_model(run / "model.h5").predict(
        {"numeric": frame[["a", "b"]].to_numpy(dtype="float32")}, verbose=0)[:, 0]
    np.testing.assert_allclose(pred["proba_yes"], p, atol=1e-6, rtol=0)
    np.testing.assert_allclose(pred["proba_no"], 1 - p, atol=1e-6, rtol=0)
    assert pred["prediction"].tolist() == np.where(p > 0.5, "yes", "no").tolist()


def float32_text(field: str) -> bool:
    """`field` is a float32 value in float32's shortest digits (0.1, not 0.10000000149011612)."""
    value = np.float32(field)
    mantissa = field.lstrip("-").lower().split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa) <= 9 and float(field) == float(str(value))  # numpy's shortest float32 digits


def number_fields(text: str, prefix: str) -> list[str]:
    """The fields of the CSV `text`'s columns whose names start with `prefix`, as written."""
    lines = text.splitlines()
    columns = [i for i, name in enumerate(lines[0].split(",")) if name.startswith(prefix)]
    return [line.split(",")[i] for line in lines[1:] for i in columns]


@pytest.mark.slow
def test_probabilities_and_predictions_print_float32_digits(binary_run, run, data, regression_run, tmp_path):
    """--proba of a sigmoid head gave float64 digits of float32 values (0.3815126419067383): every
    probability and regression prediction, on stdout and in --output files, is written in float32's
    shortest form, and parquet keeps float32 columns."""
    binary_data = binary_run.parent / "bin.csv"
    for target, rows, prefix in ((binary_run, binary_data, "proba_"), (run, data, "proba_")):
        result, _ = predict_csv(target, rows, "--proba")
        fields = number_fields(result.stdout, prefix)
        assert fields and all(float32_text(f) for f in fields), [f for f in fields if not float32_text(f)][:5]
        out = tmp_path / f"{target.parent.name}.csv"
        assert cli("predict", target, rows, "--proba", "-o", out).exit_code == 0
        assert out.read_text() == result.stdout  # the same text in a file as on stdout
    parquet = tmp_path / "bin.parquet"
    assert cli("predict", binary_run, binary_data, "--proba", "-o", parquet).exit_code == 0
    frame = pd.read_parquet(parquet)
    assert frame["proba_no"].dtype == np.float32 and frame["proba_yes"].dtype == np.float32
    result, _ = predict_csv(regression_run, regression_run.parent / "reg.csv")
    fields = number_fields(result.stdout, "prediction")
    assert fields and all(float32_text(f) for f in fields), fields[:5]


def test_regression_predictions_are_numbers(regression_run):
    run, data = regression_run, regression_run.parent / "reg.csv"
    _, pred = predict_csv(run, data)
    assert list(pred.columns) == ["prediction"] and pred["prediction"].dtype.kind == "f"
    frame = pd.read_csv(data)
    p = keras.models.load_model(run / "model.h5").predict(
        {"numeric": frame[["a", "b", "c"]].to_numpy(dtype="float32")}, verbose=0)[:, 0]
    np.testing.assert_allclose(pred["prediction"], p, atol=1e-5, rtol=1e-6)
    assert_usage_error(cli("predict", run, data, "--proba"), "regression")


# ------------------------------------------------------------------------------ bad input

def test_input_lacking_a_feature_column(run, data, tmp_path):
    pd.read_csv(data).drop(columns=["x2"]).to_csv(tmp_path / "nox2.csv", index=False)
    assert_usage_error(cli("predict", run, tmp_path / "nox2.csv"), "nox2.csv", "'x2'")


def test_string_in_a_numeric_column(run, data, tmp_path):
    frame = pd.read_csv(data).astype({"x2": object})
    frame.loc[7, "x2"] = "n/a?"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert_usage_error(cli("predict", run, tmp_path / "bad.csv"), "bad.csv", "'x2'", "n/a?")


def test_neither_run_nor_h5(run, data, tmp_path):
    assert_usage_error(cli("predict", data, data), "mixed.csv", "neither a run directory")
    assert_usage_error(cli("predict", tmp_path, data), "not a run directory")


def test_not_hdf5_and_truncated_h5(run, data, tmp_path):
    fake = tmp_path / "x.h5"
    fake.write_text("hello")
    assert_usage_error(cli("predict", fake, data), "x.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes((run / "model.h5").read_bytes()[:1000])
    assert_usage_error(cli("predict", cut, data), "cut.h5", "truncated")


def test_bad_output_extension_and_missing_input(run, data, tmp_path):
    assert_usage_error(cli("predict", run, data, "--output", tmp_path / "pred.xlsx"), ".xlsx", ".csv, .parquet")
    assert not (tmp_path / "pred.xlsx").exists()
    assert_usage_error(cli("predict", run, tmp_path / "missing.csv"), "missing.csv")



def test_predict_never_overwrites_the_data_file_of_the_models_run(run, tmp_path):
    """`predict RUN new.csv --output train.csv` replaced the run's training file with predictions
    (only the input itself was protected). Refused by any name of that file, before anything is read."""
    data = run.parent / "mixed.csv"
    before = data.read_bytes()
    (tmp_path / "alias.csv").symlink_to(data)
    new = tmp_path / "new.csv"
    new.write_bytes(before)
    for target in (run, run / "checkpoints" / "best.h5"):
        for out in (data, tmp_path / "alias.csv"):
            assert_usage_error(cli("predict", target, new, "--output", out),
                               "is the data file of the model's run (data.source:", "never overwrites a run's data")
    assert data.read_bytes() == before
    done = cli("predict", run, new, "--output", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
