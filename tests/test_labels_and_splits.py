"""The Keras tutorials done with nettrain, without a surprise: class labels keep their order and
type, official train/test splits are kept, `init --output` writes a config that loads from anywhere,
and `evaluate` measures a k-fold run fold by fold. Each test states the old behaviour it replaces."""

from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.data import load_dataset
from nettrain.errors import ConfigError
from tests.helpers import copy_run, slow_fixture

# int_run's data lacks one label on purpose: fit, evaluate and predict each drop that row with a warning
pytestmark = pytest.mark.filterwarnings(r"ignore:.*int_labels.* dropped 1 of 150 rows with a missing value:UserWarning")

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def usage_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


def fit(root: Path, config: str, name: str = "run") -> Path:
    cfg = root / f"{name}.yaml"
    cfg.write_text(textwrap.dedent(config))
    out = root / name
    ok("fit", cfg, "--run-dir", out, "--quiet")
    return out


# =============================================================== 1. class order and label types

def integer_labels_csv(path: Path, n: int = 150) -> Path:
    """Labels -1, 2 and 10 (string order would put "10" before "2"); one missing label makes
    pandas read the column as floats (-1.0, 2.0, 10.0)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] > 0.4, 10, np.where(x[:, 0] < -0.4, -1, 2)).astype(float)
    y[7] = np.nan
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
@slow_fixture
def int_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("int_labels")
    integer_labels_csv(root / "d.csv")
    return fit(root, """
        data: {source: d.csv, target: y}
        preprocessing: {missing: drop_rows}
        training: {epochs: 1}
        output: {plots: false}
    """)


def test_classes_in_numeric_order_and_typed_in_the_model_files(int_run):
    features = json.loads((int_run / "features.json").read_text())
    # stored as text (every model file keeps one shape), in numeric order, with their type beside
    assert features["class_names"] == ["-1", "2", "10"]
    assert features["class_type"] == "int"
    with h5py.File(int_run / "model.h5", "r") as f:
        meta = json.loads(f.attrs["nettrain"])
    assert meta["features"]["class_type"] == "int"


def test_labels_json_holds_numbers_for_integer_labels(int_run):
    # old: ["-1", "2", "10"]
    assert json.loads((int_run / "labels.json").read_text()) == [-1, 2, 10]


def test_predict_gives_integer_labels_and_proba_columns_named_after_them(int_run, tmp_path):
    data = int_run.parent / "d.csv"
    out = tmp_path / "pred.parquet"
    ok("predict", int_run, data, "--proba", "--output", out)
    pred = pd.read_parquet(out)
    # old: the prediction column held the text "10", "-1", ... (object dtype)
    assert pred["prediction"].dtype == np.int64
    assert set(pred["prediction"]) <= {-1, 2, 10}
    assert list(pred.columns) == ["prediction", "proba_-1", "proba_2", "proba_10"]
    probs = pred[["proba_-1", "proba_2", "proba_10"]].to_numpy()
    assert pred["prediction"].tolist() == [[-1, 2, 10][i] for i in probs.argmax(axis=1)]
    # stdout CSV: plain integers, never "10.0"
    text = ok("predict", int_run, data).stdout
    assert set(text.splitlines()[1:]) <= {"-1", "2", "10"}


def test_predict_ignores_a_target_column_with_gaps(int_run):
    # old: exit 2, "target 'y' is missing in 1 rows": predict does not need the labels
    result = ok("predict", int_run, int_run.parent / "d.csv")
    assert len(result.stdout.splitlines()) == 1 + 150


def test_evaluate_json_gives_typed_class_names(int_run):
    report = json.loads(ok("evaluate", int_run, "--json").stdout)
    assert report["class_names"] == [-1, 2, 10]  # old: ["-1", "2", "10"]
    assert set(report["per_class"]) == {"-1", "2", "10"}  # JSON object keys are text


def test_old_model_files_without_a_class_type_still_predict_their_text_labels(int_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(int_run, old)
    with h5py.File(old / "model.h5", "r+") as f:
        meta = json.loads(f.attrs["nettrain"])
        del meta["features"]["class_type"]
        f.attrs["nettrain"] = json.dumps(meta)
    features = json.loads((old / "features.json").read_text())
    del features["class_type"]
    (old / "features.json").write_text(json.dumps(features))
    (old / "labels.json").write_text(json.dumps(["-1", "2", "10"]))
    out = tmp_path / "pred.parquet"
    ok("predict", old, int_run.parent / "d.csv", "--proba", "--output", out)
    pred = pd.read_parquet(out)
    assert set(pred["prediction"]) <= {"-1", "2", "10"}
    assert list(pred.columns) == ["prediction", "proba_-1", "proba_2", "proba_10"]
    assert json.loads(ok("evaluate", old, "--json").stdout)["class_names"] == ["-1", "2", "10"]


@pytest.mark.slow
def test_binary_minus_one_and_one_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x.sum(axis=1) > 0, 1, -1)}).to_csv(
        tmp_path / "b.csv", index=False)
    run = fit(tmp_path, """
        data: {source: b.csv, target: y}
        training: {epochs: 1}
        output: {plots: false}
    """)
    pred = pd.read_csv(io.StringIO(ok("predict", run, tmp_path / "b.csv", "--proba").stdout))
    assert list(pred.columns) == ["prediction", "proba_-1", "proba_1"]
    assert set(pred["prediction"]) <= {-1, 1}
    from nettrain import api

    frame = api.predict(run, tmp_path / "b.csv")  # old: the text "-1" and "1" (object dtype)
    assert frame["prediction"].dtype == np.int64
    np.testing.assert_allclose(pred["proba_-1"] + pred["proba_1"], 1.0, atol=1e-6)


def test_a_target_of_mostly_different_labels_is_refused_unless_the_task_says_classes(tmp_path):
    """An identifier given as the target (400 labels in 400 rows) trained a 400-class model that learned
    nothing (accuracy 0.0). init, fit and a stream refuse it, naming the counts; data.task: multiclass says
    the classes are meant."""
    n = 400
    x = np.random.default_rng(0).normal(size=n)
    pd.DataFrame({"a": x, "y": [f"id{i}" for i in range(n)]}).to_csv(tmp_path / "u.csv", index=False)
    (tmp_path / "c.yaml").write_text("data: {source: u.csv, target: y}\n")
    want = "target 'y' has 400 different values in 400 rows: as classes, most would be seen once"
    for args in (["init", tmp_path / "u.csv", "--target", "y"], ["validate", tmp_path / "c.yaml", "--build"],
                 ["fit", tmp_path / "c.yaml", "--set", "data.stream=true", "--run-dir", tmp_path / "r"]):
        result = runner.invoke(app, list(map(str, args)))
        assert result.exit_code == 2 and want in result.stderr, (args, result.output)
    assert not (tmp_path / "r").exists()
    cfg = load_config(tmp_path / "c.yaml", ["data.task=multiclass"])
    assert len(load_dataset(cfg).schema.class_names) == n
    # half of the rows' labels different is still classes (two rows a class)
    pd.DataFrame({"a": x, "y": [f"k{i // 2}" for i in range(n)]}).to_csv(tmp_path / "u.csv", index=False)
    assert load_dataset(load_config(tmp_path / "c.yaml")).schema.task == "multiclass"


@pytest.mark.parametrize("values, labels, kind", [
    ([2, 10, 1] * 20, [1, 2, 10], "int"),
    ([2.0, 10.0, np.nan] * 20, [2, 10], "int"),                   # whole floats are integers
    ([True, False] * 30, [False, True], "bool"),
    (["b", "a", "c"] * 20, ["a", "b", "c"], "str"),
    (["10", "9"] * 30, [9, 10], "int"),                            # numbers written as text
])
@pytest.mark.filterwarnings(r"ignore:.* dropped \d+ of \d+ rows with a missing value:UserWarning")  # the NaN case
def test_class_labels_keep_the_target_type(tmp_path, values, labels, kind):
    frame = pd.DataFrame({"x": np.linspace(0, 1, len(values)), "y": values})
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    cfg = load_config(None, data={"data": {"source": str(tmp_path / "d.jsonl"), "target": "y"},
                                  "preprocessing": {"missing": "drop_rows"}})
    schema = load_dataset(cfg).schema
    assert schema.class_labels == labels and schema.class_type == kind
    assert [type(v) for v in schema.class_labels] == [type(v) for v in labels]
    assert schema.class_names == [str(v) for v in labels]


# ============================================================ 2. official train/test splits

def official_npz(path: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict:
    """An mnist-like archive whose test images are all >= 200 and training images all < 200."""
    rng = np.random.default_rng(seed)
    arrays = dict(x_train=rng.integers(0, 200, (n_train, 3, 3), dtype=np.uint8),
                  y_train=np.arange(n_train) % 3,
                  x_test=rng.integers(200, 255, (n_test, 3, 3), dtype=np.uint8),
                  y_test=(np.arange(n_test) + 1) % 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "khome"
    official_npz(home / "datasets" / "mnist.npz")
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def cfg_for(tmp_path: Path, data: dict, **sections):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}, sort_keys=False))
    return load_config(path)


def check_official(ds, arrays, n_validation):
    n_train, n_test = len(arrays["x_train"]), len(arrays["x_test"])
    # old: the 70 rows were pooled and 14 random ones held out for the test
    assert len(ds.test) == n_test
    np.testing.assert_array_equal(ds.test.inputs["numeric"], arrays["x_test"].reshape(n_test, -1))
    assert [ds.schema.class_labels[i] for i in ds.test.y] == arrays["y_test"].tolist()
    assert len(ds.validation) == n_validation and len(ds.train) == n_train - n_validation
    for part in (ds.train, ds.validation):  # no test row trains or validates
        assert (part.inputs["numeric"] < 200).all()
    seen = np.concatenate([ds.train.inputs["numeric"], ds.validation.inputs["numeric"]])
    assert sorted(map(bytes, seen.astype(np.uint8))) == sorted(map(bytes, arrays["x_train"].reshape(n_train, -1)))


def test_keras_mnist_keeps_its_official_test_split(tmp_path, keras_home):
    arrays = dict(np.load(keras_home / "datasets" / "mnist.npz"))
    ds = load_dataset(cfg_for(tmp_path, {"source": "keras:mnist", "split": {"validation": 0.1}}))
    check_official(ds, arrays, n_validation=5)
    assert any("keras:mnist" in n and "20 test rows" in n and "data.split.test does not apply" in n
               for n in ds.notes)


def test_user_npz_with_its_own_split(tmp_path):
    arrays = official_npz(tmp_path / "own.npz", n_train=60, n_test=25)
    ds = load_dataset(cfg_for(tmp_path, {"source": "own.npz"}))
    check_official(ds, arrays, n_validation=12)


def test_a_test_fraction_with_an_official_split_is_refused(tmp_path, keras_home):
    with pytest.raises(ConfigError) as info:
        load_dataset(cfg_for(tmp_path, {"source": "keras:mnist", "split": {"test": 0.3}}))
    msg = str(info.value)
    assert "data.split.test" in msg and "20 test rows" in msg and "remove it" in msg
    # the default is fine: it is what a run's config.yaml records
    load_dataset(cfg_for(tmp_path, {"source": "keras:mnist", "split": {"test": 0.2}}))


def test_kfold_folds_the_official_training_rows(tmp_path, keras_home):
    arrays = dict(np.load(keras_home / "datasets" / "mnist.npz"))
    ds = load_dataset(cfg_for(tmp_path, {"source": "keras:mnist", "split": {"folds": 5}}))
    assert len(ds.pool) == 50 and len(ds.folds) == 5
    assert sorted(np.concatenate([va for _, va in ds.folds]).tolist()) == list(range(50))
    assert (ds.pool.inputs["numeric"] < 200).all()
    np.testing.assert_array_equal(ds.test.inputs["numeric"], arrays["x_test"].reshape(20, -1))
    assert any("5-fold" in n for n in ds.notes)


def test_boston_housing_and_reuters_use_keras_own_split(tmp_path, monkeypatch):
    d = tmp_path / "khome" / "datasets"
    d.mkdir(parents=True)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(51, 13)), rng.normal(20, 5, size=51)
    np.savez(d / "boston_housing.npz", x=x, y=y)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "khome"))
    # keras.datasets.boston_housing.load_data(test_split=0.2, seed=113)
    order = np.arange(51)
    np.random.RandomState(113).shuffle(order)
    cut = int(51 * 0.8)
    ds = load_dataset(cfg_for(tmp_path, {"source": "keras:boston_housing", "split": {"validation": 0}}))
    np.testing.assert_allclose(ds.test.inputs["numeric"], x[order[cut:]].astype(np.float32))
    np.testing.assert_allclose(ds.test.y, y[order[cut:]].astype(np.float32))
    np.testing.assert_allclose(ds.train.inputs["numeric"], x[order[:cut]].astype(np.float32))


def test_an_npz_with_its_own_split_is_refused_as_a_part(tmp_path):
    official_npz(tmp_path / "own.npz")
    with pytest.raises(ConfigError, match=r"data\.train.*own train/test split.*data\.source"):
        load_dataset(cfg_for(tmp_path, {"train": "own.npz"}))


@pytest.mark.slow
def test_fit_and_evaluate_on_keras_mnist_use_the_official_test_rows(tmp_path, keras_home):
    run = fit(tmp_path, """
        data: {source: keras:mnist, split: {validation: 0.2}}
        training: {epochs: 1}
        output: {plots: false}
    """)
    record = json.loads((run / "run.json").read_text())
    assert record["data"]["rows"] == {"train": 40, "validation": 10, "test": 20}  # old: 45, 11, 14
    assert any("official" in n for n in record["notes"])
    report = json.loads(ok("evaluate", run, "--json").stdout)
    assert report["rows"] == 20
    assert report["keras_metrics"] == json.loads((run / "metrics.json").read_text())["test"]
    # --data with an archive holding its own split measures its test part, not all 70 rows
    report = json.loads(ok("evaluate", run, "--data", keras_home / "datasets" / "mnist.npz", "--json").stdout)
    assert report["rows"] == 20 and "x_test" in report["data"]
    refused = cli("fit", run.parent / "run.yaml", "--set", "data.split.test=0.1", "--run-dir", tmp_path / "r2")
    usage_error(refused, "data.split.test", "does not apply")


@pytest.mark.slow
def test_kfold_on_an_npz_with_its_own_split_folds_its_training_rows(tmp_path):
    official_npz(tmp_path / "own.npz", n_train=50, n_test=20)
    run = fit(tmp_path, """
        data: {source: own.npz, split: {folds: 2}}
        training: {epochs: 1}
        output: {plots: false}
    """)
    rows = [json.loads((run / f"fold-{i}" / "run.json").read_text())["data"]["rows"] for i in (1, 2)]
    assert [r["train"] + r["validation"] for r in rows] == [50, 50]  # old: 56 (test rows were drawn from all 70)
    assert sorted(r["validation"] for r in rows) == [25, 25] and {r["test"] for r in rows} == {20}
    report = json.loads(ok("evaluate", run, "--split", "test", "--json").stdout)
    assert [f["rows"] for f in report["folds"]] == [20, 20]


# ================================================================ 3. init --output

@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with data/e.csv, as the current directory."""
    rng = np.random.default_rng(0)
    n = 60
    (tmp_path / "data").mkdir()
    pd.DataFrame({
        "customer_id": range(n), "a": rng.normal(size=n), "color": rng.choice(["red", "blue"], n),
        "note": [f"a rather long free text comment, number {i} of them" for i in range(n)],
        "empty": [np.nan] * n, "y": rng.integers(0, 2, n),
    }).to_csv(tmp_path / "data" / "e.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_output_writes_a_config_that_loads_from_anywhere(project, tmp_path_factory, monkeypatch):
    result = ok("init", "data/e.csv", "--target", "y", "--output", "configs/e.yaml")
    assert result.stdout == ""
    written = project / "configs" / "e.yaml"
    text = written.read_text()
    # old: no --output; the printed config said source: data/e.csv, which breaks once saved in configs/
    assert yaml.safe_load(text)["data"]["source"] == "../data/e.csv"
    assert "relative to the folder that holds it" in text
    for needle in ("# categorical (one-hot): color", "# text (tokenized): note", "# id: customer_id",
                   "# dropped: empty (every value is missing)", "# numeric columns: a"):
        assert needle in text, needle
    assert "init: data/e.csv: target 'y'" in result.stderr
    assert "1 categorical (color)" in result.stderr and "dropped: empty" in result.stderr
    assert "wrote configs/e.yaml" in result.stderr
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    check = ok("validate", written, "--build")
    assert "data: 60 rows" in check.stdout
    assert load_dataset(load_config(written)).schema.id_column == "customer_id"


def test_init_output_refuses_to_overwrite_without_force(project):
    ok("init", "data/e.csv", "-t", "y", "-o", "c.yaml")
    (project / "c.yaml").write_text("# mine\n")
    usage_error(cli("init", "data/e.csv", "-t", "y", "-o", "c.yaml"), "c.yaml", "already exists", "--force")
    assert (project / "c.yaml").read_text() == "# mine\n"
    ok("init", "data/e.csv", "-t", "y", "-o", "c.yaml", "--force")
    assert "source: data/e.csv" in (project / "c.yaml").read_text()
    assert sorted(p.name for p in project.iterdir()) == ["c.yaml", "data"]  # no temporary file left


def test_init_output_refuses_a_run_directory_the_data_file_and_other_extensions(project):
    run = project / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    usage_error(cli("init", "data/e.csv", "-t", "y", "-o", run / "c.yaml"), "run directory")
    usage_error(cli("init", "data/e.csv", "-t", "y", "-o", run / "plots" / "c.yaml"), "run directory")
    usage_error(cli("init", "data/e.csv", "-t", "y", "-o", "data/e.csv", "--force"), ".yaml")
    (project / "data" / "e.yaml").symlink_to(project / "data" / "e.csv")
    usage_error(cli("init", "data/e.csv", "-t", "y", "-o", "data/e.yaml", "--force"), "the data file")
    assert pd.read_csv(project / "data" / "e.csv").shape == (60, 6)
    assert not (run / "c.yaml").exists()


def test_init_on_stdout_says_its_paths_are_relative_to_the_current_directory(project):
    result = ok("init", "data/e.csv", "--target", "y")
    assert "# paths are relative to the current directory; save this file here or use --output" in result.stdout
    assert "init: data/e.csv" in result.stderr and "init:" not in result.stdout
    (project / "here.yaml").write_text(result.stdout)
    ok("validate", "here.yaml")


def test_init_keeps_the_own_split_of_an_npz(project):
    official_npz(project / "data" / "own.npz")
    ok("init", "data/own.npz", "--target", "target", "-o", "configs/own.yaml")
    cfg = load_config(project / "configs" / "own.yaml")
    ds = load_dataset(cfg)
    assert len(ds.test) == 20 and cfg.data.source.endswith("own.npz")


# ================================================================ 4 and 5. evaluate

@pytest.fixture(scope="module")
def kfold_run(kfold_run, tmp_path_factory):
    """A copy of the session's shared 3-fold run (evaluate writes its eval-*.json files into it)."""
    return copy_run(kfold_run, tmp_path_factory.mktemp("kfold_eval") / "kfold")


@pytest.mark.slow
def test_evaluate_a_kfold_run_measures_every_fold(kfold_run):
    # old: exit 2, "has no model.h5 (the run did not finish)"
    result = ok("evaluate", kfold_run)
    assert "k-fold run: evaluated 3 fold models" in result.stdout
    assert "did not finish" not in result.output
    assert "fold-1" in result.stdout and "mean ± std" in result.stdout


@pytest.mark.slow
def test_evaluate_kfold_json_has_each_fold_mean_std_and_files(kfold_run):
    report = json.loads(ok("evaluate", kfold_run, "--json").stdout)
    fitted = json.loads((kfold_run / "metrics.json").read_text())
    assert report["kfold"] is True and report["split"] == "validation"
    assert report["run_dir"] == str(kfold_run)
    assert len(report["folds"]) == 3
    for i, fold in enumerate(report["folds"]):
        # each fold's model on its own fold's validation rows: exactly what fit measured
        assert fold["keras_metrics"] == fitted["folds"][i]["validation"]
        assert fold["model"] == str(kfold_run / f"fold-{i + 1}" / "model.h5")
    accuracies = [f["metrics"]["accuracy"] for f in report["folds"]]
    assert report["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert report["std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert report["metrics"] == report["mean"]
    expected = [str(kfold_run / f"fold-{i}" / "eval-validation.json") for i in (1, 2, 3)]
    assert report["files"] == expected + [str(kfold_run / "eval-validation.json")]
    assert all(Path(f).is_file() for f in report["files"])
    assert json.loads((kfold_run / "eval-validation.json").read_text())["mean"] == report["mean"]


@pytest.mark.slow
def test_fail_under_on_a_kfold_run_gates_the_mean(kfold_run):
    result = cli("evaluate", kfold_run, "--fail-under", "accuracy=1.01")
    assert result.exit_code == 3, result.output
    assert "mean over the folds" in result.stderr
    report = json.loads(ok("evaluate", kfold_run, "--json", "--fail-under", "accuracy=0").stdout)
    assert report["gates"][0]["value"] == report["mean"]["accuracy"] and report["passed"] is True


@pytest.mark.slow
def test_evaluate_kfold_on_test_rows_and_on_a_file(kfold_run):
    test_rows = json.loads((kfold_run / "run.json").read_text())["data"]["rows"]["test"]
    report = json.loads(ok("evaluate", kfold_run, "--split", "test", "--json").stdout)
    assert [f["rows"] for f in report["folds"]] == [test_rows] * 3
    data = kfold_run.parent / "mixed.csv"
    report = json.loads(ok("evaluate", kfold_run, "--data", data, "--json").stdout)
    assert [f["rows"] for f in report["folds"]] == [len(pd.read_csv(data))] * 3 and report["split"] is None


@pytest.mark.slow
def test_evaluate_one_fold_uses_that_folds_rows(kfold_run):
    fitted = json.loads((kfold_run / "metrics.json").read_text())
    # old: every fold run was measured on fold 1's validation rows
    report = json.loads(ok("evaluate", kfold_run / "fold-2", "--split", "validation", "--json").stdout)
    assert report["keras_metrics"] == fitted["folds"][1]["validation"]


@pytest.mark.slow
def test_refit_model_of_a_kfold_run_is_evaluated_as_usual(kfold_run, tmp_path):
    run = tmp_path / "refit"
    shutil.copytree(kfold_run, run)
    shutil.copy(run / "fold-1" / "model.h5", run / "model.h5")  # stands in for a refit model
    result = ok("evaluate", run)
    assert "evaluated the refit model model.h5" in result.stdout
    report = json.loads(ok("evaluate", run, "--json").stdout)
    assert report["split"] == "test" and "refit" in report["note"]
    assert report["files"] == [str(run / "eval-test.json")]
    usage_error(cli("evaluate", run, "--split", "validation"), "no validation rows")


@pytest.mark.slow
def test_predict_on_a_kfold_run_names_its_folds(kfold_run):
    usage_error(cli("predict", kfold_run, kfold_run.parent / "mixed.csv"), "k-fold run", "fold-1")


def test_evaluate_json_names_the_run_dir_and_the_files_written(int_run):
    report = json.loads(ok("evaluate", int_run, "--json").stdout)
    # old: no "files"; the eval-test.json path had to be guessed
    assert report["run_dir"] == str(int_run)
    assert report["files"] == [str(int_run / "eval-test.json")]
    assert json.loads((int_run / "eval-test.json").read_text())["files"] == report["files"]
    report = json.loads(ok("evaluate", int_run / "checkpoints" / "last.h5", "--json").stdout)
    assert report["files"] == [str(int_run / "eval-test-last.json")]
