"""data.split.refit: ensemble: a k-fold run's model.h5 is its fold models averaged (`model.ensemble`):
one file of built-in Keras layers whose predictions are the mean of the folds'; measured, evaluated,
predicted, exported as a refit model is; retrain retrains every fold and averages them again; a
stream's k-fold run makes one too."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import keras

from nettrain import api
from nettrain.cli import app
from nettrain.model.ensemble import mean_of, members
from tests.helpers import mixed_csv, regression_csv, slow_fixture

runner = CliRunner()

CLASSES = """
    data: {source: mixed.csv, target: label, drop: [id], split: {folds: 3, test: 0.2, refit: ensemble}}
    model: {layers: [{type: Dense, units: 8, activation: relu}]}
    training: {epochs: 4, batch_size: 16}
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
@slow_fixture
def ensemble_run(tmp_path_factory):
    """A 3-fold classification run whose model is the folds' ensemble: read-only."""
    d = tmp_path_factory.mktemp("ensemble")
    mixed_csv(d / "mixed.csv", n=240)
    (d / "c.yaml").write_text(textwrap.dedent(CLASSES).lstrip())
    result = cli("fit", d / "c.yaml", "--run-dir", d / "run", "--quiet")
    assert result.exit_code == 0, result.output
    (d / "fit-output.txt").write_text(result.stdout)
    return d / "run"


def _fold_predictions(run, csv, k, proba=True):
    return [api.predict(run / f"fold-{i}", csv, proba=proba) for i in range(1, k + 1)]


def test_the_model_is_the_mean_of_the_folds(ensemble_run):
    model = keras.models.load_model(ensemble_run / "model.h5", compile=False)  # plain Keras loads it
    assert members(model) == 3
    csv = ensemble_run.parent / "mixed.csv"
    mine = api.predict(ensemble_run, csv, proba=True)
    folds = _fold_predictions(ensemble_run, csv, 3)
    proba = [c for c in mine.columns if c.startswith("proba_")]
    np.testing.assert_allclose(mine[proba].to_numpy(), np.mean([f[proba].to_numpy() for f in folds], axis=0),
                               rtol=1e-5, atol=1e-6)
    # the predicted class is the one of the highest mean probability
    names = np.array([c[len("proba_"):] for c in proba])
    assert (mine["prediction"].to_numpy() == names[mine[proba].to_numpy().argmax(axis=1)]).all()


def test_its_metrics_record_card_and_table(ensemble_run):
    metrics = json.loads((ensemble_run / "metrics.json").read_text())
    assert set(metrics["refit"]) == {"train", "test"} and "test_interval" in metrics
    assert {"folds", "mean", "std"} <= set(metrics)
    record = json.loads((ensemble_run / "run.json").read_text())
    assert record["status"] == "completed" and record["refit"]["members"] == 3
    assert record["refit"]["rows"] == 240 - record["data"]["rows"]["test"]  # every non-test row: 240 - 48
    card = (ensemble_run / "MODEL.md").read_text()
    assert "the mean of the 3 fold models' predictions" in card and "refit ensemble" in card
    assert "Ensemble model" in (ensemble_run.parent / "fit-output.txt").read_text()
    evaluated = api.evaluate(ensemble_run, split="test")
    assert evaluated.keras_metrics["loss"] == pytest.approx(metrics["refit"]["test"]["loss"], rel=1e-6)
    assert evaluated.keras_metrics["accuracy"] == pytest.approx(metrics["refit"]["test"]["accuracy"], rel=1e-6)
    assert "ensemble model" in evaluated.note


def test_retrain_of_the_run_retrains_every_fold_and_averages_them_again(ensemble_run, tmp_path):
    """`retrain RUN` of an ensemble: a new k-fold run, each fold model retrained from its model.h5 on its
    own fold's rows, model.h5 their ensemble again; the run retrained is left as it was."""
    before = {p: p.read_bytes() for p in (ensemble_run / "model.h5", ensemble_run / "run.json",
                                          ensemble_run / "fold-2" / "metrics.csv")}
    again = tmp_path / "again"
    result = cli("retrain", ensemble_run, "--epochs", "1", "--run-dir", again)
    assert result.exit_code == 0, result.output
    assert all(p.read_bytes() == data for p, data in before.items())
    record = json.loads((again / "run.json").read_text())
    assert record["status"] == "completed" and record["folds"] == 3 and record["refit"]["members"] == 3
    assert record["retrains"][0]["from"] == str(ensemble_run) and record["retrains"][0]["epochs"] == 1
    for i in (1, 2, 3):
        old = json.loads((ensemble_run / f"fold-{i}" / "run.json").read_text())
        new = json.loads((again / f"fold-{i}" / "run.json").read_text())
        assert new["fold"] == i and new["parent"] == str(again)
        assert new["epochs_done"] == old["epochs_done"] + 1
    assert members(keras.models.load_model(again / "model.h5", compile=False)) == 3
    metrics = json.loads((again / "metrics.json").read_text())
    assert {"folds", "mean", "std", "refit"} <= set(metrics)
    evaluated = api.evaluate(again, split="test")
    assert evaluated.keras_metrics["loss"] == pytest.approx(metrics["refit"]["test"]["loss"], rel=1e-6)
    # its model.h5 named as a file: refused, saying to give the run
    refused = cli("retrain", ensemble_run / "model.h5", "--epochs", "1")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "ensemble of the 3 fold models" in refused.output and "give the run directory" in refused.output


def test_retrain_on_data_without_a_models_column_is_refused_before_a_run_exists(ensemble_run, tmp_path):
    """`retrain RUN --data FILE` of an ensemble, FILE lacking a column the models take: the check ran
    fold by fold after the new k-fold run was started, so the refusal left a failed run in --run-dir
    (a second try needed --force), and named the columns as Python tuples."""
    import pandas as pd

    data = pd.read_csv(ensemble_run.parent / "mixed.csv")
    dropped = next(c for c in data.columns if c not in ("label", "id"))
    data.drop(columns=[dropped]).to_csv(tmp_path / "less.csv", index=False)
    refused = cli("retrain", ensemble_run, "--epochs", "1", "--data", tmp_path / "less.csv", "--run-dir",
                  tmp_path / "again")
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert f"the model takes '{dropped}' (" in refused.output and "which the data lacks" in refused.output
    assert "[(" not in refused.output
    assert not (tmp_path / "again").exists()


def test_a_fold_is_retrained_on_its_own_fold_rows(ensemble_run, tmp_path):
    """`retrain RUN/fold-3` trains and validates on fold 3's rows (it took the first fold's before): the
    validation metrics it ends with are what evaluate measures on fold 3's validation rows."""
    result = cli("retrain", ensemble_run / "fold-3", "--epochs", "1", "--run-dir", tmp_path / "f3")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f3" / "run.json").read_text())["fold"] == 3
    final = json.loads((tmp_path / "f3" / "metrics.json").read_text())["validation"]
    for run in (tmp_path / "f3", ensemble_run / "fold-3"):
        assert api.evaluate(run, split="validation").rows == 64    # fold 3 of the 192 non-test rows
    evaluated = api.evaluate(tmp_path / "f3", split="validation")
    assert evaluated.keras_metrics["loss"] == pytest.approx(final["loss"], rel=1e-6)


def test_a_regression_ensemble_in_the_targets_units(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=150)
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""
        data: {source: reg.csv, target: y, split: {folds: 3, test: 0.2, refit: ensemble}}
        model: {layers: [{type: Dense, units: 8, activation: relu}]}
        training: {epochs: 3, batch_size: 16}
    """).lstrip())
    result = api.fit(tmp_path / "c.yaml", [], run_dir=tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    mine = api.predict(run, tmp_path / "reg.csv")["prediction"].to_numpy()
    folds = [p["prediction"].to_numpy() for p in _fold_predictions(run, tmp_path / "reg.csv", 3, proba=False)]
    np.testing.assert_allclose(mine, np.mean(folds, axis=0), rtol=1e-5, atol=1e-5)
    # the loss weight of the standardized target (the members' mean scale) as the folds' losses have it
    evaluated = api.evaluate(run, split="test")
    assert evaluated.keras_metrics["loss"] == pytest.approx(result.refit["test"]["loss"], rel=1e-6)
    y = pd.read_csv(tmp_path / "reg.csv")["y"]
    assert evaluated.keras_metrics["loss"] < float(np.var(y))  # on the standardized scale, not raw squared units


def test_a_streamed_k_fold_run(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=240)
    (tmp_path / "c.yaml").write_text(textwrap.dedent(CLASSES).lstrip())
    result = api.fit(tmp_path / "c.yaml", ["data.stream=true"], run_dir=tmp_path / "run", quiet=True)
    assert result.refit is not None and set(result.refit) == {"train", "test"}
    assert members(keras.models.load_model(tmp_path / "run" / "model.h5", compile=False)) == 3


def test_mean_of_one_model_and_of_none():
    inp = keras.Input((2,), name="x")
    one = keras.Model(inp, keras.layers.Dense(1)(inp))
    assert members(mean_of([one])) == 1
    with pytest.raises(ValueError, match="at least one model"):
        mean_of([])


@pytest.mark.parametrize("text, key, problem", [
    ("split: {refit: ensemble}", "refit", "refit: ensemble applies only to k-fold runs"),
    ("split: {folds: 3, refit: average}", "refit", "expected true or false or 'ensemble'"),
    ("split: {members: 2}", "members", "members: 2 counts fold models to train, from 1 to data.split.folds (1)"),
    ("split: {folds: 3, members: 4}", "members", "use at most 3, or raise folds"),
    ("split: {folds: 3, members: 0}", "members", "got 0; expected an integer in [1, "),
])
def test_bad_values(tmp_path, text, key, problem):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n")
    (tmp_path / "c.yaml").write_text(f"data: {{source: d.csv, target: y, {text}}}\n")
    result = cli("validate", tmp_path / "c.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert problem in result.output and f"data.split.{key}" in result.output


def test_plot_of_the_run_draws_its_folds(ensemble_run, tmp_path):
    """An ensemble run keeps no metrics.csv of its own: `nettrain plot RUN` overlays its folds' curves."""
    out = tmp_path / "curves.png"
    result = cli("plot", ensemble_run, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG" and "(loss, 3 runs)" in result.stdout


@pytest.mark.parametrize("stream", [False, True])
def test_members_trains_only_the_first_folds(tmp_path, stream):
    """data.split.members: m of the k folds train (each on its k-1 folds, validated on its own); the
    ensemble is their mean, its metrics on every non-test row as with all k."""
    mixed_csv(tmp_path / "mixed.csv", n=240)
    text = textwrap.dedent(CLASSES).replace("folds: 3,", "folds: 4, members: 2,").lstrip()
    (tmp_path / "c.yaml").write_text(text)
    run = tmp_path / "run"
    result = api.fit(tmp_path / "c.yaml", [f"data.stream={str(stream).lower()}"], run_dir=run, quiet=True)
    assert sorted(p.name for p in run.glob("fold-*")) == ["fold-1", "fold-2"]
    record = json.loads((run / "run.json").read_text())
    assert record["folds"] == 2 and record["refit"]["members"] == 2
    assert record["refit"]["rows"] == 240 - record["data"]["rows"]["test"]
    assert len(json.loads((run / "metrics.json").read_text())["folds"]) == 2
    assert result.refit is not None and members(keras.models.load_model(run / "model.h5", compile=False)) == 2
    for i in (1, 2):  # each fold validates on a quarter of the non-test rows, not on a half
        fold = json.loads((run / f"fold-{i}" / "run.json").read_text())
        rows = fold["data"]["rows"]
        assert fold["fold"] == i and rows["validation"] < rows["train"] / 2
    if not stream:
        mine = api.predict(run, tmp_path / "mixed.csv", proba=True)
        proba = [c for c in mine.columns if c.startswith("proba_")]
        folds = _fold_predictions(run, tmp_path / "mixed.csv", 2)
        np.testing.assert_allclose(mine[proba].to_numpy(), np.mean([f[proba].to_numpy() for f in folds], axis=0),
                                   rtol=1e-5, atol=1e-6)


def test_a_k_fold_run_of_members_without_refit_is_evaluated_fold_by_fold(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=240)
    text = textwrap.dedent(CLASSES).replace("folds: 3, test: 0.2, refit: ensemble", "folds: 4, members: 2, test: 0.2")
    (tmp_path / "c.yaml").write_text(text.lstrip())
    api.fit(tmp_path / "c.yaml", [], run_dir=tmp_path / "run", quiet=True)
    evaluated = api.evaluate(tmp_path / "run")             # each fold on its own validation rows
    assert len(evaluated.folds) == 2 and [f.rows for f in evaluated.folds] == [48, 48]
