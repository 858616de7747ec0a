"""End-to-end `nettrain fit` through the CLI on tiny data."""

import json
import subprocess
import sys
from pathlib import Path
import textwrap

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import mixed_csv, regression_csv

runner = CliRunner()


def fit(*args):
    return runner.invoke(app, ["fit", *args, "--quiet"])


@pytest.fixture
def mixed_config(tmp_path):
    mixed_csv(tmp_path / "mixed.csv")
    path = tmp_path / "mixed.yaml"
    path.write_text(textwrap.dedent("""
        data: {source: mixed.csv, target: label, id: id}
        model: {layers: [{type: Dense, units: 16, activation: relu}]}
        training: {epochs: 3, batch_size: 16, metrics: [accuracy]}
        output: {dir: runs}
    """))
    return path


@pytest.mark.slow
def test_fit_writes_the_run_directory(mixed_config, tmp_path):
    run = tmp_path / "run"
    result = fit(str(mixed_config), "--run-dir", str(run))
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "run.json", "metrics.csv", "metrics.json", "model.h5", "labels.json",
                 "summary.txt", "features.json", "checkpoints/best.h5", "checkpoints/last.h5",
                 "plots/learning_curves.png", "plots/confusion_matrix.png"):
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3 and record["seed"] == 42
    assert len(record["data"]["fingerprint"]) == 64
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"train", "validation", "test", "test_interval"}  # the interval: report.interval
    assert {"loss", "accuracy"} <= set(metrics["test"])
    assert json.loads((run / "labels.json").read_text()) == ["high", "low", "mid"]
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["epoch", "loss", "accuracy"]
    assert "learning_rate" in lines[0] and "val_loss" in lines[0]
    assert len(lines) == 4
    # the epoch lines on stderr, the final table on stdout (docs/config.md, Output streams)
    assert "epoch 3/3" in result.stderr and "epoch 3/3" not in result.stdout and "Final metrics" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr
    config = (run / "config.yaml").read_text()
    assert "batch_size: 16" in config and "terminate_on_nan: true" in config


@pytest.mark.slow
def test_fit_json_prints_one_object_with_run_dir_files_and_metrics(mixed_config, tmp_path):
    result = runner.invoke(app, ["fit", str(mixed_config), "--run-dir", str(tmp_path / "r"), "--json",
                                 "--set", "training.epochs=1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert set(report) == {"run_dir", "files", "train", "validation", "test", "test_interval"}
    assert report["run_dir"] == str(tmp_path / "r")
    assert {"run.json", "config.yaml", "metrics.csv", "metrics.json", "model.h5", "checkpoints/last.h5"} \
        <= set(report["files"])
    assert all((tmp_path / "r" / f).is_file() for f in report["files"])
    assert 0.0 <= report["test"]["accuracy"] <= 1.0


@pytest.mark.slow
def test_default_run_dir_under_output_dir(mixed_config, tmp_path):
    result = fit(str(mixed_config), "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "runs" / "mixed").iterdir())
    assert len(runs) == 1 and (runs[0] / "model.h5").is_file()


@pytest.mark.slow
def test_model_h5_loads_in_plain_keras_and_takes_raw_columns(mixed_run, tmp_path):
    run = mixed_run
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.modules["nettrain"] = None  # importing nettrain now fails: the file must need Keras only
        import numpy as np, tensorflow as tf, keras
        m = keras.models.load_model({str(run / 'model.h5')!r})
        x = {{"numeric": np.array([[0.1, 10.0], [2.0, 14.0]], dtype="float32"),
              "color": tf.constant([["red"], ["purple"]])}}
        p = m.predict(x, verbose=0)
        print(repr(p.tolist()))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probs = np.array(eval(proc.stdout.strip().splitlines()[-1]))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_same_seed_gives_identical_weights(tmp_path):
    regression_csv(tmp_path / "reg.csv")
    cfg = tmp_path / "reg.yaml"
    cfg.write_text("data: {source: reg.csv, target: y}\ntraining: {epochs: 2}\n")
    import keras

    weights = []
    for name in ("a", "b"):
        assert fit(str(cfg), "--run-dir", str(tmp_path / name)).exit_code == 0
        weights.append(keras.models.load_model(tmp_path / name / "model.h5").get_weights())
    for w1, w2 in zip(*weights):
        np.testing.assert_array_equal(w1, w2)


def test_regression_metrics_and_plot(regression_run):
    run = regression_run  # 30 epochs of adam at 0.05 on a linear target, plots on
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "mae"}
    assert metrics["test"]["mae"] < 1.0  # a linear target: the model must have learned something
    assert (run / "plots" / "predicted_vs_actual.png").is_file()
    assert not (run / "labels.json").exists()


@pytest.mark.parametrize("overrides, words", [
    (["training.loss=binary_crossentropy"], ["training.loss", "3 classes"]),
    (["model.layers=[{type: Conv2D, filters: 4, kernel_size: 3}]"], ["model.layers.0", "Reshape"]),
    (["model.layers=[{type: Dense, units: 4, activation: relux}]"], ["model.layers.0"]),
    (["data.target=lable"], ["data.target", "did you mean 'label'"]),
    (["data.features=[x1, x9]"], ["x9"]),
    (["callbacks.early_stopping={monitor: val_acc}"], ["callbacks.early_stopping.monitor", "val_accuracy"]),
    (["data.split.validation=0", "callbacks.checkpoint.monitor=val_loss"], ["callbacks.checkpoint.monitor",
                                                                           "no validation rows"]),
])
def test_bad_input_exits_2_and_writes_nothing(mixed_config, tmp_path, overrides, words):
    run = tmp_path / "run"
    args = [str(mixed_config), "--run-dir", str(run)]
    for o in overrides:
        args += ["--set", o]
    result = fit(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.stderr
    assert not run.exists() or not any(run.iterdir())


@pytest.mark.slow
def test_nan_loss_exits_1_and_keeps_last_checkpoint(tmp_path):
    regression_csv(tmp_path / "reg.csv")
    cfg = tmp_path / "nan.yaml"
    # raw inputs and a raw target (no standardization) make plain SGD at 0.2 diverge
    cfg.write_text("data: {source: reg.csv, target: y}\npreprocessing: {numeric: none, target: none}\n"
                   "training: {epochs: 30, optimizer: {name: sgd, learning_rate: 0.2}, batch_size: 200}\n"
                   "model: {layers: [{type: Dense, units: 64}, {type: Dense, units: 64}]}\n")
    run = tmp_path / "run"
    result = fit(str(cfg), "--run-dir", str(run))
    assert result.exit_code == 1, result.output
    assert "NaN" in result.stderr and "learning rate" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed"
    epoch = int(record["error"].split("epoch ")[1].split(",")[0])
    assert f"epoch {epoch}, batch" in result.stderr
    assert epoch > 1  # the seeded run diverges at epoch 5: there is a good checkpoint to keep
    import keras

    # the last good checkpoint is intact: finite weights from the epoch before
    assert "Last good checkpoint" in result.stderr
    with h5py.File(run / "checkpoints" / "last.h5", "r") as f:
        assert json.loads(f.attrs["nettrain"])["epoch"] == epoch - 1
    model = keras.models.load_model(run / "checkpoints" / "last.h5", compile=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.slow
def test_terminate_on_nan_off_lets_the_run_finish(tmp_path):
    regression_csv(tmp_path / "reg.csv")
    cfg = tmp_path / "nan.yaml"
    # raw inputs and a raw target (no standardization) make plain SGD at 0.2 diverge
    cfg.write_text("data: {source: reg.csv, target: y}\npreprocessing: {numeric: none, target: none}\n"
                   "training: {epochs: 30, optimizer: {name: sgd, learning_rate: 0.2}, batch_size: 200}\n"
                   "model: {layers: [{type: Dense, units: 64}, {type: Dense, units: 64}]}\n"
                   "callbacks: {terminate_on_nan: false}\n")
    run = tmp_path / "run"
    result = fit(str(cfg), "--run-dir", str(run))
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.csv").read_text().splitlines()) == 31


@pytest.mark.slow
def test_keras_export_matches_model_h5_with_optimizer_state(mixed_config, tmp_path):
    import keras

    from nettrain.store import h5

    run = tmp_path / "run"
    assert fit(str(mixed_config), "--run-dir", str(run), "--set", "output.keras=true",
               "--set", "training.epochs=1").exit_code == 0
    native = keras.models.load_model(run / "model.keras")
    legacy = h5.load_model(run / "model.h5")
    assert type(native.optimizer).__name__ == type(legacy.optimizer).__name__ == "Adam"
    assert len(native.optimizer.variables) == len(legacy.optimizer.variables) > 2
    for a, b in zip(native.optimizer.variables, legacy.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(native.get_weights(), legacy.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_progress_and_notices_go_to_stderr_also_on_a_terminal(capsys):
    """Output streams: the Rich display (a terminal), the plain epoch lines and every notice are on
    stderr, whether or not stdout carries --json; stdout is left to the results."""
    from nettrain.render import show_fit
    from nettrain.training.fit import FitResult
    from nettrain.training.progress import PlainProgress, RichProgress, notice, report_result

    assert PlainProgress(3).stream is sys.stderr
    rich = RichProgress(3, 10)
    assert rich.progress.console.file is sys.stderr
    notice("fold 1/2: 10 training rows")
    report_result({"test": {"loss": 0.5}}, "runs/x", json_output=False)  # the library prints no result
    out, err = capsys.readouterr()
    assert "fold 1/2" in err and out == ""
    show_fit(FitResult(Path("runs/x"), "completed", {"test": {"loss": 0.5}}), as_json=False)
    out, err = capsys.readouterr()
    assert "Final metrics" in out and out.rstrip().endswith("run directory: runs/x") and err == ""
