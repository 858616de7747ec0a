"""`nettrain fit`: config -> data -> model -> model.fit with callbacks -> evaluation -> run directory.

`train(session)` is the one training loop; fresh runs, `--resume` and `nettrain retrain` differ
only in where the model and the first epoch come from.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nettrain.config.schema import Config
from nettrain.errors import Interrupted, JobFailed
from nettrain.training import runtime  # noqa: F401  (sets TF log level before TF loads)

import keras  # noqa: E402

from nettrain.data import load_dataset  # noqa: E402
from nettrain.data.types import Dataset, Split  # noqa: E402
from nettrain.model import (build_model, class_weights, compile_model, encode_targets,  # noqa: E402
                            initial_learning_rate, label_mode, metric_names, model_summary,
                            output_activation_kind)
from nettrain.store import atomic, guard, h5, rundir  # noqa: E402
from nettrain.training import callbacks as cb  # noqa: E402
from nettrain.training import feed  # noqa: E402
from nettrain.training.schedules import make_schedule  # noqa: E402

SPLITS = ("train", "validation", "test")


@dataclass
class FitResult:
    run_dir: Path
    status: str
    metrics: dict[str, dict[str, float]]
    epochs_done: int = 0
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What `--json` prints: the run directory, the files in it, and the final metrics (split keys)."""
        return {"run_dir": str(self.run_dir), "files": rundir.run_files(self.run_dir), **self.metrics}


@dataclass
class Prepared:
    """Everything that comes from the config and the data, before a model exists."""

    cfg: Config
    device: str
    scope: Any
    dataset: Dataset
    mode: str
    threshold: float
    n_classes: int | None
    steps: int
    spe: int

    @property
    def has_val(self) -> bool:
        return self.dataset.validation is not None and len(self.dataset.validation) > 0

    def features(self, model: keras.Model) -> dict[str, Any]:
        return {**self.dataset.schema.to_dict(), "label_mode": self.mode, "threshold": self.threshold,
                "inputs": [t.name for t in model.inputs]}


def prepare(cfg: Config) -> Prepared:
    device, scope = runtime.setup(cfg)
    dataset = load_dataset(cfg)
    schema = dataset.schema
    steps = feed.steps_per_epoch(len(dataset.train), cfg.training.batch_size)
    spe = cfg.training.steps_per_execution
    return Prepared(cfg=cfg, device=device, scope=scope, dataset=dataset, mode=label_mode(cfg, schema),
                    threshold=0.0 if output_activation_kind(cfg, schema) == "tanh" else 0.5,
                    n_classes=len(schema.class_names) if schema.class_names else None, steps=steps,
                    spe=min(32, steps) if spe == "auto" else spe)


def new_model(prep: Prepared) -> keras.Model:
    cfg = prep.cfg
    with prep.scope, runtime.quiet_native_stderr():  # TensorFlow's allocator logs an out-of-memory layer
        added: list[str] = []
        model = build_model(cfg, prep.dataset, compile=False, notes=added)
    prep.dataset.notes.extend(n for n in added if n not in prep.dataset.notes)  # recorded in run.json
    with prep.scope:
        schedule, _ = make_schedule(cfg, initial_learning_rate(cfg), prep.steps)
        compile_model(cfg, model, prep.dataset.schema, learning_rate=schedule,
                      steps_per_execution=prep.spe)
    return model


@dataclass
class Session:
    prep: Prepared
    model: keras.Model
    out: Path
    record: rundir.RunRecord
    first_epoch: int                      # epochs already done (0 for a fresh run)
    last_epoch: int
    monitors: dict[str, str]
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows up to first_epoch
    quiet: bool = False
    json_output: bool = False
    # Early stopping carries on from the epochs already done (a resumed run), or starts a fresh
    # patience count and best value (a retrain: N more epochs are N more epochs).
    continue_early_stopping: bool = True


def run_fit(cfg: Config, *, run_dir: Path | None = None, resume: Path | None = None, quiet: bool = False,
            json_output: bool = False, force: bool = False) -> FitResult:
    if resume is not None:
        from nettrain.lifecycle.resume import resume_fit

        return resume_fit(cfg, resume, quiet=quiet, json_output=json_output, force=force)
    if cfg.data.split.folds > 1:
        from nettrain.training.kfold import run_kfold

        return run_kfold(cfg, run_dir=run_dir, quiet=quiet, json_output=json_output, force=force)
    if run_dir is not None:
        rundir.check_run_dir(run_dir, force=force)  # before the slow part
    prep = prepare(cfg)
    model = new_model(prep)
    monitors = check_monitors(cfg, prep.dataset.schema, prep.has_val)
    class_weights(cfg, prep.dataset.schema, prep.dataset.train)  # errors before anything is written
    # deferred: a signal between the first write and the training loop is raised inside it (status interrupted)
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=force) as out, guard.deferred():
        record = start_run_dir(prep, model, out, monitors)
        return train(Session(prep, model, out, record, 0, cfg.training.epochs, monitors, quiet=quiet,
                             json_output=json_output))


def start_run_dir(prep: Prepared, model: keras.Model, out: Path, monitors: dict[str, str],
                  record: rundir.RunRecord | None = None, **extra: Any) -> rundir.RunRecord:
    """The files a run has before its first epoch: run.json first (so the folder is a run from the
    start, and a run killed here can be resumed), then config, features, labels and summary."""
    cfg, dataset = prep.cfg, prep.dataset
    record = record or rundir.RunRecord(out)
    with guard.deferred():
        record.update(name=cfg.name, status="running", started=rundir.now(), ended=None, seed=cfg.seed,
                      device=prep.device, versions=rundir.versions(), config_file=cfg._file,
                      task=dataset.schema.task, label_mode=prep.mode, epochs=cfg.training.epochs, epochs_done=0,
                      best_epoch=None, stopped_epoch=None, monitor=monitors["best"], final_metrics=None,
                      data=data_record(dataset), notes=list(dataset.notes), **extra)
        with record.active():
            rundir.write_config(out, cfg.to_dict())
            atomic.write_json(out / rundir.FEATURES, prep.features(model))
            if dataset.schema.class_names:
                atomic.write_json(out / rundir.LABELS, dataset.schema.class_labels)
            atomic.write_text(out / rundir.SUMMARY, model_summary(model) + "\n")
    return record


def data_record(dataset: Dataset) -> dict[str, Any]:
    return {"source": dataset.source, "fingerprint": dataset.fingerprint,
            "rows": {s: (len(getattr(dataset, s)) if getattr(dataset, s) is not None else 0) for s in SPLITS}}


def train(s: Session) -> FitResult:
    """Epochs `first_epoch + 1 .. last_epoch`, then the final model, metrics and plots.

    The run is `running` inside; a signal ends it `interrupted` after its last complete epoch (the
    epoch being written is finished first), an error ends it `failed`.
    """
    out, record = s.out, s.record
    try:
        with guard.handlers(), guard.deferred(), record.active():
            return _train(s)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after epoch {record.data.get('epochs_done', 0)}; the run so far is in "
                          f"{out} (continue it with: nettrain fit CONFIG --resume {out})") from None


def _train(s: Session) -> FitResult:
    prep, model, out, record = s.prep, s.model, s.out, s.record
    cfg, dataset = prep.cfg, prep.dataset
    features, config_dict = prep.features(model), cfg.to_dict()

    def meta(epoch: int) -> dict[str, Any]:
        return {"features": features, "config": config_dict, "epoch": epoch, "run": cfg.name}

    csv = rundir.MetricsCSV(out / rundir.METRICS_CSV)
    cursor, nan_guard = feed.EpochCursor(s.first_epoch + 1), cb.NaNGuard()
    callbacks: list[keras.callbacks.Callback] = [cb.InterruptPoll(), cursor]
    if cfg.callbacks.terminate_on_nan:
        callbacks.append(nan_guard)
    _, schedule_cb = make_schedule(cfg, initial_learning_rate(cfg), prep.steps)
    if schedule_cb is not None:
        callbacks.append(schedule_cb)
    ck = cfg.callbacks.checkpoint
    checkpointer = None
    if ck.enabled:
        monitor = s.monitors["checkpoint"]
        checkpointer = cb.Checkpointer(
            out / rundir.CHECKPOINTS, lambda p, e: h5.write_model(model, p, meta(e)), filename=ck.filename,
            monitor=monitor, mode=ck.mode, save_best_only=ck.save_best_only, keep=ck.keep,
            best=_best_value(s.history, monitor, ck.mode), save_native=lambda p: h5.write_keras(model, p))
    callbacks.append(cb.EpochRecorder(csv, on_epoch=lambda e, row: record.update(epochs_done=e),
                                      checkpointer=checkpointer))
    es = cfg.callbacks.early_stopping
    early = None
    if es is not None:
        early = cb.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta, mode=es.mode,
                                 restore_best_weights=es.restore_best_weights, baseline=es.baseline,
                                 start_from_epoch=es.start_from_epoch,
                                 history=s.history if s.continue_early_stopping else None,
                                 best_weights=_earlier_best_weights(s, es) if s.continue_early_stopping else None)
        callbacks.append(early)
    tb = cfg.callbacks.tensorboard
    if tb is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD),
                                                     histogram_freq=tb.histogram_freq, update_freq=tb.update_freq,
                                                     write_graph=tb.write_graph))
    progress = _progress(s)
    callbacks.append(progress)

    batch = cfg.training.batch_size
    train_split = dataset.train
    train_x = feed.model_inputs(model, train_split.inputs)
    if getattr(progress, "live", False) and cfg.training.steps_per_execution == "auto":
        model.steps_per_execution = feed.lively_steps(model, train_x, batch, prep.spe)
    train_ds = feed.training_dataset(train_x, encode_targets(train_split.y, prep.mode, prep.n_classes),
                                     batch_size=batch, seed=cfg.seed, cursor=cursor)
    val_ds = None
    if prep.has_val:
        val_ds = feed.evaluation_dataset(feed.model_inputs(model, dataset.validation.inputs),
                                         encode_targets(dataset.validation.y, prep.mode, prep.n_classes), batch)
    try:
        model.fit(train_ds, initial_epoch=s.first_epoch, epochs=s.last_epoch, validation_data=val_ds,
                  shuffle=False, callbacks=callbacks, verbose=0,
                  class_weight=class_weights(cfg, dataset.schema, train_split))
    finally:
        progress.close()

    history = csv.read()
    stopped = int(early.stopped_epoch) + 1 if early is not None and early.stopped_epoch else None
    if stopped is None and s.first_epoch >= s.last_epoch:
        stopped = record.data.get("stopped_epoch")  # finishing a run that had stopped early
    best_epoch = _best_epoch(history, s.monitors["best"], es.mode if es else "auto")
    if nan_guard.where is not None:
        epoch, batch_no = nan_guard.where
        record.update(status="failed", ended=rundir.now(), best_epoch=best_epoch,
                      error=f"loss became NaN at epoch {epoch}, batch {batch_no}")
        last = out / rundir.CHECKPOINTS / rundir.LAST
        raise JobFailed(f"the loss became NaN/inf at epoch {epoch}, batch {batch_no}: training diverged. "
                        "Try a lower learning rate (training.optimizer.learning_rate), scaled inputs "
                        "(preprocessing.numeric: standard) or gradient clipping (clipnorm)."
                        + (f" Last good checkpoint: {last}" if last.exists() else ""))

    epochs_done = int(history[-1]["epoch"]) if history else s.first_epoch
    weights_epoch = epochs_done
    if early is not None and es.restore_best_weights and early.best_weights is not None:
        weights_epoch = int(early.best_epoch) + 1
    if s.first_epoch < s.last_epoch:
        _tell_the_end(s, early, stopped, weights_epoch, epochs_done)
    # Recorded before the final files, so a run stopped early and interrupted now is finished, not continued.
    record.update(epochs_done=epochs_done, best_epoch=best_epoch, stopped_epoch=stopped,
                  weights_epoch=weights_epoch)
    h5.save_model(model, out / rundir.MODEL, meta(epochs_done))
    if cfg.output.keras:
        h5.export_keras(model, out / rundir.KERAS_EXPORT)
    guard.poll()
    metrics = evaluate_splits(model, dataset, prep.mode, prep.n_classes, batch)
    atomic.write_json(out / rundir.METRICS_JSON, metrics)
    if cfg.output.plots:
        _plots(out, model, dataset, history, prep.mode, batch, prep.threshold, best_epoch, s.monitors["best"])
    guard.poll()
    record.update(status="completed", ended=rundir.now(), final_metrics=metrics)
    best_file = out / rundir.CHECKPOINTS / rundir.BEST
    if best_epoch is not None and best_file.exists():
        value = next((r.get(s.monitors["best"]) for r in history if int(r["epoch"]) == best_epoch), None)
        from nettrain.report.tables import format_value

        notice(f"best epoch {best_epoch} ({s.monitors['best']} {format_value(value)}); best checkpoint: "
               f"{best_file}", s.json_output)
    report_result(metrics, out, s.json_output)
    return FitResult(out, "completed", metrics, epochs_done, best_epoch, stopped, history)


def _tell_the_end(s: Session, early, stopped: int | None, weights_epoch: int, last: int) -> None:
    """Say how training ended when it is not the plain last epoch: an early stop, the weights kept."""
    es = s.prep.cfg.callbacks.early_stopping
    if early is None:
        return
    from nettrain.report.tables import format_value

    best = f"best {es.monitor} {format_value(early.best)} at epoch {int(early.best_epoch) + 1}" \
        if early.best is not None and math.isfinite(float(early.best)) else f"no finite {es.monitor}"
    kept = f"the model keeps the weights of epoch {weights_epoch}" + (
        " (restore_best_weights)" if weights_epoch != last else ", the last")
    if stopped is not None:
        notice(f"early stopping at epoch {stopped}: {es.monitor} did not improve for {es.patience} epoch(s); "
               f"{best}; {kept}", s.json_output)
    elif weights_epoch != last:
        notice(f"restored the best weights: {best}; {kept}", s.json_output)


def notice(text: str, json_output: bool) -> None:
    """A line about what a command is doing: stdout, or stderr when stdout carries --json."""
    print(text, file=sys.stderr if json_output else sys.stdout, flush=True)


def report_result(metrics: dict, out: Path, json_output: bool) -> None:
    if json_output:
        print(f"run directory: {out}", file=sys.stderr)
        return
    from nettrain.report.tables import print_metrics

    print_metrics(metrics)
    print(f"run directory: {out}")


def _earlier_best_weights(s: Session, es) -> Callable[[], list] | None:
    """On resume/retrain: the best earlier epoch's weights, from best.h5 when it tracks the same metric."""
    if not s.history or not es.restore_best_weights:
        return None
    best = s.out / rundir.CHECKPOINTS / rundir.BEST
    if not best.exists() or s.monitors["checkpoint"] != es.monitor:
        return None
    return lambda: h5.load_model(best, restore_optimizer=False).get_weights()


def _progress(s: Session) -> keras.callbacks.Callback:
    from nettrain.training.progress import PlainProgress, RichProgress, interactive

    stream = sys.stderr if s.json_output else sys.stdout
    if interactive(stream, s.quiet or s.json_output):
        return RichProgress(s.last_epoch, s.prep.steps, first_epoch=s.first_epoch + 1)
    return PlainProgress(s.last_epoch, stream)


def check_monitors(cfg: Config, schema, has_val: bool) -> dict[str, str]:
    """Every monitored name must be one Keras will log; checked before the first epoch."""
    names = ["loss"] + metric_names(cfg, schema)
    logged = set(names) | ({f"val_{n}" for n in names} if has_val else set())
    default = "val_loss" if has_val else "loss"
    ck = cfg.callbacks.checkpoint
    ck_monitor = ck.monitor if "monitor" in ck.model_fields_set else default
    checks = [("callbacks.checkpoint.monitor", ck_monitor)] if ck.enabled else []
    es = cfg.callbacks.early_stopping
    if es is not None:
        checks.append(("callbacks.early_stopping.monitor", es.monitor))
    sched = cfg.callbacks.lr_schedule
    if sched is not None and getattr(sched, "type", None) == "reduce_on_plateau":
        checks.append(("callbacks.lr_schedule.monitor", sched.monitor))
    for path, monitor in checks:
        if monitor not in logged:
            why = " (there are no validation rows: set data.split.validation > 0 or data.validation)" \
                if monitor.startswith("val_") and not has_val else ""
            raise cfg.error(path, f"'{monitor}' is never logged{why}; logged: {', '.join(sorted(logged))}")
    if ck.enabled:
        from nettrain.config.template import check_template

        try:
            check_template(ck.filename, {"epoch"} | logged)
        except ValueError as e:
            raise cfg.error("callbacks.checkpoint.filename", str(e)) from None
    best = es.monitor if es is not None else ck_monitor
    return {"checkpoint": ck_monitor, "best": best}


def _monitored(history: list[dict], monitor: str) -> list[tuple[float, int]]:
    values = [(r.get(monitor), int(r["epoch"])) for r in history if r.get(monitor) is not None]
    return [(v, e) for v, e in values if np.isfinite(v)]


def _best_epoch(history: list[dict], monitor: str, mode: str) -> int | None:
    values = _monitored(history, monitor)
    if not values:
        return None
    pick = max if cb.monitor_mode(monitor, mode) == "max" else min
    return pick(values, key=lambda ve: ve[0])[1]


def _best_value(history: list[dict], monitor: str, mode: str) -> float | None:
    epoch = _best_epoch(history, monitor, mode)
    return None if epoch is None else dict((e, v) for v, e in _monitored(history, monitor))[epoch]


def evaluate_splits(model: keras.Model, dataset: Dataset, mode: str, n_classes: int | None,
                    batch: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in SPLITS:
        split: Split | None = getattr(dataset, name)
        if split is None or len(split) == 0:
            continue
        ds = feed.evaluation_dataset(feed.model_inputs(model, split.inputs), encode_targets(split.y, mode, n_classes),
                                     batch)
        result = model.evaluate(ds, verbose=0, return_dict=True, callbacks=[cb.InterruptPoll()])
        out[name] = {k: float(v) for k, v in result.items()}
    return out


def predict_split(model: keras.Model, split: Split, batch: int) -> np.ndarray:
    return model.predict(feed.evaluation_dataset(feed.model_inputs(model, split.inputs), None, batch), verbose=0,
                         callbacks=[cb.InterruptPoll()])


def _plots(out: Path, model: keras.Model, dataset: Dataset, history: list[dict], mode: str, batch: int,
           threshold: float, best_epoch: int | None = None, monitor: str | None = None) -> None:
    from nettrain.report import plots

    plot_dir = out / rundir.PLOTS
    plot_dir.mkdir(exist_ok=True)
    if history:
        plots.learning_curves({k: [r.get(k) for r in history] for k in history[0]}, plot_dir / "learning_curves.png",
                              best_epoch=best_epoch, monitor=monitor)
    split = dataset.test if dataset.test is not None and len(dataset.test) else dataset.validation
    if split is None or len(split) == 0 or split.y is None:
        return
    pred = predict_split(model, split, batch)
    if mode == "regression":
        plots.predicted_vs_actual(np.asarray(split.y).reshape(len(pred), -1)[:, 0], pred[:, 0],
                                  plot_dir / "predicted_vs_actual.png")
    else:
        from sklearn.metrics import confusion_matrix

        labels = predicted_classes(pred, mode, threshold)
        names = dataset.schema.class_names
        matrix = confusion_matrix(split.y, labels, labels=list(range(len(names))))
        plots.confusion_matrix_plot(matrix, names, plot_dir / "confusion_matrix.png")


def predicted_classes(pred: np.ndarray, mode: str, threshold: float = 0.5) -> np.ndarray:
    """Class indices from model outputs; binary heads compare with `threshold` (0 for tanh/hinge)."""
    if mode == "binary":
        return (pred[:, 0] > threshold).astype(np.int64)
    return np.argmax(pred, axis=1)
