"""tracking.mlflow: runs logged to a real local MLflow store (sqlite and file, read back with MlflowClient).

No mocks: every store here is a real MLflow store in a temporary folder. The extra's absence is
simulated the way Python sees an uninstalled package (`sys.modules["mlflow"] = None`).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.errors import ConfigError
from tests.helpers import ROOT, mixed_csv, regression_csv

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(folder: Path, text: str, name: str = "c.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def client(uri):
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def only_run(c, experiment):
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = c.search_runs([exp.experiment_id])
    return exp, runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


# ------------------------------------------------------------------------------ the config key

def test_the_uri_is_checked_and_a_relative_store_path_is_taken_from_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", "data: {source: d.csv, target: y}\ntracking: {mlflow: 'sqlite:///ml/runs.db'}\n")
    cfg = load_config(path, check_names=False)
    assert cfg.tracking.mlflow == f"sqlite:///{tmp_path / 'sub' / 'ml' / 'runs.db'}"
    by_set = load_config(path, ["tracking.mlflow=file:mlruns"], check_names=False)
    assert by_set.tracking.mlflow == (Path.cwd() / "mlruns").as_uri()  # --set: from the current directory
    for kept in ("http://localhost:5000", "https://mlflow.example.org/", "databricks", "sqlite:////abs/x.db",
                 "postgresql+psycopg://u@db/mlflow"):
        assert load_config(path, [f"tracking.mlflow={kept}"], check_names=False).tracking.mlflow == kept
    for bad, words in (("mlruns", "expected an MLflow tracking URI"), ("ftp://x", "expected an MLflow tracking URI"),
                       ("http:nohost", "needs a host"), ("sqlite://rel.db", "names a database file"),
                       ("file://server/share", "names a local folder")):
        with pytest.raises(ConfigError) as e:
            load_config(path, [f"tracking.mlflow={bad}"], check_names=False)
        assert e.value.path == "tracking.mlflow" and words in str(e.value), str(e.value)
    assert load_config(path, check_names=False).to_dict()["tracking"] == {"mlflow": cfg.tracking.mlflow}


def test_validate_refuses_a_bad_uri_with_exit_code_2(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n")
    path = write(tmp_path, "data: {source: d.csv, target: y}\ntracking: {mlflow: 'mlflow.example.org'}\n")
    result = cli("validate", path)
    assert result.exit_code == 2 and "tracking.mlflow" in result.output and "Traceback" not in result.output


def test_params_are_the_config_as_dotted_keys():
    from nettrain.training.tracking import params_of

    params = params_of({"seed": 1, "data": {"source": "a.csv", "columns": {"sepal (cm)": {"type": "numeric"}},
                                            "drop": []},
                        "model": {"layers": [{"type": "Dense", "units": 8}], "output": "auto"},
                        "callbacks": {"early_stopping": None, "checkpoint": {"enabled": True}},
                        "long": "x" * 7000})
    assert params["seed"] == "1" and params["model.layers.0.units"] == "8" and params["model.layers.0.type"] == "Dense"
    assert params["callbacks.early_stopping"] == "null" and params["callbacks.checkpoint.enabled"] == "true"
    assert params["data.drop"] == "[]" and params["data.columns.sepal _cm_.type"] == "numeric"
    assert len(params["long"]) == 6000


# ------------------------------------------------------------------------------ before training

def test_a_missing_extra_stops_fit_before_anything_with_the_install_command(tmp_path, monkeypatch):
    regression_csv(tmp_path / "reg.csv", n=20)
    path = write(tmp_path, f"""
        data: {{source: reg.csv, target: y}}
        tracking: {{mlflow: 'sqlite:///ml.db'}}
        output: {{dir: {tmp_path / 'runs'}}}
    """)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an uninstalled package looks like to importlib
    result = cli("fit", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pip install 'nettrain[mlflow]'" in result.output and "tracking.mlflow" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ml.db").exists()


def test_an_unusable_store_stops_fit_before_training(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=20)
    runs = tmp_path / "runs"
    cases = ((f"sqlite:///{tmp_path / 'nowhere' / 'ml.db'}", "does not exist"),
             (f"http://127.0.0.1:{free_port()}", "cannot reach the MLflow server"))
    for uri, words in cases:
        path = write(tmp_path, f"""
            data: {{source: reg.csv, target: y}}
            tracking: {{mlflow: '{uri}'}}
            output: {{dir: {runs}}}
        """)
        result = cli("fit", path)
        assert result.exit_code == 2, result.output
        assert words in result.output and "tracking.mlflow" in result.output and "Traceback" not in result.output
        assert not runs.exists()


def test_a_file_store_needs_no_server(tmp_path):
    """A file: store (MLflow 3 keeps it in "maintenance mode" and refuses it unless asked: the user asks)."""
    from nettrain.store import rundir
    from nettrain.training import tracking

    uri = (tmp_path / "mlruns").as_uri()
    cfg = load_config(write(tmp_path, f"name: filestore\ndata: {{source: d.csv, target: y}}\n"
                                      f"tracking: {{mlflow: '{uri}'}}\n"), check_names=False)
    out = tmp_path / "run"
    out.mkdir()
    record = rundir.RunRecord(out)
    tracker = tracking.open_run(cfg, out, record, kind="run", history=[{"epoch": 1, "loss": 0.9, "seconds": 1.0}])
    tracker.metrics({"loss": 0.5, "val_loss": 0.6}, step=2)
    (out / "metrics.json").write_text("{}")
    tracker.artifacts(out, ["metrics.json", "plots", "model.h5"])  # absent files are skipped
    tracker.end()
    assert json.loads((out / "run.json").read_text())["mlflow"]["run_id"] == tracker.run_id
    c = client(uri)
    run = c.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["nettrain.run_dir"] == str(out.resolve())
    assert [(m.step, m.value) for m in c.get_metric_history(tracker.run_id, "loss")] == [(1, 0.9), (2, 0.5)]
    assert [a.path for a in c.list_artifacts(tracker.run_id)] == ["metrics.json"]
    assert run.data.params["data.target"] == "y"
    # the same run directory again (a resume): the same MLflow run, running again
    again = tracking.open_run(cfg, out, rundir.RunRecord.load(out), kind="run")
    assert again.run_id == tracker.run_id and c.get_run(again.run_id).info.status == "RUNNING"


# ------------------------------------------------------------------------------ mlflow only when asked

@pytest.mark.slow
@pytest.mark.parametrize("command", ["--help", "validate", "schema"])
def test_light_commands_never_import_mlflow_or_tensorflow(command, tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n5,6\n")
    path = write(tmp_path, "data: {source: d.csv, target: y}\ntracking: {mlflow: 'sqlite:///ml.db'}\n")
    args = ["validate", str(path)] if command == "validate" else [command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nettrain", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nettrain.cli" in names
    assert not {n for n in names if n.split(".")[0] in ("mlflow", "tensorflow", "keras")}
    assert not (tmp_path / "ml.db").exists()


@pytest.mark.slow
def test_fit_without_tracking_never_imports_mlflow(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=40)
    path = write(tmp_path, """
        data: {source: reg.csv, target: y}
        model: {layers: [{type: Dense, units: 2}]}
        training: {epochs: 1}
        output: {plots: false}
    """)
    code = (f"import sys\nfrom nettrain import api\napi.fit({str(path)!r}, run_dir={str(tmp_path / 'run')!r}, "
            "quiet=True)\nassert 'mlflow' not in sys.modules, 'mlflow imported'\nprint('no mlflow')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0 and "no mlflow" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------ a real sqlite store

@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A 3-epoch classification run logged to a sqlite store, fit from another folder (nothing of
    MLflow's may land there): (run directory, store URI, fit --json output)."""
    d = tmp_path_factory.mktemp("tracked")
    mixed_csv(d / "mixed.csv", n=90)
    (d / "store").mkdir()
    write(d, """
        name: tracked
        data: {source: mixed.csv, target: label, id: id}
        model: {layers: [{type: Dense, units: 4, activation: relu}]}
        training: {epochs: 3, batch_size: 16}
        tracking: {mlflow: 'sqlite:///store/mlflow.db'}
        output: {dir: runs}
    """, "tracked.yaml")
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        result = cli("fit", d / "tracked.yaml", "--run-dir", d / "run", "--json", "--quiet")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert not list(elsewhere.iterdir()), list(elsewhere.iterdir())  # no ./mlruns or anything else
    return d / "run", f"sqlite:///{d / 'store' / 'mlflow.db'}", result.stdout


@pytest.mark.slow
def test_a_run_logged_to_a_sqlite_store_has_every_epoch_and_its_files(tracked):
    run, uri, stdout = tracked
    assert json.loads(stdout)["run_dir"] == str(run)  # stdout stays the one JSON object
    record = json.loads((run / "run.json").read_text())
    c = client(uri)
    exp, runs = only_run(c, "tracked")
    assert [r.info.run_id for r in runs] == [record["mlflow"]["run_id"]]
    assert record["mlflow"]["uri"] == uri and exp.artifact_location.endswith("/store/mlartifacts")
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert r.data.tags["nettrain.run_dir"] == str(run.resolve()) and r.data.tags["nettrain.kind"] == "run"
    assert r.data.params["training.epochs"] == "3" and r.data.params["model.layers.0.units"] == "4"
    assert r.data.params["tracking.mlflow"] == uri
    history = pd.read_csv(run / "metrics.csv")
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        logged = [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, name)]
        assert [s for s, _ in logged] == [1, 2, 3], name
        assert [v for _, v in logged] == pytest.approx(list(history[name]), rel=1e-6), name
    final = json.loads((run / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert r.data.metrics[f"{split}_accuracy"] == pytest.approx(final[split]["accuracy"])
    top = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "metrics.json", "model.h5", "plots"} <= top
    assert {a.path for a in c.list_artifacts(r.info.run_id, "plots")} == \
        {"plots/learning_curves.png", "plots/confusion_matrix.png"}
    local = Path(c.download_artifacts(r.info.run_id, "model.h5", str(run.parent / "download")))
    assert local.read_bytes() == (run / "model.h5").read_bytes()


@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run(tracked, tmp_path):
    run, uri, _ = tracked
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    # the copy is another run directory, so it first gets an MLflow run of its own: cut it after epoch 2
    checkpoints = copy / "checkpoints"
    shutil.copyfile(checkpoints / "epoch002.h5", checkpoints / "last.h5")
    (checkpoints / "epoch003.h5").unlink()
    history = pd.read_csv(copy / "metrics.csv")
    history[history["epoch"] <= 2].to_csv(copy / "metrics.csv", index=False)
    (copy / "model.h5").unlink()
    record = json.loads((copy / "run.json").read_text())
    record.update(status="interrupted", epochs_done=2, final_metrics=None)
    record.pop("mlflow")
    (copy / "run.json").write_text(json.dumps(record))
    result = cli("fit", run.parent / "tracked.yaml", "--resume", copy, "--quiet")
    assert result.exit_code == 0, result.output
    first = json.loads((copy / "run.json").read_text())["mlflow"]["run_id"]
    c = client(uri)
    assert [m.step for m in c.get_metric_history(first, "loss")] == [1, 2, 3]  # epochs 1-2 from metrics.csv
    assert c.get_run(first).data.tags["nettrain.run_dir"] == str(copy.resolve())
    # cut again and resume: the run.json names that MLflow run, which goes on
    shutil.copyfile(checkpoints / "epoch002.h5", checkpoints / "last.h5")
    history[history["epoch"] <= 2].to_csv(copy / "metrics.csv", index=False)
    record = json.loads((copy / "run.json").read_text())
    record.update(status="interrupted", epochs_done=2, final_metrics=None)
    (copy / "run.json").write_text(json.dumps(record))
    (copy / "model.h5").unlink()
    result = cli("fit", run.parent / "tracked.yaml", "--resume", copy, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "run.json").read_text())["mlflow"]["run_id"] == first
    assert c.get_run(first).info.status == "FINISHED"
    assert [m.step for m in c.get_metric_history(first, "loss")] == [1, 2, 3, 3]


@pytest.mark.slow
def test_a_kfold_run_is_one_mlflow_run_with_its_folds_nested(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=60)
    path = write(tmp_path, """
        name: cv
        data: {source: reg.csv, target: y, split: {folds: 2, test: 0.2, refit: true}}
        model: {layers: [{type: Dense, units: 2}]}
        training: {epochs: 2, batch_size: 16}
        tracking: {mlflow: 'sqlite:///ml.db'}
    """)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    c = client(f"sqlite:///{tmp_path / 'ml.db'}")
    _, runs = only_run(c, "cv")
    parent = next(r for r in runs if r.data.tags["nettrain.kind"] == "kfold")
    folds = sorted((r for r in runs if r.data.tags["nettrain.kind"] == "fold"), key=lambda r: r.info.run_name)
    assert len(runs) == 3 and [r.info.run_name for r in folds] == ["fold-1", "fold-2"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in folds)
    assert [r.data.tags["nettrain.run_dir"] for r in folds] == [str((run / f"fold-{i}").resolve()) for i in (1, 2)]
    assert all(r.info.status == "FINISHED" for r in runs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert parent.data.metrics["cv_mean_validation_loss"] == pytest.approx(metrics["mean"]["validation"]["loss"])
    assert parent.data.metrics["cv_std_validation_loss"] == pytest.approx(metrics["std"]["validation"]["loss"])
    assert parent.data.metrics["test_loss"] == pytest.approx(metrics["refit"]["test"]["loss"])  # the refit model
    refit_epochs = json.loads((run / "run.json").read_text())["refit"]["epochs"]
    assert [m.step for m in c.get_metric_history(parent.info.run_id, "loss")] == list(range(1, refit_epochs + 1))
    assert [m.step for m in c.get_metric_history(folds[0].info.run_id, "val_loss")] == [1, 2]
    artifacts = {a.path for a in c.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/learning_curves_mean.png" in artifacts and "plots/learning_curves.png" in artifacts
    assert "model.h5" in {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert "model.h5" in {a.path for a in c.list_artifacts(folds[1].info.run_id)}


@pytest.mark.slow
def test_a_diverged_run_ends_its_mlflow_run_failed(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=60)
    path = write(tmp_path, """
        name: diverged
        data: {source: reg.csv, target: y}
        preprocessing: {target: none}
        training: {epochs: 5, optimizer: {name: sgd, learning_rate: 1.0e+12}}
        tracking: {mlflow: 'sqlite:///ml.db'}
        output: {plots: false}
    """)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 1 and "NaN" in result.output, result.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed"
    assert client(f"sqlite:///{tmp_path / 'ml.db'}").get_run(record["mlflow"]["run_id"]).info.status == "FAILED"
