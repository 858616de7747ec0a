"""Issue 24, the fast parts: the pruner's warm-up (a slow starter that wins is not pruned early), the
pruner options of `sweep.pruner`, a trial's value taken from the model it saves, the trial table's
width and the slice plot's labels. Real SQLite studies and Optuna pruners; no trial process here
(tests/test_sweep_workers.py runs them)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from nettrain.config import load_config
from nettrain.errors import ConfigError
from nettrain.sweep import study as ST
from nettrain.sweep import trial as T

CONFIG = """
data: {{source: "sklearn:iris", target: target}}
model:
  layers:
    - {{type: Dense, units: 8, activation: relu}}
training: {{epochs: {epochs}}}
sweep:
  trials: 8
  pruner: {pruner}
  params:
    training.optimizer.learning_rate: {{log_uniform: [1.0e-4, 1.0e-1]}}
"""


def sweep_cfg(write_config, pruner: str = "median", epochs: int = 20):
    return load_config(write_config(CONFIG.format(pruner=pruner, epochs=epochs)))


def fast(epoch: int) -> float:
    """A fast learner: good at once, flat at 0.30 from epoch 3."""
    return max(0.30, 1.0 - 0.35 * epoch)


def slow(epoch: int) -> float:
    """A slow learning rate: worse than the fast ones until epoch 5, then better, 0.10 at the end."""
    return 1.2 if epoch <= 5 else max(0.10, 0.29 - 0.02 * (epoch - 5))


def run_curves(tmp_path, cfg, epochs: int) -> list[int | None]:
    """Three fast trials finish, then the slow one reports epoch by epoch to the sweep's pruner (a real
    SQLite study): the epoch it was pruned at (None: it ran to the end), per slow trial."""
    _, t, _ = slow_trial_studies(tmp_path, cfg, epochs)
    for e in range(1, epochs + 1):
        t.report(slow(e), e)
        if t.should_prune():
            return [e]
    return [None]


def test_a_slow_learning_rate_that_wins_at_the_end_is_not_pruned_early(write_config, tmp_path):
    cfg = sweep_cfg(write_config, "median", epochs=20)
    assert ST.warmup_epochs(cfg.sweep, 20) == 5  # a quarter of training.epochs
    assert run_curves(tmp_path, cfg, 20) == [None]
    assert slow(20) < fast(20)  # and it is the best trial


def test_a_short_warm_up_prunes_it_but_never_at_the_first_epoch(write_config, tmp_path):
    cfg = sweep_cfg(write_config, "{median: {warmup_epochs: 1, startup_trials: 3}}", epochs=20)
    assert run_curves(tmp_path, cfg, 20) == [2]  # the earliest: epoch 2, never epoch 1


def test_the_warm_up_defaults_and_options(write_config):
    assert ST.warmup_epochs(sweep_cfg(write_config, "median", 60).sweep, 60) == 15
    assert ST.warmup_epochs(sweep_cfg(write_config, "median", 2).sweep, 2) == 1
    cfg = sweep_cfg(write_config, "{median: {warmup_epochs: 7}}", 60)
    assert ST.warmup_epochs(cfg.sweep, 60) == 7 and cfg.sweep.pruner_options.startup_trials == 3
    assert ST.min_epochs(sweep_cfg(write_config, "hyperband", 60).sweep, 60) == 15
    assert ST.min_epochs(sweep_cfg(write_config, "hyperband", 4).sweep, 4) == 2
    assert ST.min_epochs(sweep_cfg(write_config, "{hyperband: {min_epochs: 9}}", 60).sweep, 60) == 9
    assert sweep_cfg(write_config, "none").sweep.pruner_options is None
    assert sweep_cfg(write_config, "{none: {}}").sweep.pruner_name == "none"
    # the config keeps the pruner as written (best.yaml, each trial's config.yaml)
    dumped = sweep_cfg(write_config, "{median: {warmup_epochs: 7}}").to_dict()["sweep"]["pruner"]
    assert dumped["median"]["warmup_epochs"] == 7


@pytest.mark.parametrize("pruner, words", [
    ("{median: {warmup_epochs: 0}}", "warmup_epochs"),
    ("{median: {warmup: 3}}", "warmup"),
    ("{hyperband: {min_epochs: 1}}", "min_epochs"),
    ("{median: {}, hyperband: {}}", "exactly one"),
    ("sometimes", "sometimes"),
])
def test_a_bad_pruner_names_sweep_pruner(write_config, pruner, words):
    with pytest.raises(ConfigError) as info:
        sweep_cfg(write_config, pruner)
    assert "sweep.pruner" in str(info.value) and words in str(info.value)


def test_the_value_is_the_saved_models_not_the_best_epochs(tmp_path):
    """No early stopping: the last epoch's model is saved, so its final validation metric is the value,
    though an earlier epoch logged a better one (reported beside it as the best epoch)."""
    from nettrain.store import rundir

    run = tmp_path / "run"
    run.mkdir()
    rundir.RunRecord(run).update(weights_epoch=3)
    history = [{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.4}, {"epoch": 3, "val_loss": 0.6}]
    result = SimpleNamespace(run_dir=run, epochs_done=3, history=history,
                             metrics={"train": {"loss": 0.5}, "validation": {"loss": 0.6001}})
    assert T.delivered(result, "val_loss", "minimize") == (0.6001, 3, 2)
    assert T.delivered(result, "loss", "minimize") == (0.5, 3, None)  # no loss in this history
    # early stopping restored epoch 2: its weights are the model; a metric the final table lacks comes
    # from metrics.csv at that epoch
    rundir.RunRecord(run).update(weights_epoch=2)
    result.metrics = {"validation": {}}
    assert T.delivered(result, "val_loss", "minimize") == (0.4, 2, 2)


def test_the_trial_table_fits_120_columns_off_a_terminal(capsys, monkeypatch):
    from nettrain.report.sweep import print_trials

    monkeypatch.delenv("COLUMNS", raising=False)
    rows = [{"number": n, "state": "complete", "value": 0.123456 * n, "value_epoch": 12, "best_epoch": 9,
             "epochs": 12, "seconds": 3.2, "run_dir": f"/somewhere/rather/long/runs/a-long-name/sweep/trial-{n:04d}",
             "params": {"training.optimizer.learning_rate": 0.00123, "model.layers.0.units": 64,
                        "model.layers.1.rate": 0.25, "training.batch_size": 32}} for n in range(3)]
    print_trials(rows, "val_auc", title="study s")
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(lines)
    text = "\n".join(lines)
    assert "best at" in text and "trial-0002" in text and "val_auc" in text


def test_the_slice_plots_labels_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nettrain.report.sweep import spread_labels

    fig, axes = plt.subplots(1, 4, figsize=(8, 5))
    for i, ax in enumerate(axes):
        ax.plot([1e-4, 1e-1], [0, 1])
        ax.set_xlabel(f"training.optimizer.learning_rate_of_layer_{i}")
        ax.set_xticks([1e-4, 0.025, 0.05, 0.075, 0.1])
    spread_labels(fig, list(axes))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.xaxis.label.get_window_extent(renderer) for ax in axes]
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 <= b.x0, (a, b)
    plt.close(fig)
    assert math.isclose(fig.get_figwidth(), 16.0)


@pytest.mark.slow
def test_optuna_dashboard_reads_a_finished_study(tmp_path):
    """The `dashboard` extra: optuna-dashboard started on 127.0.0.1 against a sweep's SQLite study
    answers /api/studies with it (bounded: stopped within 60 s whatever happens)."""
    import json
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import optuna

    pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = ST.Study.create(ST.open_storage(url), "finished", direction="minimize",
                            sampler=optuna.samplers.RandomSampler(seed=1), pruner=optuna.pruners.NopPruner())
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for value in (0.5, 0.3):
        t = study.ask(dist, optuna.samplers.RandomSampler(seed=2))
        study.end(t.number, optuna.trial.TrialState.COMPLETE, value=value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    server = subprocess.Popen([exe, url, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, answer = time.time() + 60, None
        while time.time() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    answer = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.3)
        assert answer is not None, server.stderr.read().decode()[-2000:] if server.poll() is not None else "no answer"
        [summary] = answer["study_summaries"]
        assert summary["study_name"] == "finished"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def slow_trial_studies(tmp_path, cfg, epochs: int):
    """(the study as the sweep process has it, three fast trials complete; the slow trial it asked for; the
    same study loaded afresh with the sweep's pruner, as a trial process has it). A real SQLite study."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = ST.Study.create(ST.open_storage(url, heartbeat=True), "s", direction="minimize",
                            sampler=optuna.samplers.RandomSampler(seed=1), pruner=ST.pruner(cfg.sweep, epochs))
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for _ in range(3):
        t = study.ask(dist, optuna.samplers.RandomSampler(seed=2))
        for e in range(1, epochs + 1):
            t.report(fast(e), e)
        study.end(t.number, optuna.trial.TrialState.COMPLETE, value=fast(epochs))
    trial = study.ask(dist, optuna.samplers.RandomSampler(seed=3))
    worker = ST.Study.load(ST.open_storage(url, mode="existing"), "s")
    worker.use_pruner(ST.pruner(cfg.sweep, epochs))
    return study, trial, worker


def test_the_median_pruner_asked_in_the_trial_gives_optunas_verdict_at_every_step(write_config, tmp_path):
    """A trial asks a median pruner itself (Study.should_prune: the values it reported and the study's
    complete trials, nothing read from the storage at the epoch's end): at every step the verdict is
    Optuna's Trial.should_prune for the same values, stop and go alike."""
    cfg = sweep_cfg(write_config, "{median: {warmup_epochs: 2}}", epochs=20)
    study, trial, worker = slow_trial_studies(tmp_path, cfg, 20)
    assert ST.judge(worker.pruner) == "here"
    reported, verdicts = {}, []
    for e in range(1, 21):
        trial.report(slow(e), e)
        reported[e] = slow(e)
        verdicts.append(worker.should_prune(trial.number, reported, worker.complete()))
        assert verdicts[-1] == trial.should_prune(), e
    assert verdicts[:2] == [False, False] and verdicts[2] is True  # the warm-up, then stop at epoch 3
    assert verdicts[-1] is False  # from epoch 6 it beats the median: go on
    assert len(worker.complete()) == 3


@pytest.mark.parametrize("pruner, where", [("median", "here"), ("hyperband", "storage"), ("none", "none")])
def test_where_each_pruner_is_asked(write_config, pruner, where):
    assert ST.judge(ST.pruner(sweep_cfg(write_config, pruner).sweep, 20)) == where


@pytest.mark.slow  # imports Keras
def test_the_pruning_callback_stops_where_optuna_says_and_writes_every_report(write_config, tmp_path):
    """The trial's callback at its epoch ends (a real SQLite study, the storage on the callback's thread):
    it stops at the epoch Optuna's own should_prune names for the same values (run_curves), and once its
    training ended every epoch's value is in the study, so the trial is told after all of them."""
    cfg = sweep_cfg(write_config, "{median: {warmup_epochs: 2}}", epochs=20)
    expected = run_curves(tmp_path / "optuna", cfg, 20)
    assert expected == [3]
    study, trial, worker = slow_trial_studies(tmp_path, cfg, 20)
    callback = T.pruning_callback(worker, trial.number, "val_loss", ST.first_prune_step(cfg.sweep, 20))
    model = SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(20):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"val_loss": slow(epoch + 1)})
        if model.stop_training:
            break
    callback.on_train_end()
    assert [callback.pruned_at] == expected and callback.values == [slow(e) for e in (1, 2, 3)]
    assert study.frozen(trial.number).intermediate_values == {e: slow(e) for e in (1, 2, 3)}
