"""Issue 24: what a warm sweep worker saves between trials, and a sweep's MLflow runs.

The rows are loaded once per worker when no data key changes between trials (trial.kept_dataset) and
give the same run as rows loaded anew; a trial's plots wait until its result is reported
(fit.after_result); with tracking.mlflow the sweep is one MLflow run and each trial a run nested in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_sweep import nettrain

CONFIG = """
name: warm
seed: 5
data: {source: "sklearn:iris", target: target}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
training: {epochs: 3, batch_size: 16}
callbacks: {checkpoint: false}
output: {plots: false}
"""


def fit_once(path: Path, run_dir: Path, overrides=(), dataset=None):
    import keras

    from nettrain.config import load_config
    from nettrain.lifecycle import orchestrate
    from nettrain.store import h5

    cfg = load_config(path, list(overrides))
    result = orchestrate.fresh_run(cfg, run_dir=run_dir, quiet=True, dataset=dataset)
    weights = h5.load_model(run_dir / "model.h5", restore_optimizer=False).get_weights()
    keras.backend.clear_session()  # as a warm worker does between trials
    return result, weights


@pytest.mark.slow  # three fits
def test_rows_kept_by_a_warm_worker_give_the_same_run_as_rows_loaded_anew(tmp_path):
    from nettrain.config import load_config
    from nettrain.sweep import trial as T

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    fresh, w_fresh = fit_once(path, tmp_path / "a")  # the rows loaded by the session itself
    first = T.kept_dataset(load_config(path))
    kept, w_kept = fit_once(path, tmp_path / "b", dataset=first)
    again = T.kept_dataset(load_config(path, ["training.optimizer.learning_rate=0.01"]))  # no data key changed
    assert again.train.y is first.train.y  # the same rows in memory, not loaded again
    assert again.notes is not first.notes
    kept2, w_kept2 = fit_once(path, tmp_path / "c", dataset=T.kept_dataset(load_config(path)))
    for w in (w_kept, w_kept2):
        assert len(w) == len(w_fresh) and all(np.array_equal(a, b) for a, b in zip(w, w_fresh))
    assert fresh.metrics == kept.metrics == kept2.metrics
    runs = [json.loads((tmp_path / d / "run.json").read_text()) for d in "abc"]
    assert runs[0]["data"] == runs[1]["data"] == runs[2]["data"] and runs[0]["notes"] == runs[2]["notes"]
    assert runs[2]["epochs_done"] == 3 and runs[2]["status"] == "completed"
    other = T.kept_dataset(load_config(path, ["data.split.validation=0.3"]))  # a data key changed: loaded anew
    assert other.train.y is not first.train.y and len(other.validation) != len(first.validation)


def test_plots_wait_until_the_result_is_reported_under_after_result(tmp_path):
    from nettrain.training import fit as F

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("plots: false", "plots: true"))
    with F.after_result() as later:
        result, _ = fit_once(path, tmp_path / "r")
    run = tmp_path / "r"
    assert result.status == "completed" and (run / "model.h5").is_file() and (run / "metrics.json").is_file()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert not (run / "plots").exists() and len(later) == 1
    later[0]()
    assert (run / "plots" / "learning_curves.png").is_file() and (run / "plots" / "confusion_matrix.png").is_file()
    fit_once(path, tmp_path / "r2")  # outside the block: drawn by the session, as always
    assert (tmp_path / "r2" / "plots" / "learning_curves.png").is_file()


@pytest.mark.slow
def test_a_sweep_is_a_parent_mlflow_run_and_each_trial_a_nested_run(tmp_path):
    from tests.test_tracking import client

    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    (tmp_path / "s.yaml").write_text(CONFIG.replace("epochs: 3", "epochs: 2") + f"""
tracking: {{mlflow: '{uri}'}}
sweep:
  trials: 2
  sampler: random
  pruner: none
  params:
    training.optimizer.learning_rate: {{log_uniform: [1.0e-2, 1.0e-1]}}
""")
    r = nettrain(["sweep", "s.yaml", "--jobs", "1", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    trials = {t["number"]: t for t in json.loads(r.stdout)["trials"]}
    c = client(uri)
    exp = c.get_experiment_by_name("warm")
    runs = c.search_runs([exp.experiment_id])
    sweeps = [x for x in runs if x.data.tags.get("nettrain.kind") == "sweep"]
    assert len(sweeps) == 1, [x.data.tags for x in runs]
    parent = sweeps[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-warm"
    assert "sweep.params.training.optimizer.learning_rate.log_uniform.0" in parent.data.params
    best = min(trials.values(), key=lambda t: t["value"])
    assert parent.data.metrics["best_value"] == pytest.approx(best["value"])
    assert parent.data.tags["nettrain.best_trial"] == str(best["number"])
    steps = {m.step: m.value for m in c.get_metric_history(parent.info.run_id, "value")}
    assert steps == pytest.approx({n: t["value"] for n, t in trials.items()})
    nested = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(x.info.run_name for x in nested) == [f"trial-{n:04d}" for n in sorted(trials)]
    for run in nested:
        n = int(run.data.tags["nettrain.trial"])
        assert run.info.status == "FINISHED" and run.data.tags["nettrain.trial_state"] == "complete"
        assert run.data.metrics["value"] == pytest.approx(trials[n]["value"])
        assert float(run.data.params["training.optimizer.learning_rate"]) == pytest.approx(
            trials[n]["params"]["training.optimizer.learning_rate"])
        assert run.data.tags["nettrain.run_dir"] == str(Path(trials[n]["run_dir"]).resolve())
