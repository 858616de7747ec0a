"""`nettrain baseline CONFIG|RUN` and `fit --baseline`: HistGradientBoosting and a linear model on the rows
nettrain prepares, scored on every split beside the network (no TensorFlow for a config)."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.report.baseline import Tabular, metric_names
from nettrain.report.metrics import roc_auc
from nettrain.store import rundir
from tests.helpers import ROOT, copy_run, mixed_csv, regression_csv, slow_fixture
from tests.test_cli_commands import breaks, shape

runner = CliRunner()

CLASSIFY = """\
name: mixed
seed: 7
data: {source: mixed.csv, target: label, id: id}
model: {layers: [{type: Dense, units: 8, activation: relu}]}
training: {epochs: 2, batch_size: 16}
output: {plots: false}
"""
REGRESS = """\
name: reg
data: {source: reg.csv, target: y}
training: {epochs: 2, metrics: [mae]}
output: {plots: false}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def baseline_json(*args) -> dict:
    result = cli("baseline", *args, "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1, result.stdout
    shown = json.loads(result.stdout)
    assert not breaks(shown, shape("baseline")), breaks(shown, shape("baseline"))
    return shown


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and len(message.splitlines()) <= 2, message
    for needle in needles:
        assert needle in message, message


@pytest.fixture
def classify(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=240)
    (tmp_path / "mixed.yaml").write_text(CLASSIFY)
    return tmp_path / "mixed.yaml"


@pytest.fixture
def regress(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=200)
    (tmp_path / "reg.yaml").write_text(REGRESS)
    return tmp_path / "reg.yaml"


def dataset(config):
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    cfg = load_config(config)
    return cfg, load_dataset(cfg)


# ------------------------------------------------------------------------------ a config

def test_classification_config_equals_a_direct_scikit_learn_fit_on_the_same_rows(classify):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    shown = baseline_json(classify)
    cfg, ds = dataset(classify)
    splits = {"train": ds.train, "validation": ds.validation, "test": ds.test}
    assert shown["task"] == "multiclass" and shown["seed"] == 7 and shown["fit_on"] == "train"
    assert shown["rows"] == {name: len(s) for name, s in splits.items()} and shown["run_dir"] is None
    assert shown["metrics"] == ["accuracy", "auc"] and shown["files"] == []
    assert set(shown["models"]) == {"hist_gradient_boosting", "linear"}

    color = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    color.fit(ds.train.inputs["color"].astype(str))

    def ordinal(s):
        return np.hstack([s.inputs["numeric"].astype(np.float64), color.transform(s.inputs["color"].astype(str))])

    hgb = HistGradientBoostingClassifier(categorical_features=[False, False, True], random_state=cfg.seed)
    hgb.fit(ordinal(ds.train), ds.train.y)
    scaler = StandardScaler().fit(ds.train.inputs["numeric"].astype(np.float64))
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(ds.train.inputs["color"].astype(str))

    def linear(s):
        return np.hstack([scaler.transform(s.inputs["numeric"].astype(np.float64)),
                          onehot.transform(s.inputs["color"].astype(str))])

    logistic = LogisticRegression(max_iter=1000).fit(linear(ds.train), ds.train.y)
    for key, model, x in (("hist_gradient_boosting", hgb, ordinal), ("linear", logistic, linear)):
        for name, s in splits.items():
            got = shown["models"][key]["metrics"][name]
            assert got["accuracy"] == float(np.mean(model.predict(x(s)) == s.y)), (key, name)
            assert got["auc"] == pytest.approx(roc_auc_score(s.y, model.predict_proba(x(s)), multi_class="ovr"),
                                               abs=1e-12), (key, name)
    assert shown["models"]["hist_gradient_boosting"]["params"]["random_state"] == 7
    assert shown["models"]["linear"]["estimator"] == "LogisticRegression"


def test_regression_config_scores_mae_mse_r2_as_scikit_learn_does(regress):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.preprocessing import StandardScaler

    shown = baseline_json(regress)
    cfg, ds = dataset(regress)
    assert shown["task"] == "regression" and shown["metrics"] == ["mae", "mse", "r2"]
    x = {name: s.inputs["numeric"].astype(np.float64) for name, s in
         (("train", ds.train), ("validation", ds.validation), ("test", ds.test))}
    y = {"train": ds.train.y, "validation": ds.validation.y, "test": ds.test.y}
    hgb = HistGradientBoostingRegressor(random_state=cfg.seed).fit(x["train"], y["train"])
    scaler = StandardScaler().fit(x["train"])
    ridge = Ridge().fit(scaler.transform(x["train"]), y["train"])
    for key, predict in (("hist_gradient_boosting", hgb.predict),
                         ("linear", lambda a: ridge.predict(scaler.transform(a)))):
        for name in x:
            got, guess = shown["models"][key]["metrics"][name], predict(x[name])
            assert got["mae"] == pytest.approx(mean_absolute_error(y[name], guess), rel=1e-9)
            assert got["mse"] == pytest.approx(mean_squared_error(y[name], guess), rel=1e-9)
            assert got["r2"] == pytest.approx(r2_score(y[name], guess), rel=1e-9)
    # the target is linear in the inputs: the linear model wins on the held-out rows
    models = shown["models"]
    assert models["linear"]["metrics"]["test"]["mae"] < models["hist_gradient_boosting"]["metrics"]["test"]["mae"]
    assert models["linear"]["estimator"] == "Ridge"


def test_the_table_has_a_row_per_model_under_each_metric_and_a_column_per_split(classify):
    result = cli("baseline", classify)
    assert result.exit_code == 0, result.output
    shown = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert shown[0].startswith(f"baselines for {classify} (multiclass, seed 7): fitted on the ")
    assert shown[1] == "Baselines" and shown[2].split() == ["metric", "model", "train", "validation", "test"]
    rows = [line.split() for line in shown[4:]]
    assert [r[0] for r in rows] == ["accuracy", "LogisticRegression", "auc", "LogisticRegression"]
    assert rows[0][1] == rows[2][1] == "HistGradientBoosting"
    assert [len(r) for r in rows] == [5, 4, 5, 4] and "wrote" not in result.stdout


def test_set_changes_a_config_and_text_columns_are_left_out_with_a_note(tmp_path):
    frame = pd.read_csv(mixed_csv(tmp_path / "mixed.csv", n=120))
    frame["note"] = np.where(frame["x1"] > 0, "tall and bright", "short")
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    (tmp_path / "c.yaml").write_text(CLASSIFY.replace("id: id}", "id: id, columns: {note: {type: text}}}"))
    result = cli("baseline", tmp_path / "c.yaml", "--set", "seed=3", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["seed"] == 3 and shown["models"]["hist_gradient_boosting"]["params"]["random_state"] == 3
    assert any("'note'" in n and "left out" in n for n in shown["notes"])
    assert "baseline: text column 'note' left out" in result.stderr


def test_kfold_configs_and_missing_targets_are_one_line_errors(classify, tmp_path):
    one_line_error(cli("baseline", classify, "--set", "data.split.folds=3"), "data.split.folds", "fold-1")
    one_line_error(cli("baseline", tmp_path / "nope.yaml"), "no such config file or run directory")
    (tmp_path / "mine").mkdir()
    one_line_error(cli("baseline", tmp_path / "mine"), "not a run directory")


def test_streamed_data_is_read_into_memory_up_to_a_bound(classify, monkeypatch):
    from nettrain.lifecycle import baseline as B

    shown = baseline_json(classify, "--set", "data.stream=true")
    assert shown["rows"]["train"] > 100 and shown["models"]["linear"]["metrics"]["test"]["accuracy"] > 0.5
    monkeypatch.setattr(B, "MAX_ROWS", 50)
    one_line_error(cli("baseline", classify, "--set", "data.stream=true"), "streamed", "up to 50 rows")


@pytest.mark.slow
def test_baseline_of_a_config_imports_no_tensorflow(classify):
    code = ("import sys; from nettrain import api; api.baseline(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    proc = subprocess.run([sys.executable, "-c", code, str(classify)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ the pieces

def test_metric_names_follow_the_network_then_the_core_of_the_task():
    assert metric_names("binary", ["loss", "auc", "accuracy", "precision"]) == [
        ("auc", "auc"), ("accuracy", "accuracy"), ("precision", "precision")]
    assert metric_names("regression", ["loss", "mean_absolute_error", "rmse"]) == [
        ("mean_absolute_error", "mae"), ("rmse", "rmse"), ("mse", "mse"), ("r2", "r2")]
    assert metric_names("multiclass", ["sparse_categorical_accuracy", "precision"]) == [
        ("sparse_categorical_accuracy", "accuracy"), ("auc", "auc")]


def test_tabular_codes_unknown_categories_as_missing_and_standardizes_from_the_fit_rows():
    from nettrain.data import ColumnInfo, FeatureSchema, Split

    schema = FeatureSchema(task="binary", target="y", class_names=["0", "1"],
                           columns=[ColumnInfo("x", "numeric"), ColumnInfo("c", "categorical")])

    def split(xs, cs):
        return Split(inputs={"numeric": np.array(xs, dtype=np.float32).reshape(-1, 1),
                             "c": np.array(cs, dtype=object).reshape(-1, 1)}, y=np.zeros(len(xs), dtype=np.int64))

    table = Tabular(schema, split([1, 2, 3], ["b", "a", "b"]))
    assert table.ordinal(split([5, 6], ["a", "z"])).tolist() == [[5.0, 0.0], [6.0, -1.0]]
    assert table.boosting_categorical.tolist() == [False, True]
    dense = table.linear(split([2, 4], ["b", "z"]))
    assert dense.tolist() == [[0.0, 0.0, 1.0], [pytest.approx(2 / np.std([1, 2, 3])), 0.0, 0.0]]


def test_roc_auc_is_scikit_learns_binary_and_one_vs_rest():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=1e-12)
    b = (y == 1).astype(int)
    assert roc_auc(b, p[:, 1:2]) == roc_auc_score(b, p[:, 1])
    assert math.isnan(roc_auc(np.zeros(5, dtype=int), np.linspace(0, 1, 5)))


# ------------------------------------------------------------------------------ a run, fit --baseline

@pytest.fixture(scope="module")
@slow_fixture
def fitted(tmp_path_factory):
    """`fit --baseline --json` on a 2-epoch run of the classification config: (its JSON, the run, the config)."""
    folder = tmp_path_factory.mktemp("fit_baseline")
    mixed_csv(folder / "mixed.csv", n=240)
    (folder / "mixed.yaml").write_text(CLASSIFY)
    result = cli("fit", folder / "mixed.yaml", "--run-dir", folder / "run", "--baseline", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), folder / "run", folder / "mixed.yaml"


@pytest.mark.slow
def test_fit_baseline_writes_baseline_json_and_its_json_holds_it(fitted):
    shown, run, config = fitted
    assert not breaks(shown, shape("fit")), breaks(shown, shape("fit"))
    assert "baseline.json" in shown["files"] and shown["baseline"]["run_dir"] == str(run)
    written = json.loads((run / rundir.BASELINE).read_text())
    assert "written" in written and {k: v for k, v in written.items() if k != "written"} == shown["baseline"]
    network = shown["baseline"]["models"]["network"]["metrics"]
    metrics = json.loads((run / rundir.METRICS_JSON).read_text())
    assert network == {split: {m: metrics[split][m] for m in ("accuracy",)} for split in metrics
                       if split in rundir.SPLITS}  # metrics.json also holds the test split's interval
    assert set(metrics["test"]) == {"loss", "accuracy"}  # metrics.json keeps the network's own metrics only
    assert rundir.foreign_entries(run) == []  # baseline.json is nettrain's: --force may replace the run
    # the same rows as a config's baselines: the same numbers
    again = baseline_json(config)
    assert again["models"]["hist_gradient_boosting"] == shown["baseline"]["models"]["hist_gradient_boosting"] | {
        "seconds": again["models"]["hist_gradient_boosting"]["seconds"]}


@pytest.mark.slow
def test_baseline_of_a_run_shows_the_network_first_and_writes_into_the_run(fitted, tmp_path):
    _, run, _ = fitted
    copy = copy_run(run, tmp_path / "copy")
    (copy / rundir.BASELINE).unlink()
    result = cli("baseline", copy)
    assert result.exit_code == 0, result.output
    shown = [line.split() for line in result.stdout.splitlines() if line.strip()]
    assert shown[4][:2] == ["accuracy", "network"]
    assert [shown[5][0], shown[6][0]] == ["HistGradientBoosting", "LogisticRegression"]
    assert shown[-1] == ["wrote", str(copy / rundir.BASELINE)]
    assert json.loads((copy / rundir.BASELINE).read_text())["run_dir"] == str(copy)
    one_line_error(cli("baseline", copy, "--set", "seed=1"), "--set changes a CONFIG")


@pytest.mark.slow
def test_fit_baseline_table_shows_the_baselines_below_the_network(tmp_path, classify):
    result = cli("fit", classify, "--run-dir", tmp_path / "run", "--baseline", "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    shown = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert shown[0] == "Final metrics" and shown[-1] == f"run directory: {tmp_path / 'run'}"
    names = [re.split(r"\s{2,}", line)[0] for line in shown[3:-1]]
    assert names == ["loss", "accuracy", "accuracy (HistGradientBoosting)", "auc (HistGradientBoosting)",
                     "accuracy (LogisticRegression)", "auc (LogisticRegression)"]
    assert (tmp_path / "run" / rundir.BASELINE).is_file()


def test_a_kfold_config_with_a_refit_fits_on_every_non_test_row(classify):
    """A k-fold config whose model is trained on every non-test row (refit: true or ensemble) gets the
    baselines of those rows, scored on them and on the test split (there is no validation split)."""
    one = baseline_json(classify)
    for refit in ("true", "ensemble"):
        shown = baseline_json(classify, "--set", "data.split.folds=3", "--set", f"data.split.refit={refit}")
        assert shown["rows"] == {"train": one["rows"]["train"] + one["rows"]["validation"],
                                 "test": one["rows"]["test"]}, (shown["rows"], one["rows"])
        assert set(shown["models"]["linear"]["metrics"]) == {"train", "test"}
    streamed = baseline_json(classify, "--set", "data.split.folds=3", "--set", "data.split.refit=ensemble",
                             "--set", "data.stream=true")
    # a stream's rows are split by their hashes: other counts, the same rows in all, none for validation
    assert set(streamed["rows"]) == {"train", "test"} and sum(streamed["rows"].values()) == sum(shown["rows"].values())


def test_fit_baseline_refuses_a_kfold_config_before_training(classify, tmp_path):
    result = cli("fit", classify, "--run-dir", tmp_path / "run", "--baseline", "--set", "data.split.folds=3")
    one_line_error(result, "data.split.folds")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_kfold_run_names_its_folds_and_a_fold_has_its_own_rows(kfold_run, tmp_path):
    one_line_error(cli("baseline", kfold_run), "k-fold run", "fold-1")
    fold = copy_run(kfold_run, tmp_path / "kf") / "fold-2"
    shown = baseline_json(fold)
    recorded = json.loads((fold / "run.json").read_text())["data"]["rows"]
    assert shown["rows"] == {k: v for k, v in recorded.items() if v}, (shown["rows"], recorded)
    assert (fold / rundir.BASELINE).is_file() and shown["models"]["network"]["metrics"]
