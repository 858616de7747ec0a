"""`nettrain.render` draws what the library returns: fit's and retrain's final table and run directory,
evaluate's tables (a run's, a k-fold run's); the library itself prints no result."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from nettrain import render
from nettrain.lifecycle.evaluate import EvalResult, KFoldResult
from nettrain.report.gates import Gate

METRICS = {"train": {"loss": 0.25, "accuracy": 0.9}, "validation": {"loss": 0.5, "accuracy": 0.8},
           "test": {"loss": 0.75, "accuracy": 0.7}}


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def fit_result(**fields):
    """What `api.fit` returns, as far as `show_fit` reads it (a `FitResult` imports TensorFlow)."""
    base = {"run_dir": Path("runs/x"), "metrics": METRICS,
            "to_json": lambda: {"run_dir": "runs/x", "files": ["model.h5"], **METRICS}}
    return SimpleNamespace(**{**base, **fields})


def test_fit_shows_the_final_table_then_the_run_directory(capsys):
    render.show_fit(fit_result(), as_json=False)
    out, err = capsys.readouterr()
    shown = lines(out)
    assert shown[0] == "Final metrics" and shown[-1] == "run directory: runs/x" and err == ""
    assert re.split(r"\s+", shown[1]) == ["metric", "train", "validation", "test"]
    assert re.split(r"\s+", shown[3]) == ["loss", "0.2500", "0.5000", "0.7500"]
    assert "Refit model" not in out


def test_a_kfold_fit_shows_its_refit_model_first(capsys):
    kfold = {"folds": [METRICS, METRICS], "mean": {"validation": {"loss": 0.5}}, "std": {"validation": {"loss": 0.1}},
             "refit": {"test": {"loss": 0.4}}}
    render.show_fit(fit_result(metrics=kfold, refit={"test": {"loss": 0.4}}), as_json=False)
    shown = lines(capsys.readouterr().out)
    assert shown[0] == "Refit model" and shown.index("Final metrics") > shown.index("Refit model")
    assert any("validation (2-fold mean ± std)" in line for line in shown) and shown[-1] == "run directory: runs/x"


def test_fit_json_is_the_one_object_and_a_worker_shows_no_table(capsys):
    render.show_fit(fit_result(), as_json=True)
    out, _ = capsys.readouterr()
    assert len(out.splitlines()) == 1 and json.loads(out)["run_dir"] == "runs/x" and "Final metrics" not in out
    # a worker of a cluster: the run (and its table) is the chief's
    worker = SimpleNamespace(metrics=METRICS, to_json=lambda: {"run_dir": None, "worker": "worker 1", **METRICS})
    render.show_fit(worker, as_json=False)
    assert capsys.readouterr() == ("", "")
    render.show_fit(worker, as_json=True)
    assert json.loads(capsys.readouterr().out)["worker"] == "worker 1"


def evaluation(**fields) -> EvalResult:
    base = dict(model_path=Path("run/model.h5"), run_dir=Path("run"), epoch=3, name="test", split="test",
                data="d.csv", rows=30, task="binary", keras_metrics={"loss": 0.5}, metrics={"loss": 0.5, "accuracy": 0.9},
                report={"a": {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 2},
                        "b": {"precision": 0.5, "recall": 1.0, "f1-score": 0.6667, "support": 1}, "accuracy": 0.6667},
                class_names=["a", "b"], confusion_matrix=[[1, 1], [0, 1]], gates=[Gate("accuracy", 0.95, 0.9)],
                eval_file=Path("run/eval-test.json"), note="k-fold run: evaluated the refit model")
    return EvalResult(**{**base, **fields})


def test_evaluate_shows_what_it_measured_its_tables_gates_and_file(capsys):
    render.show_evaluate(evaluation(), as_json=False)
    out, err = capsys.readouterr()
    shown = lines(out)
    assert shown[:2] == ["k-fold run: evaluated the refit model",
                         "evaluated run/model.h5 (epoch 3) on split 'test': 30 rows"] and err == ""
    titles = [line for line in shown if line in ("Metrics", "Classification report", "Confusion matrix")]
    assert titles == ["Metrics", "Classification report", "Confusion matrix"]
    assert shown[-2:] == ["gate: accuracy 0.9000 >= 0.95 required: MISSED", "wrote run/eval-test.json"]
    # on a data file, a regression: no class tables, no note
    render.show_evaluate(evaluation(split=None, epoch=0, report=None, note=None, gates=[], eval_file=None),
                         as_json=False)
    shown = lines(capsys.readouterr().out)
    assert shown[0] == "evaluated run/model.h5 on d.csv: 30 rows" and "Confusion matrix" not in shown
    assert not any(line.startswith(("gate", "wrote")) for line in shown)


def test_evaluate_of_a_kfold_run_shows_each_fold_and_the_mean(capsys):
    folds = [evaluation(rows=10, eval_file=Path("kf/fold-1/eval-validation.json")),
             evaluation(rows=11, metrics={"loss": 0.7, "accuracy": 0.8}, eval_file=None)]
    result = KFoldResult(run_dir=Path("kf"), split="validation", name="validation", data="d.csv", task="binary",
                         folds=folds, mean={"loss": 0.6, "accuracy": 0.85}, std={"loss": 0.1, "accuracy": 0.05},
                         gates=[Gate("loss", 0.65)], eval_file=Path("kf/eval-validation.json"))
    result.gates[0].value = 0.6
    render.show_evaluate(result, as_json=False)
    shown = lines(capsys.readouterr().out)
    assert shown[0] == "k-fold run: evaluated 2 fold models, each on its own fold's validation rows: 10, 11 rows"
    assert shown.index("Per fold") < shown.index("Metrics")
    assert re.split(r"\s+", shown[shown.index("Per fold") + 1]) == ["metric", "fold-1", "fold-2"]
    assert any(line.endswith("0.6000 ± 0.1000") for line in shown)
    assert shown[-3:] == ["gate (mean over the folds): loss 0.6000 <= 0.65 required: met",
                          "wrote kf/fold-1/eval-validation.json", "wrote kf/eval-validation.json"]


def test_the_library_modules_draw_no_tables():
    """The tables are drawn here: evaluate returns results, the training loop writes only progress."""
    from nettrain.lifecycle import baseline, evaluate

    for module in (evaluate, baseline):
        assert not [name for name in vars(module) if name.startswith("print_")]
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "make_console" not in source and "print_table" not in source and "print(" not in source
    progress = (Path(render.__file__).parent / "training" / "progress.py").read_text(encoding="utf-8")
    assert "print_metrics" not in progress


@pytest.mark.slow
def test_fit_and_retrain_return_their_result_and_print_none(tmp_path, monkeypatch, capfd):
    """api.fit / api.retrain write progress on stderr and nothing on stdout; the CLI draws the same
    result (`show_fit`), a k-fold run's refit model's table first."""
    from nettrain import api
    from tests.test_cli_commands import STREAMS

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(STREAMS)
    result = api.fit("c.yaml", run_dir="run", quiet=True)
    out, err = capfd.readouterr()
    assert out == "" and "epoch 2/2" in err and "run directory" not in err
    assert result.run_dir == Path("run") and set(result.metrics) == {"train", "validation", "test"}
    render.show_fit(result, as_json=False)
    shown = lines(capfd.readouterr().out)
    assert shown[0] == "Final metrics" and shown[-1] == "run directory: run"

    again = api.retrain("run", epochs=1, quiet=True)
    out, err = capfd.readouterr()
    assert out == "" and "epoch 3/3" in err and again.epochs_done == 3

    kfold = api.fit("c.yaml", ["data.split.folds=2", "data.split.refit=true"], run_dir="kf", quiet=True)
    out, err = capfd.readouterr()
    assert out == "" and "run directory: kf/fold-1" in err and "refit model" in err  # the folds' own ends: notices
    assert kfold.refit == kfold.metrics["refit"] and set(kfold.metrics) >= {"folds", "mean", "std", "refit"}
    render.show_fit(kfold, as_json=False)
    shown = lines(capfd.readouterr().out)
    assert shown[0] == "Refit model" and "Final metrics" in shown and shown[-1] == "run directory: kf"
    # resumed when complete: reported again, without a refit that did not train now
    done = api.fit("c.yaml", ["data.split.folds=2", "data.split.refit=true"], resume="kf", quiet=True)
    assert done.refit is None and done.metrics == kfold.metrics


def test_evaluate_names_the_restored_epoch_of_the_weights(capsys):
    render.show_evaluate(evaluation(epoch=4, epochs_done=7, note=None), as_json=False)
    assert lines(capsys.readouterr().out)[0] == ("evaluated run/model.h5 (epoch 4: the best, its weights restored by "
                                                 "early stopping; trained 7 epochs) on split 'test': 30 rows")
    render.show_evaluate(evaluation(epoch=7, epochs_done=7, note=None), as_json=False)
    assert lines(capsys.readouterr().out)[0] == "evaluated run/model.h5 (epoch 7) on split 'test': 30 rows"


def baseline_result(**fields):
    from nettrain.lifecycle.baseline import BaselineResult
    from nettrain.report.baseline import Scored

    split = {"train": {"accuracy": 0.9, "auc": 0.95}, "test": {"accuracy": 0.8, "auc": 0.85}}
    models = [Scored("network", "nettrain network (metrics.json)", metrics={"test": {"accuracy": 0.75}}),
              Scored("hist_gradient_boosting", "HistGradientBoostingClassifier", metrics=split, seconds=0.1),
              Scored("linear", "LogisticRegression", error="one class only")]
    base = dict(task="binary", seed=42, rows={"train": 80, "test": 20}, metrics=["accuracy", "auc"], models=models,
                notes=["text column 'note' left out"], run_dir=Path("run"), file=Path("run/baseline.json"))
    return BaselineResult(**{**base, **fields})


def test_baseline_shows_a_row_per_model_under_each_metric_and_notes_on_stderr(capsys):
    render.show_baseline(baseline_result(), as_json=False)
    out, err = capsys.readouterr()
    shown = [re.split(r"\s{2,}", line) for line in lines(out)]
    assert shown[0] == ["baselines for run (binary, seed 42): fitted on the 80 train rows; scored on train 80, "
                        "test 20"]
    assert shown[1:3] == [["Baselines"], ["metric", "model", "train", "test"]]
    assert shown[4:] == [["accuracy", "network", "-", "0.7500"], ["HistGradientBoosting", "0.9000", "0.8000"],
                         ["LogisticRegression (failed)", "-", "-"], ["auc", "network", "-", "-"],
                         ["HistGradientBoosting", "0.9500", "0.8500"], ["LogisticRegression (failed)", "-", "-"],
                         ["wrote run/baseline.json"]]
    assert lines(err) == ["baseline: text column 'note' left out",
                          "baseline: LogisticRegression could not be fitted: one class only"]
    render.show_baseline(baseline_result(), as_json=True)
    out, _ = capsys.readouterr()
    shown = json.loads(out)
    assert list(shown["models"]) == ["network", "hist_gradient_boosting", "linear"]
    assert shown["models"]["linear"]["error"] == "one class only" and shown["files"] == ["run/baseline.json"]


def test_fit_with_baselines_shows_them_below_the_network_and_in_its_json(capsys):
    result = fit_result(baseline=baseline_result())
    render.show_fit(result, as_json=False)
    out, _ = capsys.readouterr()
    shown = [re.split(r"\s{2,}", line) for line in lines(out)]
    assert [r[0] for r in shown[3:-1]] == ["loss", "accuracy", "accuracy (HistGradientBoosting)",
                                           "auc (HistGradientBoosting)"]
    assert shown[5] == ["accuracy (HistGradientBoosting)", "0.9000", "-", "0.8000"]
    assert "network" not in out and shown[-1] == ["run directory: runs/x"]
    render.show_fit(result, as_json=True)
    assert json.loads(capsys.readouterr().out)["baseline"]["models"]["hist_gradient_boosting"]["seconds"] == 0.1
