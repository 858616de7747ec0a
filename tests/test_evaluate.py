"""`nettrain evaluate` through the CLI on copies of the session's shared tiny runs (tests/conftest.py)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import copy_run, regression_csv, slow_fixture

runner = CliRunner()
CLASSES = ["high", "low", "mid"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def evaluate_json(*args):
    result = cli("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback, a clean exit
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture(scope="module")
def run(mixed_run, tmp_path_factory):
    """A weak 3-class model (1 epoch) on the mixed CSV: a copy of its run directory (evaluate writes
    its eval-*.json files into the run)."""
    return copy_run(mixed_run, tmp_path_factory.mktemp("evaluate") / "mixed")


@pytest.fixture(scope="module")
def reg_run(regression_run, tmp_path_factory):
    return copy_run(regression_run, tmp_path_factory.mktemp("evaluate_reg") / "reg")


def fit_metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


# ------------------------------------------------------------------------------ metrics

def test_run_dir_reproduces_the_test_metrics_of_fit_exactly(run):
    report = evaluate_json(run)
    expected = fit_metrics(run)["test"]
    assert report["split"] == "test"
    assert report["keras_metrics"] == expected  # exact, not approximate
    for name, value in expected.items():
        assert report["metrics"][name] == value
    assert report["rows"] == json.loads((run / "run.json").read_text())["data"]["rows"]["test"]


def test_eval_file_is_written_into_the_run(run):
    report = evaluate_json(run)
    written = json.loads((run / "eval-test.json").read_text())
    assert written["metrics"] == report["metrics"]
    assert written["confusion_matrix"] == report["confusion_matrix"]
    assert "evaluated" in written


def test_json_holds_every_metric(run):
    report = evaluate_json(run)
    metrics = report["metrics"]
    for name in ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
                 "recall_weighted", "f1_weighted"):
        assert isinstance(metrics[name], float), name
    assert report["class_names"] == CLASSES
    assert set(report["per_class"]) == set(CLASSES)
    for values in report["per_class"].values():
        assert set(values) == {"precision", "recall", "f1-score", "support"}
    matrix = report["confusion_matrix"]
    assert len(matrix) == 3 and all(len(r) == 3 for r in matrix)
    assert sum(map(sum, matrix)) == report["rows"]
    assert sum(v["support"] for v in report["per_class"].values()) == report["rows"]
    # the confusion matrix agrees with the accuracy
    assert sum(matrix[i][i] for i in range(3)) / report["rows"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert report["gates"] == [] and report["passed"] is True


def test_tables_on_stdout(run):
    result = cli("evaluate", run)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in ("Metrics", "accuracy", "f1_macro", "Classification report", "Confusion matrix",
                   "actual \\ predicted", "high", "low", "mid", "eval-test.json"):
        assert needle in out, needle
    assert "\x1b[" not in out


def test_checkpoint_best(run):
    report = evaluate_json(run / "checkpoints" / "best.h5")
    assert report["model"].endswith("best.h5")
    assert report["epoch"] >= 1
    assert set(report["keras_metrics"]) == set(fit_metrics(run)["test"])
    assert (run / "eval-test-best.json").is_file()


def test_split_validation(run):
    report = evaluate_json(run, "--split", "validation")
    assert report["split"] == "validation"
    assert report["keras_metrics"] == fit_metrics(run)["validation"]
    assert (run / "eval-validation.json").is_file()


def test_data_file(run, tmp_path):
    source = pd.read_csv(run.parent / "mixed.csv")
    source.iloc[:50].drop(columns=["id"]).to_csv(tmp_path / "newdata.csv", index=False)
    report = evaluate_json(run, "--data", tmp_path / "newdata.csv")
    assert report["split"] is None and report["rows"] == 50
    assert report["data"].endswith("newdata.csv")
    assert sum(map(sum, report["confusion_matrix"])) == 50
    assert json.loads((run / "eval-newdata.json").read_text())["rows"] == 50


def test_regression_metrics(reg_run):
    report = evaluate_json(reg_run)
    expected = fit_metrics(reg_run)["test"]
    assert report["keras_metrics"] == expected  # the names fit logged ("mae"), not Keras's reload names
    m = report["metrics"]
    assert {"loss", "mae", "mse", "rmse", "r2"} <= set(m)
    assert m["rmse"] == pytest.approx(m["mse"] ** 0.5)
    # the loss is the MSE of the standardized target (preprocessing.target: standard): the MSE in the
    # target's units over the variance the model's last layer scales by
    import keras

    scale = keras.models.load_model(reg_run / "model.h5", compile=False).get_layer("target_scale").get_config()["scale"]
    assert m["mse"] / scale ** 2 == pytest.approx(expected["loss"], rel=1e-4)
    assert "per_class" not in report and "confusion_matrix" not in report


# ------------------------------------------------------------------------------ gates

def test_missed_gate_exits_3_and_names_the_metric(run):
    accuracy = fit_metrics(run)["test"]["accuracy"]
    assert accuracy < 0.99  # a weak model
    result = cli("evaluate", run, "--fail-under", "accuracy=0.99")
    assert result.exit_code == 3, result.output
    assert "accuracy" in result.stderr and "0.99" in result.stderr
    assert ">= 0.99 required: MISSED" in result.stdout


def test_missed_gate_with_json_still_prints_only_json(run):
    result = cli("evaluate", run, "--json", "--fail-under", "accuracy=0.99", "--fail-under", "loss=100")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    gates = {g["metric"]: g for g in report["gates"]}
    assert gates["accuracy"]["passed"] is False and gates["accuracy"]["relation"] == ">="
    assert gates["loss"]["passed"] is True and gates["loss"]["relation"] == "<="
    assert report["passed"] is False


def test_met_gate_exits_0(run):
    result = cli("evaluate", run, "--fail-under", "accuracy=0.01", "--fail-under", "f1_macro=0")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "required: met" in result.stdout


def test_loss_gate_is_an_upper_bound(run):
    assert cli("evaluate", run, "--fail-under", "loss=100").exit_code == 0
    result = cli("evaluate", run, "--fail-under", "loss=0.0001")
    assert result.exit_code == 3
    assert "loss" in result.stderr and "<= 0.0001" in result.stderr


def test_regression_gates_have_directions(reg_run):
    assert cli("evaluate", reg_run, "--fail-under", "rmse=1000", "--fail-under", "mae=1000").exit_code == 0
    assert cli("evaluate", reg_run, "--fail-under", "r2=1.01").exit_code == 3
    assert cli("evaluate", reg_run, "--fail-under", "mse=0").exit_code == 3


def test_unknown_metric_exits_2_listing_the_available(run):
    result = cli("evaluate", run, "--fail-under", "f1=0.5")
    assert_usage_error(result, "'f1'", "f1_macro", "accuracy", "loss")


@pytest.mark.parametrize("spec, needle", [("accuracy", "METRIC=VALUE"), ("accuracy=high", "not a number"),
                                          ("=0.5", "METRIC=VALUE")])
def test_malformed_gate_exits_2(run, spec, needle):
    assert_usage_error(cli("evaluate", run, "--fail-under", spec), needle)


# ------------------------------------------------------------------------------ bad input

def test_unknown_split_and_split_with_data(run):
    assert_usage_error(cli("evaluate", run, "--split", "holdout"), "holdout", "test, validation, train")
    assert_usage_error(cli("evaluate", run, "--split", "test", "--data", run.parent / "mixed.csv"), "--data")


@pytest.mark.slow
def test_run_without_test_rows(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=60)
    cfg = tmp_path / "reg.yaml"
    cfg.write_text("data: {source: reg.csv, target: y, split: {test: 0}}\ntraining: {epochs: 1}\n"
                   "output: {plots: false}\n")
    assert cli("fit", cfg, "--run-dir", tmp_path / "run", "--quiet").exit_code == 0
    assert_usage_error(cli("evaluate", tmp_path / "run"), "no test rows", "train, validation")
    assert cli("evaluate", tmp_path / "run", "--split", "validation").exit_code == 0


def test_changed_data_is_refused(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    record = json.loads((copy / "run.json").read_text())
    record["data"]["fingerprint"] = "0" * 64
    (copy / "run.json").write_text(json.dumps(record))
    assert_usage_error(cli("evaluate", copy), "changed since training", "--data")
    # --data does not need the recorded data
    assert cli("evaluate", copy, "--data", run.parent / "mixed.csv").exit_code == 0


def test_neither_run_nor_h5(run, tmp_path):
    assert_usage_error(cli("evaluate", run.parent / "mixed.csv"), "mixed.csv", "neither a run directory")
    assert_usage_error(cli("evaluate", tmp_path), str(tmp_path), "not a run directory")
    assert_usage_error(cli("evaluate", tmp_path / "nothing"), "nothing")


def test_not_hdf5_and_truncated_h5(run, tmp_path):
    fake = tmp_path / "x.h5"
    fake.write_text("not a model")
    assert_usage_error(cli("evaluate", fake), "x.h5", "not a readable .h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes((run / "model.h5").read_bytes()[:1000])
    assert_usage_error(cli("evaluate", cut), "cut.h5", "truncated")


def test_data_file_lacking_a_feature_column(run, tmp_path):
    pd.read_csv(run.parent / "mixed.csv").drop(columns=["x2"]).to_csv(tmp_path / "nox2.csv", index=False)
    assert_usage_error(cli("evaluate", run, "--data", tmp_path / "nox2.csv"), "nox2.csv", "'x2'")


def test_data_file_lacking_the_target(run, tmp_path):
    pd.read_csv(run.parent / "mixed.csv").drop(columns=["label"]).to_csv(tmp_path / "nolabel.csv", index=False)
    assert_usage_error(cli("evaluate", run, "--data", tmp_path / "nolabel.csv"), "'label'")


def test_string_in_a_numeric_column(run, tmp_path):
    frame = pd.read_csv(run.parent / "mixed.csv").astype({"x1": object})
    frame.loc[5, "x1"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert_usage_error(cli("evaluate", run, "--data", tmp_path / "bad.csv"), "bad.csv", "'x1'", "oops")


@pytest.mark.slow
def test_bad_target_exits_2_without_traceback_in_a_real_process(tmp_path):
    fake = tmp_path / "x.h5"
    fake.write_bytes(b"\x00" * 64)
    proc = subprocess.run([sys.executable, "-m", "nettrain", "evaluate", str(fake), "--fail-under", "loss=1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "x.h5" in proc.stderr
    assert proc.stdout == ""


# ------------------------------------------------------------------------------ exact AUC, the weights' epoch

def predicted(run, data, tmp_path):
    """`nettrain predict RUN DATA --proba` as a frame (the model's scores of each row)."""
    out = tmp_path / "pred.csv"
    result = cli("predict", run, data, "--output", out, "--proba")
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def test_exact_auc_is_scikit_learns_on_the_predictions_one_vs_rest(run, tmp_path):
    from sklearn.metrics import roc_auc_score

    source = pd.read_csv(run.parent / "mixed.csv")
    source.iloc[:60].to_csv(tmp_path / "rows.csv", index=False)
    report = evaluate_json(run, "--data", tmp_path / "rows.csv")
    proba = predicted(run, tmp_path / "rows.csv", tmp_path)[[f"proba_{c}" for c in CLASSES]].to_numpy()
    truth = source.iloc[:60]["label"].map(CLASSES.index).to_numpy()
    assert report["metrics"]["auc_exact"] == pytest.approx(roc_auc_score(truth, proba, multi_class="ovr"), abs=1e-9)
    assert "auc_exact" not in report["keras_metrics"]


@pytest.fixture(scope="module")
@slow_fixture
def stopped_run(tmp_path_factory):
    """A binary run (Keras's auc compiled) stopped early, its best epoch's weights restored (lr 0.05,
    patience 2): best epoch earlier than the last."""
    folder = tmp_path_factory.mktemp("stopped")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + rng.normal(scale=0.8, size=400) > 0.3).astype(int)
    pd.DataFrame({**{f"x{i}": x[:, i] for i in range(4)}, "y": y}).to_csv(folder / "bin.csv", index=False)
    (folder / "bin.yaml").write_text(
        "data: {source: bin.csv, target: y}\nmodel: {layers: [{type: Dense, units: 32, activation: relu}]}\n"
        "training: {epochs: 40, optimizer: {name: adam, learning_rate: 0.05}, metrics: [accuracy, auc]}\n"
        "callbacks: {early_stopping: {patience: 2, restore_best_weights: true}}\noutput: {plots: false}\n")
    result = cli("fit", folder / "bin.yaml", "--run-dir", folder / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_the_evaluated_epoch_is_the_restored_best_epoch(stopped_run):
    record = json.loads((stopped_run / "run.json").read_text())
    assert record["best_epoch"] < record["epochs_done"], record  # the case: an earlier epoch's weights kept
    report = evaluate_json(stopped_run)
    assert report["epoch"] == record["best_epoch"] == record["weights_epoch"]
    assert report["epochs_done"] == record["epochs_done"]
    assert report["keras_metrics"] == fit_metrics(stopped_run)["test"]  # Keras's AUC too, exactly fit's
    shown = cli("evaluate", stopped_run).stdout.splitlines()[0]
    assert shown.startswith(f"evaluated {stopped_run / 'model.h5'} (epoch {record['best_epoch']}: the best, its "
                            f"weights restored by early stopping; trained {record['epochs_done']} epochs)")
    # a checkpoint holds the epoch it was saved at; a run written before weights_epoch was recorded: best_epoch
    assert evaluate_json(stopped_run / "checkpoints" / "last.h5")["epoch"] == record["epochs_done"]
    # model.h5 says which epoch's weights it holds itself: a copy away from its run knows it too
    away = stopped_run.parent / "away"
    away.mkdir(exist_ok=True)
    shutil.copy(stopped_run / "model.h5", away / "model.h5")
    assert evaluate_json(away / "model.h5", "--data", stopped_run.parent / "bin.csv")["epoch"] == record["best_epoch"]
    record.pop("weights_epoch")
    (stopped_run / "run.json").write_text(json.dumps(record))
    assert evaluate_json(stopped_run)["epoch"] == record["best_epoch"]


def test_exact_auc_of_a_binary_model_beside_keras_approximate_one(stopped_run, tmp_path):
    from sklearn.metrics import roc_auc_score

    source = pd.read_csv(stopped_run.parent / "bin.csv")
    report = evaluate_json(stopped_run, "--data", stopped_run.parent / "bin.csv")
    proba = predicted(stopped_run, stopped_run.parent / "bin.csv", tmp_path)["proba_1"].to_numpy()
    exact = roc_auc_score(source["y"], proba)
    assert report["metrics"]["auc_exact"] == pytest.approx(exact, abs=1e-9)
    assert list(report["metrics"])[:4] == ["loss", "accuracy", "auc", "auc_exact"]  # beside Keras's auc
    assert report["metrics"]["auc"] == report["keras_metrics"]["auc"] != report["metrics"]["auc_exact"]
    assert abs(report["metrics"]["auc"] - exact) < 0.01
