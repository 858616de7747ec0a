"""Each training callback's effect on a tiny run: checkpoints, early stopping, schedules, TensorBoard."""

import json
import math
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import regression_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    d = tmp_path_factory.mktemp("cb")
    regression_csv(d / "reg.csv", n=200)
    return d


def run_fit(d, name, extra, epochs=5, batch=16):
    cfg = d / f"{name}.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data: {{source: reg.csv, target: y}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}]}}
        training: {{epochs: {epochs}, batch_size: {batch}, optimizer: {{name: sgd, learning_rate: 0.01}}}}
    """) + extra)
    run = d / name
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(run), "--quiet"])
    return result, run


def epoch_of(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["nettrain"])["epoch"]


@pytest.mark.slow
def test_keep_limits_templated_checkpoints(reg):
    result, run = run_fit(reg, "keep", "callbacks: {checkpoint: {keep: 2}}\n")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (run / "checkpoints").glob("*.h5"))
    assert names == ["best.h5", "epoch004.h5", "epoch005.h5", "last.h5"]
    assert epoch_of(run / "checkpoints" / "last.h5") == 5
    assert not list((run / "checkpoints").glob(".*"))  # no temporary files left behind


@pytest.mark.slow
def test_best_h5_holds_the_best_monitored_value(reg):
    result, run = run_fit(reg, "best", "callbacks: {checkpoint: {monitor: val_loss, save_best_only: true, "
                                       "filename: 'e{epoch:02d}-{val_loss:.3f}.h5'}}\n",
                          epochs=6)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "metrics.csv")
    best_epoch = int(rows.loc[rows["val_loss"].idxmin(), "epoch"])
    assert epoch_of(run / "checkpoints" / "best.h5") == best_epoch
    templated = [p.name for p in (run / "checkpoints").glob("e*.h5")]
    assert f"e{best_epoch:02d}-{rows['val_loss'].min():.3f}.h5" in templated
    assert json.loads((run / "run.json").read_text())["best_epoch"] == best_epoch


@pytest.mark.slow
def test_early_stopping_stops_on_a_plateau_and_restores_best_weights(reg):
    import keras

    result, run = run_fit(reg, "early", "callbacks: {early_stopping: {monitor: val_loss, patience: 2, "
                                        "min_delta: 1000, restore_best_weights: true}}\n", epochs=20)
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_done"] == 3 and record["stopped_epoch"] == 3
    # early stopping's rule (min_delta 1000: only epoch 1 improves) names the best epoch, the one restored
    assert record["best_epoch"] == record["weights_epoch"] == 1
    assert len(pd.read_csv(run / "metrics.csv")) == 3
    final = keras.models.load_model(run / "model.h5", compile=False).get_weights()
    first = keras.models.load_model(run / "checkpoints" / "epoch001.h5", compile=False).get_weights()
    last = keras.models.load_model(run / "checkpoints" / "epoch003.h5", compile=False).get_weights()
    for a, b in zip(final, first):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(final, last))


@pytest.mark.slow
@pytest.mark.parametrize("schedule, formula", [
    ("{type: step_decay, drop: 0.5, every: 2}", lambda e, spe: 0.01 * 0.5 ** math.floor((e - 1) / 2)),
    ("{type: exponential, decay_rate: 0.5, decay_steps: 10}", lambda e, spe: 0.01 * 0.5 ** ((e - 1) * spe / 10)),
    ("{type: cosine, alpha: 0.1}",
     lambda e, spe: 0.01 * (0.9 * 0.5 * (1 + math.cos(math.pi * (e - 1) * spe / (6 * spe))) + 0.1)),
    ("{type: warmup_cosine, warmup_epochs: 2}",
     lambda e, spe: 0.01 * ((e - 1) * spe / (2 * spe)) if e <= 2 else
     0.01 * 0.5 * (1 + math.cos(math.pi * (e - 3) * spe / (4 * spe)))),
])
def test_schedule_learning_rates_follow_the_formula(reg, schedule, formula):
    name = "sched-" + schedule.split(",")[0].split(":")[-1].strip().rstrip("}")
    result, run = run_fit(reg, name, f"callbacks: {{lr_schedule: {schedule}}}\n", epochs=6)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "metrics.csv")
    train_rows = json.loads((run / "run.json").read_text())["data"]["rows"]["train"]
    spe = math.ceil(train_rows / 16)
    expected = [formula(e, spe) for e in rows["epoch"]]
    np.testing.assert_allclose(rows["learning_rate"], expected, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_reduce_on_plateau_lowers_the_rate(reg):
    result, run = run_fit(reg, "plateau", "callbacks: {lr_schedule: {type: reduce_on_plateau, monitor: val_loss, "
                                          "factor: 0.5, patience: 1, min_delta: 1000}}\n", epochs=5)
    assert result.exit_code == 0, result.output
    lrs = list(pd.read_csv(run / "metrics.csv")["learning_rate"])
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < lrs[0]


@pytest.mark.slow
def test_tensorboard_events_hold_the_loss_scalars(reg):
    result, run = run_fit(reg, "tb", "callbacks: {tensorboard: {histogram_freq: 1}}\n", epochs=2)
    assert result.exit_code == 0, result.output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard" / "train"), size_guidance={"tensors": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    scalar_tags = set(tags.get("scalars", [])) | set(tags.get("tensors", []))
    assert "epoch_loss" in scalar_tags
    assert any("kernel" in t for t in tags.get("histograms", []) + tags.get("tensors", []))


@pytest.mark.slow
def test_checkpoints_reload_in_plain_keras_with_the_same_predictions(reg, monkeypatch):
    """Each epoch file, opened in a fresh Python with plain Keras, predicts what the model did then."""
    import keras

    seen = {}
    probe = {"numeric": np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -1.0]], dtype="float32")}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch + 1] = self.model.predict(probe, verbose=0)

    from nettrain.training import fit as F

    original = F._callbacks

    def callbacks_with_probe(s):  # whichever loop trains (model.fit or engine.ArrayLoop) calls it
        kit = original(s)
        kit.all.append(Record())
        return kit

    monkeypatch.setattr(F, "_callbacks", callbacks_with_probe)
    result, run = run_fit(reg, "probe", "", epochs=3)
    assert result.exit_code == 0, result.output
    script = textwrap.dedent(f"""
        import json, os, numpy as np
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras
        x = {{"numeric": np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -1.0]], dtype="float32")}}
        out = {{}}
        for e in (1, 2, 3):
            m = keras.models.load_model({str(run / 'checkpoints')!r} + f"/epoch{{e:03d}}.h5")
            out[e] = m.predict(x, verbose=0).tolist()
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    for e in (1, 2, 3):
        np.testing.assert_allclose(np.array(fresh[str(e)]), seen[e], rtol=1e-6, atol=1e-6)


# (config lines, words the message must hold, extra command-line arguments)
@pytest.mark.parametrize("extra, words, overrides", [
    ("callbacks: {checkpoint: {filename: '../escape.h5'}}\n", ["callbacks.checkpoint.filename"], []),
    ("callbacks: {checkpoint: {filename: 'e{epoch}.pt'}}\n", ["callbacks.checkpoint.filename"], []),  # .keras is allowed
    ("callbacks: {lr_schedule: {type: step_decay, every: 0}}\n", ["callbacks.lr_schedule.every"], []),
    ("callbacks: {lr_schedule: {type: warmup_cosine, warmup_epochs: 9}}\n", ["callbacks.lr_schedule.warmup_epochs"],
     []),
    ("callbacks: {lr_schedule: {type: cyclic}}\n", ["callbacks.lr_schedule"], []),
    ("callbacks: {early_stopping: {monitor: val_auc}}\n", ["callbacks.early_stopping.monitor"], []),
    ("callbacks: {early_stopping: {monitor: val_loss}}\n", ["callbacks.early_stopping.monitor", "no validation rows"],
     ["--set", "data.split.validation=0"]),
])
def test_bad_callback_settings_fail_before_the_first_epoch(reg, extra, words, overrides):
    cfg = reg / "badcb.yaml"
    cfg.write_text("data: {source: reg.csv, target: y}\ntraining: {epochs: 2}\n" + extra)
    run = reg / "badcb"
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(run), "--quiet", *overrides])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (run / "metrics.csv").exists()
