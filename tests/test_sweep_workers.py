"""Issue 24 end to end, with real worker processes and a real SQLite study: a trial's value is the
saved model's (evaluate and fit best.yaml give it back), warm workers run trial after trial with the
results of a trial in its own process, a killed or bloated worker costs only itself, k-fold trials,
and a continued study starts from its best trial."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import Proc
from tests.test_sweep import nettrain, status

pytestmark = pytest.mark.slow

CONFIG = """
name: w
seed: 3
data: {source: "sklearn:iris", target: target}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
training: {epochs: 6, batch_size: 16}
callbacks: {checkpoint: false}
output: {plots: false}
sweep:
  trials: 3
  sampler: random
  pruner: none
  params:
    training.optimizer.learning_rate: {log_uniform: [1.0e-2, 3.0e-1]}
"""


@pytest.fixture
def work(tmp_path):
    (tmp_path / "s.yaml").write_text(CONFIG)
    return tmp_path


def folder(work, study="w"):
    return work / "runs" / "w" / ("sweep" if study == "w" else f"sweep-{study}")


def worker_of(log: Path) -> int:
    return int(re.search(r"in worker (\d+)", log.read_text()).group(1))


def test_the_value_is_the_saved_models_and_evaluate_and_fit_best_yaml_give_it_back(work):
    r = nettrain(["sweep", "s.yaml", "--jobs", "1", "--json"], work)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 3
    for t in trials:  # no early stopping: the last epoch's model, whatever epoch logged the best val_loss
        assert t["value_epoch"] == 6 and 1 <= t["best_epoch"] <= 6
        final = json.loads((Path(t["run_dir"]) / "metrics.json").read_text())["validation"]["loss"]
        assert t["value"] == pytest.approx(final, rel=1e-9)
    best = result["best"]
    shown = nettrain(["evaluate", best["run_dir"], "--split", "validation", "--json"], work)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics"]["loss"] == pytest.approx(best["value"], rel=1e-6)
    # every trial ran in the one warm worker of --jobs 1, and gives what a fit in its own process gives
    logs = [folder(work) / "logs" / f"trial-{n:04d}.log" for n in range(3)]
    assert len({worker_of(log) for log in logs}) == 1
    fit = nettrain(["fit", folder(work) / "best.yaml", "--run-dir", work / "again", "--json"], work)
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["validation"]["loss"] == pytest.approx(best["value"], rel=1e-6, abs=1e-7)
    # the same study continued: its first line already knows the best trial
    r = nettrain(["sweep", "s.yaml", "--trials", "4"], work)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("trial 3:"))
    assert "no result yet" not in line and "best" in line


def test_with_early_stopping_the_value_is_the_restored_epochs(work):
    (work / "es.yaml").write_text(CONFIG.replace("epochs: 6", "epochs: 12").replace(
        "callbacks: {checkpoint: false}",
        "callbacks: {checkpoint: false, early_stopping: {monitor: val_loss, patience: 1, restore_best_weights: true}}")
        .replace("trials: 3", "trials: 2").replace("[1.0e-2, 3.0e-1]", "[0.3, 0.9]"))
    r = nettrain(["sweep", "es.yaml", "--json"], work)
    assert r.returncode == 0, r.stderr
    for t in json.loads(r.stdout)["trials"]:
        run = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        assert t["value_epoch"] == run["weights_epoch"]
        assert t["value"] == pytest.approx(run["final_metrics"]["validation"]["loss"], rel=1e-9)


def test_a_killed_worker_fails_its_trial_and_is_replaced_and_a_bloated_one_retires(work):
    (work / "long.yaml").write_text(CONFIG.replace("epochs: 6", "epochs: 3000").replace("trials: 3", "trials: 1"))
    p = Proc(["sweep", "long.yaml", "--study", "kill", "--trials", "1"], work)
    run = folder(work, "kill") / "trial-0000"
    deadline = time.time() + 120
    while not (run / ".lock").is_file() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(int((run / ".lock").read_text().split()[0]), signal.SIGKILL)  # the worker, mid-trial
    rc, out, err = p.finish(timeout=120)
    assert rc == 1, err  # its only trial failed
    [t] = status(folder(work, "kill"), work)["trials"]
    assert t["state"] == "failed" and "exited with code -9" in t["error"]
    # memory over the bound after each trial: every worker retires after one, the sweep starts another
    env_bound = {**os.environ, "NETTRAIN_SWEEP_WORKER_MB": "1"}
    import subprocess
    import sys

    from tests.helpers import ROOT

    r = subprocess.run([sys.executable, "-m", "nettrain", "sweep", "s.yaml", "--study", "bloat", "--trials", "2"],
                       cwd=work, env={**env_bound, "CI": "1", "PYTHONPATH": str(ROOT)}, text=True,
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert [t["state"] for t in status(folder(work, "bloat"), work)["trials"]] == ["complete"] * 2
    logs = folder(work, "bloat") / "logs"
    assert worker_of(logs / "trial-0000.log") != worker_of(logs / "trial-0001.log")


def test_a_kfold_config_is_swept_on_the_mean_of_its_folds(work):
    (work / "k.yaml").write_text(CONFIG.replace('target: target}', 'target: target, split: {folds: 3}}')
                                 .replace("epochs: 6", "epochs: 2").replace("trials: 3", "trials: 2"))
    r = nettrain(["sweep", "k.yaml", "--jobs", "2", "--json"], work)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for t in result["trials"]:
        assert t["state"] == "complete"
        metrics = json.loads((Path(t["run_dir"]) / "metrics.json").read_text())
        assert len(metrics["folds"]) == 3
        assert t["value"] == pytest.approx(metrics["mean"]["validation"]["loss"], rel=1e-9)
    assert "folds: 3" in (folder(work) / "best.yaml").read_text()
