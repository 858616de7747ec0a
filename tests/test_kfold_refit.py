"""data.split.refit: after the k folds, one model on all non-test rows for the mean best epoch, in the
k-fold run's own directory; the folds' averaged learning curves; a refit cut off and resumed."""

import json
import math
import shutil
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import copy_run, mixed_csv, regression_csv, slow_fixture

runner = CliRunner()

REFIT = """
    data: {source: reg.csv, target: y, split: {folds: 3, test: 0.2, refit: true}}
    model: {layers: [{type: Dense, units: 4, activation: relu}]}
    training: {epochs: 6, batch_size: 16, optimizer: {name: adam, learning_rate: 0.05}}
    callbacks:
      early_stopping: {monitor: val_loss, patience: 1}
      checkpoint: {monitor: val_loss, filename: "ep{epoch:02d}-{val_loss:.3f}.h5", keep: null}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def fit(*args):
    result = cli("fit", *args, "--quiet")
    assert result.exit_code == 0, result.output
    return result


def pixel_spread(path) -> float:
    """The standard deviation of an image's pixel values: ~0 for a blank (one-colour) picture."""
    import matplotlib.image

    return float(np.asarray(matplotlib.image.imread(str(path)), dtype=float)[..., :3].std())


@pytest.fixture(scope="module")
@slow_fixture
def refit_run(tmp_path_factory):
    """A 3-fold regression run with refit (120 rows, 24 of them test), early stopping on: read-only."""
    d = tmp_path_factory.mktemp("refit")
    regression_csv(d / "reg.csv", n=120)
    (d / "refit.yaml").write_text(textwrap.dedent(REFIT).lstrip())
    result = fit(d / "refit.yaml", "--run-dir", d / "run")
    (d / "fit-output.txt").write_text(result.stdout)
    (d / "fit-notices.txt").write_text(result.stderr)
    return d / "run"


# ------------------------------------------------------------------------------ the run it writes

@pytest.mark.slow
def test_refit_trains_one_model_on_all_non_test_rows_for_the_mean_best_epoch(refit_run):
    run = refit_run
    record = json.loads((run / "run.json").read_text())
    folds = [json.loads((run / f"fold-{i}" / "run.json").read_text()) for i in (1, 2, 3)]
    bests = [f["best_epoch"] for f in folds]
    expected = max(1, math.floor(sum(bests) / 3 + 0.5))
    assert record["status"] == "completed" and record["folds_done"] == 3
    assert record["refit"] == {"epochs": expected, "fold_best_epochs": bests, "monitor": "val_loss", "rows": 96}
    assert record["epochs"] == record["epochs_done"] == expected and record["monitor"] == "loss"
    # the refit's epochs in the parent's own metrics.csv, no validation columns (no validation rows)
    history = pd.read_csv(run / "metrics.csv")
    assert list(history["epoch"]) == list(range(1, expected + 1))
    assert not [c for c in history.columns if c.startswith("val_")]
    # metrics.json: the folds, mean and std as before, the refit's train and test metrics beside them
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"folds", "mean", "std", "refit", "test_interval"} and len(metrics["folds"]) == 3
    assert set(metrics["refit"]) == {"train", "test"}
    assert record["final_metrics"] == {"mean": metrics["mean"], "std": metrics["std"], "refit": metrics["refit"]}
    for name in ("model.h5", "features.json", "summary.txt", "checkpoints/last.h5", "checkpoints/best.h5"):
        assert (run / name).is_file(), name
    # a val_ template of the config became the default one for the refit (it logs no val_loss)
    assert (run / "checkpoints" / f"epoch{expected:03d}.h5").is_file()
    # config.yaml stays the k-fold run's; the model file carries the refit's config
    config = (run / "config.yaml").read_text()
    assert "refit: true" in config and "patience: 1" in config and "epochs: 6" in config
    from nettrain.store import h5

    saved = h5.read_meta(run / "model.h5")
    assert saved["epoch"] == expected and saved["config"]["training"]["epochs"] == expected
    assert saved["config"]["callbacks"]["early_stopping"] is None
    assert saved["config"]["data"]["split"] == {**saved["config"]["data"]["split"], "folds": 3, "refit": True}
    out = (run.parent / "fit-output.txt").read_text()  # results on stdout, notices on stderr
    assert "refit:" not in out and "Refit model" in out and "mean ± std" in out
    assert "refit: " in (run.parent / "fit-notices.txt").read_text()


@pytest.mark.slow
def test_the_averaged_learning_curves_are_drawn(refit_run):
    plots = refit_run / "plots"
    assert {p.name for p in plots.iterdir()} == {"learning_curves_mean.png", "learning_curves.png",
                                                 "predicted_vs_actual.png"}
    png = plots / "learning_curves_mean.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixel_spread(png) > 0.05
    # the data it draws: every epoch a fold reached, over the folds that reached it
    from nettrain.report.plots import fold_curve_stats

    histories = [pd.read_csv(refit_run / f"fold-{i}" / "metrics.csv").to_dict("records") for i in (1, 2, 3)]
    epochs, stats, common = fold_curve_stats(histories)
    lengths = [len(h) for h in histories]
    assert list(epochs) == list(range(1, max(lengths) + 1)) and common == min(lengths)
    mean, std, count = stats["val_loss"]
    assert list(count) == [sum(n >= e for n in lengths) for e in range(1, max(lengths) + 1)]
    first = [h[0]["val_loss"] for h in histories]
    assert mean[0] == pytest.approx(np.mean(first)) and std[0] == pytest.approx(np.std(first, ddof=1))


@pytest.mark.slow
def test_evaluate_and_predict_use_the_refit_model(refit_run, tmp_path):
    run = copy_run(refit_run, tmp_path / "copy")  # evaluate writes eval-*.json into the run
    metrics = json.loads((run / "metrics.json").read_text())["refit"]
    result = cli("evaluate", run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == str(run / "model.h5") and report["split"] == "test" and report["rows"] == 24
    assert report["metrics"]["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-5)
    assert "refit model" in report["note"]
    train = json.loads(cli("evaluate", run, "--split", "train", "--json").stdout)
    assert train["rows"] == 96 and train["metrics"]["loss"] == pytest.approx(metrics["train"]["loss"], rel=1e-5)
    missing = cli("evaluate", run, "--split", "validation")
    assert missing.exit_code == 2 and "no validation rows" in missing.output
    pd.read_csv(tmp_path / "copy" / "reg.csv").head(7).to_csv(tmp_path / "new.csv", index=False)
    predicted = cli("predict", run, tmp_path / "new.csv", "--output", tmp_path / "out.csv")
    assert predicted.exit_code == 0, predicted.output
    assert len(pd.read_csv(tmp_path / "out.csv")) == 7


@pytest.mark.slow
def test_retrain_of_the_refit_model_trains_a_new_run_on_every_non_test_row(refit_run, tmp_path):
    """retrain of a refit model was refused (it would have trained on one fold's rows). It is a new run,
    the k-fold run its parent and left as it was: one split, no validation rows, every non-test row
    training (96), the same 24 test rows, the refit session's callbacks (no early stopping, training
    monitors); its metrics.csv continues the refit's epochs."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    run = copy_run(refit_run, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    refit_epochs = json.loads((run / "run.json").read_text())["refit"]["epochs"]
    for i, target in enumerate((run, run / "model.h5")):
        out = tmp_path / f"more{i}"
        result = cli("retrain", target, "--epochs", "2", "--run-dir", out, "--quiet")
        assert result.exit_code == 0, result.output
        record = json.loads((out / "run.json").read_text())
        assert record["status"] == "completed" and record["parent"] == str(run)
        assert record["epochs_done"] == refit_epochs + 2 and record.get("folds") is None
        assert record["data"]["rows"] == {"train": 96, "validation": 0, "test": 24}
        assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == list(range(1, refit_epochs + 3))
        cfg = load_config(out / "config.yaml")
        assert cfg.data.split.folds == 1 and cfg.data.split.validation == 0 and not cfg.data.split.refit
        assert cfg.callbacks.early_stopping is None and cfg.callbacks.checkpoint.monitor == "loss"
        assert set(json.loads((out / "metrics.json").read_text())) >= {"train", "test"}
    tests = [np.sort(load_dataset(load_config(d / "config.yaml")).test.row_index) for d in (run, tmp_path / "more0")]
    np.testing.assert_array_equal(tests[0], tests[1])
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    ensemble = cli("retrain", run / "fold-1" / "model.h5", "--epochs", "1", "--run-dir", tmp_path / "f1", "--quiet")
    assert ensemble.exit_code == 0, ensemble.output  # a fold's model still retrains on its own fold's rows
    assert json.loads((tmp_path / "f1" / "run.json").read_text())["data"]["rows"]["validation"] > 0


# ------------------------------------------------------------------------------ --resume

def _cut_refit_after(run, epoch):
    """The state a signal leaves after the refit's epoch `epoch`: last.h5, metrics.csv and run.json
    agree on it, no final files (the per-epoch checkpoint of that epoch is last.h5's twin)."""
    checkpoints = run / "checkpoints"
    twin = next(checkpoints.glob(f"epoch{epoch:03d}.h5"))
    shutil.copyfile(twin, checkpoints / "last.h5")
    for later in checkpoints.glob("epoch*.h5"):
        if int(later.stem[5:8]) > epoch:
            later.unlink()
    history = pd.read_csv(run / "metrics.csv")
    history[history["epoch"] <= epoch].to_csv(run / "metrics.csv", index=False)
    (run / "model.h5").unlink()
    record = json.loads((run / "run.json").read_text())
    record.update(status="interrupted", epochs_done=epoch, final_metrics=None)
    (run / "run.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_a_refit_cut_off_is_resumed_from_its_last_checkpoint(refit_run, tmp_path):
    run = copy_run(refit_run, tmp_path / "copy")
    before = json.loads((run / "metrics.json").read_text())
    epochs = json.loads((run / "run.json").read_text())["refit"]["epochs"]
    # known from the fixture: every fold's val_loss still falls after epoch 1 (lr 0.05 on a linear target)
    assert epochs >= 2, f"the folds' mean best epoch is {epochs}: the refit has no earlier epoch to cut at"
    _cut_refit_after(run, epochs - 1)
    folds = {i: (run / f"fold-{i}" / "metrics.json").read_bytes() for i in (1, 2, 3)}
    result = fit(refit_run.parent / "refit.yaml", "--resume", run)
    assert "already done" in result.stderr and "refit: resumed" in result.stderr
    assert "already done" not in result.stdout and "refit: resumed" not in result.stdout
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == epochs
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == list(range(1, epochs + 1))
    after = json.loads((run / "metrics.json").read_text())
    assert after["mean"] == before["mean"] and set(after) == set(before)
    # no dropout: the continued refit is the straight one
    for split in ("train", "test"):
        for name, value in before["refit"][split].items():
            assert after["refit"][split][name] == pytest.approx(value, rel=1e-4, abs=1e-6)
    assert all((run / f"fold-{i}" / "metrics.json").read_bytes() == folds[i] for i in (1, 2, 3))
    assert cli("evaluate", run).exit_code == 0


@pytest.mark.slow
def test_a_refit_without_a_checkpoint_is_trained_again(refit_run, tmp_path):
    run = copy_run(refit_run, tmp_path / "copy")
    before = json.loads((run / "metrics.json").read_text())["refit"]
    epochs = json.loads((run / "run.json").read_text())["refit"]["epochs"]
    _cut_refit_after(run, epochs)
    shutil.rmtree(run / "checkpoints")  # as with callbacks.checkpoint: false, or cut before its first epoch
    result = fit(refit_run.parent / "refit.yaml", "--resume", run)
    assert f"refit: {epochs} epoch(s)" in result.stderr and "refit: " not in result.stdout
    after = json.loads((run / "metrics.json").read_text())["refit"]
    assert after["test"]["loss"] == pytest.approx(before["test"]["loss"], rel=1e-4)
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == list(range(1, epochs + 1))


@pytest.mark.slow
def test_a_refit_done_before_the_k_fold_files_is_only_finished(refit_run, tmp_path):
    run = copy_run(refit_run, tmp_path / "copy")
    metrics = json.loads((run / "metrics.json").read_text())
    # cut off between the refit's final files and the k-fold run's: metrics.json is the refit's alone
    (run / "metrics.json").write_text(json.dumps(metrics["refit"]))
    record = json.loads((run / "run.json").read_text())
    record.update(final_metrics=metrics["refit"])
    (run / "run.json").write_text(json.dumps(record))
    csv = (run / "metrics.csv").read_bytes()
    fit(refit_run.parent / "refit.yaml", "--resume", run)
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert json.loads((run / "run.json").read_text())["final_metrics"]["refit"] == metrics["refit"]
    assert (run / "metrics.csv").read_bytes() == csv  # no epoch trained again
    again = fit(refit_run.parent / "refit.yaml", "--resume", run)  # completed: reported, left alone
    assert "Refit model" not in again.stdout and json.loads((run / "metrics.json").read_text()) == metrics


# ------------------------------------------------------------------------------ a stream, config errors

@pytest.mark.slow
def test_refit_on_a_stream_trains_on_every_non_test_row(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=300)
    (tmp_path / "k.yaml").write_text(textwrap.dedent("""
        data: {source: mixed.csv, target: label, drop: [id], stream: true, split: {folds: 3, test: 0.2, refit: true}}
        model: {layers: [{type: Dense, units: 4, activation: relu}]}
        training: {epochs: 2, batch_size: 32}
        output: {plots: false}
    """))
    run = tmp_path / "run"
    fit(tmp_path / "k.yaml", "--run-dir", run)
    record = json.loads((run / "run.json").read_text())
    rows = json.loads((run / "fold-1" / "run.json").read_text())["data"]["rows"]
    assert record["refit"]["rows"] == rows["train"] + rows["validation"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["refit"]) == {"train", "test"}
    assert not (run / "plots").exists()  # output.plots: false
    # the refit's preprocessing saw all the non-test rows: its categorical vocabulary is complete
    features = json.loads((run / "features.json").read_text())
    assert features["columns"] and (run / "model.h5").is_file()
    report = json.loads(cli("evaluate", run, "--split", "train", "--json").stdout)
    assert report["rows"] == record["refit"]["rows"]
    assert report["metrics"]["loss"] == pytest.approx(metrics["refit"]["train"]["loss"], rel=1e-4)
    (tmp_path / "new.csv").write_text((tmp_path / "mixed.csv").read_text().splitlines()[0] + "\n"
                                      + "\n".join((tmp_path / "mixed.csv").read_text().splitlines()[1:6]) + "\n")
    predicted = cli("predict", run, tmp_path / "new.csv")
    assert predicted.exit_code == 0 and len(predicted.stdout.strip().splitlines()) == 6, predicted.output


def test_refit_needs_folds(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n")
    (tmp_path / "c.yaml").write_text("data: {source: d.csv, target: y, split: {refit: true}}\n")
    result = cli("validate", tmp_path / "c.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "data.split.refit" in result.output and "folds" in result.output
    ok = cli("validate", tmp_path / "c.yaml", "--set", "data.split.folds=2")
    assert ok.exit_code == 0, ok.output


def test_refit_config_drops_early_stopping_and_validation_monitors():
    from nettrain.config.schema import Config
    from nettrain.training.kfold import mean_best_epoch, refit_config

    cfg = Config.model_validate({
        "data": {"source": "x.csv", "target": "y", "split": {"folds": 3, "refit": True}},
        "training": {"epochs": 40},
        "callbacks": {"early_stopping": {"monitor": "val_accuracy", "patience": 3},
                      "checkpoint": {"monitor": "val_accuracy", "filename": "e{epoch}-{val_accuracy:.2f}.h5"},
                      "lr_schedule": {"type": "reduce_on_plateau", "monitor": "val_loss"}}})
    new = refit_config(cfg, 7)
    assert new.training.epochs == 7 and new.callbacks.early_stopping is None
    assert new.callbacks.checkpoint.monitor == "accuracy" and new.callbacks.checkpoint.filename == "epoch{epoch:03d}.h5"
    assert new.callbacks.lr_schedule.monitor == "loss" and new.data == cfg.data
    assert cfg.training.epochs == 40 and cfg.callbacks.early_stopping is not None  # the run's config untouched
    # half up, at least 1; a fold without a best epoch counts with the epochs it trained
    from nettrain.store.record import RunRecord

    def folds(*records):
        return [RunRecord.of(r) for r in records]

    assert mean_best_epoch(folds({"best_epoch": 3}, {"best_epoch": 4}))[0] == 4
    assert mean_best_epoch(folds({"best_epoch": 3}, {"best_epoch": None, "epochs_done": 8}, {"best_epoch": 2}))[0] == 4
    assert mean_best_epoch(folds({"best_epoch": 1}))[0] == 1
    # the monitor of the first fold that names one; a hand-edited value of another type counts as none
    assert mean_best_epoch(folds({"best_epoch": 2, "monitor": 5}, {"best_epoch": "x", "epochs_done": 4,
                                                                   "monitor": "val_loss"})) == (3, "val_loss", [2, 4])


def test_mean_curves_of_folds_that_stopped_at_different_epochs(tmp_path):
    from nettrain.report.plots import fold_curve_stats, mean_learning_curves

    def fold(n, scale):
        return [{"epoch": e, "loss": scale / e, "val_loss": 1.5 * scale / e, "mae": scale, "learning_rate": 0.01,
                 "seconds": 0.1} for e in range(1, n + 1)]

    folds = [fold(8, 1.0), fold(5, 1.2), fold(10, 0.8)]
    epochs, stats, common = fold_curve_stats(folds)
    assert list(epochs) == list(range(1, 11)) and common == 5
    assert set(stats) == {"loss", "val_loss", "mae", "seconds"}  # the learning rate is no curve here
    mean, std, count = stats["loss"]
    assert list(count) == [3] * 5 + [2] * 3 + [1] * 2
    assert mean[0] == pytest.approx(1.0) and std[0] == pytest.approx(0.2)      # ddof 1
    assert mean[9] == pytest.approx(0.08) and std[9] == 0.0                   # one fold left
    path = mean_learning_curves(folds, tmp_path / "mean.png", mean_best_epoch=4, monitor="val_loss")
    assert pixel_spread(path) > 0.05
    blank = mean_learning_curves([[], []], tmp_path / "none.png")
    assert blank.is_file()
