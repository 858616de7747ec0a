"""Retrain and resume continue training exactly: the optimizer state and the data order survive.

The runs that are stopped are stopped at a known point, not after a guessed delay: tests/inject.py
makes the write of epoch 2's checkpoint slow and says so on stderr, and the signal is sent then.
"""

import json
import signal
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import Proc, slow_fixture

runner = CliRunner()
pytestmark = pytest.mark.slow


def weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifecycle")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    pd.DataFrame(x, columns=list("abcd")).assign(label=np.where(y, "yes", "no")).to_csv(d / "data.csv", index=False)
    return d


def write_config(d, name, epochs, dropout=False):
    layers = "[{type: Dense, units: 16, activation: relu}" + (", {type: Dropout, rate: 0.3}" if dropout else "") + \
        ", {type: Dense, units: 8, activation: relu}]"
    path = d / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        data: {{source: data.csv, target: label}}
        model: {{layers: {layers}}}
        training: {{epochs: {epochs}, batch_size: 16, optimizer: {{name: adam, learning_rate: 0.01}}}}
    """))
    return path


def checkpoint_epoch(run):
    with h5py.File(run / "checkpoints" / "last.h5", "r") as f:
        return json.loads(f.attrs["nettrain"])["epoch"]


def fit(*args):
    result = runner.invoke(app, ["fit", *map(str, args), "--quiet"])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
@slow_fixture
def straight(data_dir):
    fit(write_config(data_dir, "five", 5), "--run-dir", data_dir / "straight")
    return data_dir / "straight"


def test_retrain_in_place_equals_straight_run(data_dir, straight):
    run = data_dir / "three"
    fit(write_config(data_dir, "three", 3), "--run-dir", run)
    result = runner.invoke(app, ["retrain", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-6
    rows = pd.read_csv(run / "metrics.csv")
    assert list(rows["epoch"]) == [1, 2, 3, 4, 5]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 5
    assert record["retrains"][0]["from_epoch"] == 3 and record["retrains"][0]["epochs"] == 2
    assert checkpoint_epoch(run) == 5


def test_retrain_from_checkpoint_into_new_run_names_parent(data_dir, straight, tmp_path):
    result = runner.invoke(app, ["retrain", str(straight / "checkpoints" / "last.h5"), "--epochs", "1",
                                 "--run-dir", str(tmp_path / "child"), "--quiet",
                                 "--set", "training.optimizer={name: adam, learning_rate: 0.001}"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "child" / "run.json").read_text())
    assert record["parent"] == str(straight)
    rows = pd.read_csv(tmp_path / "child" / "metrics.csv")
    assert list(rows["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert rows["learning_rate"].iloc[-1] == pytest.approx(0.001)
    # the parent run is untouched
    assert len(pd.read_csv(straight / "metrics.csv")) == 5


def test_retrain_refuses_architecture_changes(straight):
    result = runner.invoke(app, ["retrain", str(straight), "--set", "model.layers.0.units=32"])
    assert result.exit_code == 2
    assert "architecture" in result.stderr and "model" in result.stderr


@pytest.mark.parametrize("bad", ["nope", "notes.txt", "fake.h5", "truncated.h5"])
def test_retrain_bad_targets_exit_2(straight, tmp_path, bad):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.h5").write_text("not hdf5")
    (tmp_path / "truncated.h5").write_bytes((straight / "model.h5").read_bytes()[:1000])
    result = runner.invoke(app, ["retrain", str(tmp_path / bad)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert bad in result.stderr


def test_resume_after_sigkill_equals_straight_run(data_dir, straight):
    """Killed while it writes epoch 2's checkpoint: the run is left at epoch 1 and resumes from there."""
    run = data_dir / "killed"
    config = write_config(data_dir, "five", 5)  # the straight run's config
    proc = Proc(["fit", config, "--run-dir", run, "--quiet"], None, fault="slow:last:60")
    try:
        assert proc.wait_for("writing last"), "".join(proc.err)[-2000:]
    finally:
        proc.send(signal.SIGKILL)
        proc.finish()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "running" and record["epochs_done"] == 1  # nobody was left to say otherwise
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1]
    assert checkpoint_epoch(run) == 1  # epoch 2's checkpoint never replaced it
    result = runner.invoke(app, ["fit", str(config), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-6
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3, 4, 5]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed"][0]["from_epoch"] == 1


def test_resume_refuses_a_changed_config(data_dir, straight):
    result = runner.invoke(app, ["fit", str(write_config(data_dir, "five", 5)), "--resume", str(straight),
                                 "--set", "training.batch_size=8"])
    assert result.exit_code == 2
    assert "training.batch_size" in result.stderr and "--force" in result.stderr


def test_resume_takes_a_key_an_older_nettrain_did_not_write_as_its_default(data_dir, straight, tmp_path):
    """A run whose config.yaml lacks a key added since (here tracking.timeout) resumes when the config gives
    that key its default, and is still refused when the config sets it to something else."""
    import shutil

    import yaml

    run = tmp_path / "older"
    shutil.copytree(straight, run, ignore=shutil.ignore_patterns(".lock"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "timeout" in saved["tracking"]
    del saved["tracking"]["timeout"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    config = write_config(data_dir, "five", 5)
    result = runner.invoke(app, ["fit", str(config), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["fit", str(config), "--resume", str(run), "--set", "tracking.timeout=9"])
    assert result.exit_code == 2 and "tracking.timeout (None -> 9.0)" in result.stderr, result.output


def test_resume_with_dropout_is_close(data_dir, tmp_path):
    config = write_config(data_dir, "drop", 4, dropout=True)
    fit(config, "--run-dir", tmp_path / "full")
    short = write_config(data_dir, "drop2", 2, dropout=True)
    fit(short, "--run-dir", tmp_path / "part")
    result = runner.invoke(app, ["retrain", str(tmp_path / "part"), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["validation"]["loss"]
    resumed = json.loads((tmp_path / "part" / "metrics.json").read_text())["validation"]["loss"]
    assert abs(resumed - full) / full <= 0.05


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupt_exits_130_marks_the_run_and_resume_finishes_it(data_dir, straight, tmp_path, sig):
    """A signal while epoch 2's checkpoint is written: that write finishes, the run stops after
    epoch 2, and resuming it trains exactly what the straight run trained."""
    config = write_config(data_dir, "five", 5)
    run = tmp_path / "interrupted"
    proc = Proc(["fit", config, "--run-dir", run, "--quiet"], None, fault="slow:last:1")
    assert proc.wait_for("writing last"), "".join(proc.err)[-2000:]
    proc.send(sig)
    rc, _, err = proc.finish(timeout=120)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 2
    assert checkpoint_epoch(run) == 2
    result = runner.invoke(app, ["fit", str(config), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3, 4, 5]
    assert json.loads((run / "run.json").read_text())["resumed"][0]["from_epoch"] == 2
    assert max_diff(weights(run / "model.h5"), weights(straight / "model.h5")) <= 1e-6


def test_a_run_without_validation_rows_retrains(data_dir, tmp_path):
    """Its config.yaml writes the checkpoint's default monitor (val_loss), which the fit followed to `loss`
    for lack of validation rows; retrain reads it as the default too (it refused it as never logged)."""
    config = tmp_path / "noval.yaml"
    text = write_config(data_dir, "noval", 2).read_text()
    config.write_text(text.replace("target: label}", "target: label, split: {validation: 0}}")
                      .replace("source: data.csv", f"source: {data_dir}/data.csv"))
    fit(config, "--run-dir", tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["monitor"] == "loss"
    result = runner.invoke(app, ["retrain", str(tmp_path / "run"), "--epochs", "1",
                                 "--run-dir", str(tmp_path / "more")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "more" / "run.json").read_text())
    assert record["monitor"] == "loss" and record["epochs_done"] == 3
