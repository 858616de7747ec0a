"""MODEL.md, the model card of every run, and metrics.json `test_interval` (the bootstrap 95% interval
of the test split): the card's facts checked against run.json and metrics.json of tiny real runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from helpers import mixed_csv, regression_csv, slow_fixture
from nettrain.report.interval import test_interval as bootstrap
from nettrain.report.modelcard import FEW_TRAIN_ROWS, render, write_model_card
from nettrain.report.tables import format_value

CARD = "MODEL.md"


# ------------------------------------------------------------------------------ the interval (numpy)

def test_interval_of_accuracy_and_auc_holds_the_point_values_of_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    score = np.round(np.clip(0.35 * y + 0.65 * rng.random(400), 0, 1), 1)  # ties on purpose
    found = bootstrap(score[:, None], y, (score > 0.5).astype(int), n_classes=2)
    acc, auc = found["metrics"]["accuracy"], found["metrics"]["auc"]
    assert acc["value"] == pytest.approx(((score > 0.5) == y).mean(), abs=1e-6)
    assert auc["value"] == pytest.approx(roc_auc_score(y, score), abs=1e-6)
    for m in (acc, auc):
        assert m["low"] < m["value"] < m["high"]
    assert found["rows"] == found["of_rows"] == 400 and found["resamples"] == 1000 and found["level"] == 0.95
    assert bootstrap(score[:, None], y, (score > 0.5).astype(int), n_classes=2) == found  # a fixed seed


def test_interval_of_regression_matches_sklearn_and_narrows_with_rows():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(4)
    truth = rng.normal(size=2000)
    pred = truth + rng.normal(scale=0.5, size=2000)
    big = bootstrap(pred[:, None], truth)["metrics"]
    small = bootstrap(pred[:200, None], truth[:200])["metrics"]
    assert set(big) == {"mae", "rmse", "r2"}
    assert big["r2"]["value"] == pytest.approx(r2_score(truth, pred), abs=1e-6)
    assert big["rmse"]["value"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)), abs=1e-6)
    for name in big:
        assert big[name]["low"] <= big[name]["value"] <= big[name]["high"]
        assert big[name]["high"] - big[name]["low"] < small[name]["high"] - small[name]["low"]


def test_interval_of_a_multiclass_model_is_accuracy_only_and_says_how_many_rows():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    pred = rng.random((300, 3))
    found = bootstrap(pred, y, pred.argmax(axis=1), n_classes=3, of_rows=1000)
    assert set(found["metrics"]) == {"accuracy"}
    assert found["rows"] == 300 and found["of_rows"] == 1000
    assert bootstrap(np.zeros((0, 3)), np.zeros(0), np.zeros(0), n_classes=3) is None


# ------------------------------------------------------------------------------ the card of any folder

def test_a_card_is_drawn_from_whatever_the_run_holds(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"name": "bare", "status": "failed", "task": "regression"}))
    text = write_model_card(tmp_path).read_text()
    assert text.startswith("# Model card: bare")
    assert "No metrics.json: the run did not complete." in text
    assert "Rows per split: not recorded" in text
    assert "none yet" in text  # no exports.json


# ------------------------------------------------------------------------------ real runs

def _fit(folder: Path, name: str, config: str, *extra: str) -> Path:
    from nettrain.cli import app

    (folder / f"{name}.yaml").write_text(textwrap.dedent(config).lstrip("\n"))
    run = folder / f"{name}-run"
    result = CliRunner().invoke(app, ["fit", str(folder / f"{name}.yaml"), "--run-dir", str(run), "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return run


def _binary_csv(path: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 2))
    label = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label}).to_csv(path, index=False)
    return path


def _rare_csv(path: Path) -> Path:
    """helpers.mixed_csv's three classes and a fourth, `rare`, of 12 rows."""
    mixed_csv(path, n=240)
    df = pd.read_csv(path)
    df.loc[df.index[:12], "label"] = "rare"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
@slow_fixture
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cards")
    _binary_csv(folder / "bin.csv")
    _rare_csv(folder / "rare.csv")
    regression_csv(folder / "reg.csv")
    return {
        # early stopping that cannot see an improvement of 10: it stops at epoch 2
        "binary": _fit(folder, "binary", """
            data: {source: bin.csv, target: label}
            model: {layers: [{type: Dense, units: 4, activation: relu}]}
            training: {epochs: 4, batch_size: 16}
            callbacks: {early_stopping: {monitor: val_loss, patience: 0, min_delta: 10}}
            output: {plots: false}
        """),
        "rare": _fit(folder, "rare", """
            data: {source: rare.csv, target: label, drop: [id]}
            model: {layers: [{type: Dense, units: 8, activation: relu}]}
            training: {epochs: 2, batch_size: 16}
            output: {plots: false}
        """),
        "regression": _fit(folder, "regression", """
            data: {source: reg.csv, target: y}
            training: {epochs: 3}
        """),
    }


def _read(run: Path) -> tuple[str, dict, dict]:
    return ((run / CARD).read_text(), json.loads((run / "run.json").read_text()),
            json.loads((run / "metrics.json").read_text()))


def _interval_line(name: str, interval: dict) -> str:
    m = interval["metrics"][name]
    return f"| {name} | {format_value(m['value'])} | {format_value(m['low'])} – {format_value(m['high'])} |"


@pytest.mark.parametrize("kind", ["binary", "rare", "regression"])
def test_the_card_states_the_runs_rows_best_epoch_and_metrics(runs, kind):
    card, record, metrics = _read(runs[kind])
    for split, n in record["data"]["rows"].items():
        assert f"\n| {split} | {n} |" in card
    assert f"- Best epoch: {record['best_epoch']} (" in card
    assert f"- Epochs: {record['epochs_done']} done of {record['epochs']} planned." in card
    assert f"`{record['data']['fingerprint']}`" in card
    for name, value in metrics["test"].items():
        assert f"\n| {name} | {format_value(metrics['train'][name])} | {format_value(metrics['validation'][name])} " \
               f"| {format_value(value)} |" in card
    assert "## Exports\n\nnone yet" in card


@pytest.mark.parametrize("kind, keras_name, names", [("binary", "accuracy", {"accuracy", "auc"}),
                                                     ("rare", "accuracy", {"accuracy"}),
                                                     ("regression", "mae", {"mae", "rmse", "r2"})])
def test_the_test_interval_holds_the_keras_test_value_and_is_on_the_card(runs, kind, keras_name, names):
    card, record, metrics = _read(runs[kind])
    interval = metrics["test_interval"]
    assert set(interval["metrics"]) == names
    assert interval["rows"] == interval["of_rows"] == record["data"]["rows"]["test"]
    ours = interval["metrics"][keras_name]
    assert ours["value"] == pytest.approx(metrics["test"][keras_name], abs=1e-4)  # the same rows, the same model
    for m in interval["metrics"].values():
        assert m["low"] <= m["value"] <= m["high"]
    for name in names:
        assert _interval_line(name, interval) in card
    assert f"1000 resamples of the {interval['rows']} test rows" in card


def test_the_card_shows_class_balance_and_names_the_rare_class(runs):
    card, record, _ = _read(runs["rare"])
    counts = record["data"]["class_counts"]
    assert sum(counts["train"].values()) == record["data"]["rows"]["train"]
    rare_train = counts["train"]["rare"]
    assert rare_train < FEW_TRAIN_ROWS
    assert f"- Class `rare` has {rare_train} train row(s) (fewer than {FEW_TRAIN_ROWS})" in card
    n = record["data"]["rows"]["train"]
    assert f"{rare_train} ({100 * rare_train / n:.1f}%)" in card
    assert "Class `mid` has" not in card  # a class with enough rows is no limit


def test_the_card_tells_an_early_stop_and_a_small_test_split(runs):
    card, record, _ = _read(runs["binary"])
    assert record["stopped_epoch"] == 2
    assert "- Early stop: at epoch 2." in card
    assert "Early stopping ended training at epoch 2" in card
    assert f"The test split has {record['data']['rows']['test']} rows (fewer than 100)" in card


def test_rendered_again_the_card_lists_the_exports(runs, tmp_path):
    from helpers import copy_run

    run = copy_run(runs["regression"], tmp_path / "run")
    exports = [{"format": "onnx", "path": "exports/model.onnx", "max_abs_diff": 1.5e-7, "rows_compared": 64,
                "written_at": "2026-12-06T10:00:00+00:00"}]
    (run / "exports.json").write_text(json.dumps(exports))
    before = (run / CARD).read_text()
    card = write_model_card(run).read_text()
    assert "none yet" in before and "none yet" not in card
    assert f"| onnx | exports/model.onnx | {format_value(1.5e-7)} | 64 | 2026-12-06T10:00:00+00:00 |" in card
    assert card == render(run)  # the same files, the same card


def test_resume_of_a_completed_run_reports_the_interval_apart_from_the_splits(runs, tmp_path):
    from helpers import copy_run
    from nettrain.cli import app

    run = copy_run(runs["binary"], tmp_path / "run")
    config = runs["binary"].parent / "binary.yaml"
    result = CliRunner().invoke(app, ["fit", str(config), "--resume", str(run), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["test_interval"] == json.loads((run / "metrics.json").read_text())["test_interval"]
    table = CliRunner().invoke(app, ["fit", str(config), "--resume", str(run)])
    assert table.exit_code == 0 and "test_interval" not in table.stdout


@pytest.mark.slow
def test_a_kfold_run_with_a_refit_has_cards_for_the_folds_and_the_refit_model(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=120)
    run = _fit(tmp_path, "kfold", """
        data: {source: mixed.csv, target: label, drop: [id], split: {folds: 2, test: 0.25, refit: true}}
        model: {layers: [{type: Dense, units: 4, activation: relu}]}
        training: {epochs: 1}
        output: {plots: false}
    """)
    card, record, metrics = _read(run)
    assert "A nettrain k-fold run" in card and "Mean ± std over 2 folds" in card
    assert metrics["test_interval"]["rows"] == record["data"]["rows"]["test"]
    assert _interval_line("accuracy", metrics["test_interval"]) in card
    assert f"- Refit: {record['refit']['epochs']} epoch(s)" in card
    for i in (1, 2):
        fold_card = (run / f"fold-{i}" / CARD).read_text()
        assert f"fold {i} of a k-fold run" in fold_card


@pytest.mark.slow
def test_a_streamed_run_has_the_interval_of_its_test_rows(tmp_path):
    _binary_csv(tmp_path / "bin.csv", n=160)
    run = _fit(tmp_path, "stream", """
        data: {source: bin.csv, target: label, stream: true}
        training: {epochs: 1, batch_size: 16}
        output: {plots: false}
    """)
    card, record, metrics = _read(run)
    assert record["data"]["stream"] is True and "(streamed)" in card
    interval = metrics["test_interval"]
    assert interval["rows"] == interval["of_rows"] == record["data"]["rows"]["test"]
    assert interval["metrics"]["accuracy"]["value"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)
    assert sum(record["data"]["class_counts"]["test"].values()) == record["data"]["rows"]["test"]


def test_a_retrain_draws_the_card_again(runs, tmp_path):
    from helpers import copy_run
    from nettrain.cli import app

    run = copy_run(runs["rare"], tmp_path / "run")
    result = CliRunner().invoke(app, ["retrain", str(run), "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.stdout)["run_dir"])
    card, record, metrics = _read(out)
    assert record["epochs_done"] == 3
    assert f"- Epochs: 3 done of {record['epochs']} planned." in card
    assert _interval_line("accuracy", metrics["test_interval"]) in card
