"""`nettrain fit`: config -> data -> model -> model.fit with callbacks -> evaluation -> run directory."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from nettrain.store import atomic, h5, rundir  # noqa: E402
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


def run_fit(cfg: Config, *, run_dir: Path | None = None, resume: Path | None = None, quiet: bool = False,
            json_output: bool = False) -> FitResult:
    if resume is not None:
        raise cfg.error("--resume", "resuming a run is not implemented yet")
    if cfg.data.split.folds > 1:
        raise cfg.error("data.split.folds", "k-fold cross-validation is not implemented yet; use folds: 1")
    device, scope = runtime.setup(cfg)
    dataset = load_dataset(cfg)
    schema = dataset.schema
    mode = label_mode(cfg, schema)
    threshold = 0.0 if output_activation_kind(cfg, schema) == "tanh" else 0.5
    n_classes = len(schema.class_names) if schema.class_names else None
    train = dataset.train
    batch = cfg.training.batch_size
    steps = feed.steps_per_epoch(len(train), batch)
    spe = cfg.training.steps_per_execution
    spe = min(32, steps) if spe == "auto" else spe

    with scope:
        model = build_model(cfg, dataset, compile=False)
        lr0 = initial_learning_rate(cfg)
        schedule, schedule_cb = make_schedule(cfg, lr0, steps)
        compile_model(cfg, model, schema, train, learning_rate=schedule, steps_per_execution=spe)
    has_val = dataset.validation is not None and len(dataset.validation) > 0
    monitors = _check_monitors(cfg, model, schema, has_val)
    weights = class_weights(cfg, schema, train)

    out = rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir)
    rundir.write_config(out, cfg.to_dict())
    features = {**schema.to_dict(), "label_mode": mode, "threshold": threshold,
                "inputs": [t.name for t in model.inputs]}
    atomic.write_json(out / rundir.FEATURES, features)
    config_dict = cfg.to_dict()

    def meta(epoch: int) -> dict[str, Any]:
        return {"features": features, "config": config_dict, "epoch": epoch, "run": cfg.name}
    if schema.class_names:
        atomic.write_json(out / rundir.LABELS, schema.class_names)
    atomic.write_text(out / rundir.SUMMARY, model_summary(model) + "\n")
    record = rundir.RunRecord(out)
    record.update(name=cfg.name, status="running", started=rundir.now(), ended=None, seed=cfg.seed,
                  device=device, versions=rundir.versions(), config_file=cfg._file, task=schema.task,
                  label_mode=mode, epochs=cfg.training.epochs, epochs_done=0, best_epoch=None,
                  stopped_epoch=None, monitor=monitors["best"], final_metrics=None,
                  data={"source": dataset.source, "fingerprint": dataset.fingerprint, "rows": {
                      s: (len(getattr(dataset, s)) if getattr(dataset, s) is not None else 0) for s in SPLITS}})

    csv = rundir.MetricsCSV(out / rundir.METRICS_CSV)
    nan_guard = cb.NaNGuard()
    callbacks: list[keras.callbacks.Callback] = [nan_guard]
    if schedule_cb is not None:
        callbacks.append(schedule_cb)
    callbacks.append(cb.EpochRecorder(csv, on_epoch=lambda e, row: record.update(epochs_done=e)))
    ck = cfg.callbacks.checkpoint
    checkpointer = None
    if ck.enabled:
        checkpointer = cb.Checkpointer(out / rundir.CHECKPOINTS, lambda p, e: h5.write_model(model, p, meta(e)),
                                       filename=ck.filename,
                                       monitor=monitors["checkpoint"], mode=ck.mode,
                                       save_best_only=ck.save_best_only, keep=ck.keep)
        callbacks.append(checkpointer)
    es = cfg.callbacks.early_stopping
    early = None
    if es is not None:
        early = keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta,
                                              mode=es.mode, restore_best_weights=es.restore_best_weights,
                                              baseline=es.baseline, start_from_epoch=es.start_from_epoch)
        callbacks.append(early)
    tb = cfg.callbacks.tensorboard
    if tb is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD),
                                                     histogram_freq=tb.histogram_freq, update_freq=tb.update_freq,
                                                     write_graph=tb.write_graph))
    callbacks.append(_progress(cfg, steps, quiet, json_output))

    x_train = feed.model_inputs(model, train.inputs)
    y_train = encode_targets(train.y, mode, n_classes)
    cursor = feed.EpochCursor()
    callbacks.insert(0, cursor)
    train_ds = feed.training_dataset(x_train, y_train, batch_size=batch, seed=cfg.seed, cursor=cursor)
    val_ds = None
    if has_val:
        val_ds = feed.evaluation_dataset(feed.model_inputs(model, dataset.validation.inputs),
                                         encode_targets(dataset.validation.y, mode, n_classes), batch)

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        model.fit(train_ds, epochs=cfg.training.epochs, validation_data=val_ds, shuffle=False,
                  callbacks=callbacks, verbose=0, class_weight=weights)
    except KeyboardInterrupt:
        record.update(status="interrupted", ended=rundir.now())
        raise Interrupted(f"interrupted after epoch {record.data.get('epochs_done', 0)}; "
                          f"the run so far is in {out}") from None
    except Exception as e:
        record.update(status="failed", ended=rundir.now(), error=f"{type(e).__name__}: {e}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)

    history = csv.read()
    stopped = int(early.stopped_epoch) + 1 if early is not None and early.stopped_epoch else None
    best_epoch = _best_epoch(history, monitors["best"], es.mode if es else "auto")
    if nan_guard.where is not None:
        epoch, batch_no = nan_guard.where
        record.update(status="failed", ended=rundir.now(), best_epoch=best_epoch,
                      error=f"loss became NaN at epoch {epoch}, batch {batch_no}")
        raise JobFailed(f"the loss became NaN/inf at epoch {epoch}, batch {batch_no}: training diverged. "
                        "Try a lower learning rate (training.optimizer.learning_rate), scaled inputs "
                        f"(preprocessing.numeric: standard) or gradient clipping (clipnorm). "
                        f"Last good checkpoint: {out / rundir.CHECKPOINTS / 'last.h5'}")

    h5.save_model(model, out / rundir.MODEL, meta(len(history)))
    metrics = evaluate_splits(model, dataset, mode, n_classes, batch)
    atomic.write_json(out / rundir.METRICS_JSON, metrics)
    if cfg.output.plots:
        _plots(out, model, dataset, history, mode, batch, threshold)
    record.update(status="completed", ended=rundir.now(), epochs_done=len(history), best_epoch=best_epoch,
                  stopped_epoch=stopped, final_metrics=metrics)
    result = FitResult(out, "completed", metrics, len(history), best_epoch, stopped, history)
    if not json_output:
        from nettrain.report.tables import print_metrics

        print_metrics(metrics)
        print(f"run directory: {out}")
    else:
        print(f"run directory: {out}", file=sys.stderr)
    return result


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _progress(cfg: Config, steps: int, quiet: bool, json_output: bool) -> keras.callbacks.Callback:
    from nettrain.training.progress import PlainProgress, RichProgress, interactive

    stream = sys.stderr if json_output else sys.stdout
    if interactive(stream, quiet or json_output):
        return RichProgress(cfg.training.epochs, steps)
    return PlainProgress(cfg.training.epochs, stream)


def _check_monitors(cfg: Config, model: keras.Model, schema, has_val: bool) -> dict[str, str]:
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
    best = es.monitor if es is not None else ck_monitor
    return {"checkpoint": ck_monitor, "best": best}


def _best_epoch(history: list[dict], monitor: str, mode: str) -> int | None:
    values = [(r.get(monitor), int(r["epoch"])) for r in history if r.get(monitor) is not None]
    values = [(v, e) for v, e in values if np.isfinite(v)]
    if not values:
        return None
    pick = max if cb.monitor_mode(monitor, mode) == "max" else min
    return pick(values, key=lambda ve: ve[0])[1]


def evaluate_splits(model: keras.Model, dataset: Dataset, mode: str, n_classes: int | None,
                    batch: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in SPLITS:
        split: Split | None = getattr(dataset, name)
        if split is None or len(split) == 0:
            continue
        ds = feed.evaluation_dataset(feed.model_inputs(model, split.inputs), encode_targets(split.y, mode, n_classes),
                                     batch)
        result = model.evaluate(ds, verbose=0, return_dict=True)
        out[name] = {k: float(v) for k, v in result.items()}
    return out


def predict_split(model: keras.Model, split: Split, batch: int) -> np.ndarray:
    return model.predict(feed.evaluation_dataset(feed.model_inputs(model, split.inputs), None, batch), verbose=0)


def _plots(out: Path, model: keras.Model, dataset: Dataset, history: list[dict], mode: str, batch: int,
           threshold: float) -> None:
    from nettrain.report import plots

    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    if history:
        plots.learning_curves({k: [r.get(k) for r in history] for k in history[0]}, plot_dir / "learning_curves.png")
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
