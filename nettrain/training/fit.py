"""One training session: config -> data -> model -> model.fit with callbacks -> final files.

The leaf of `nettrain fit`: `prepare` (config and data), `new_model`, `runfiles.start_run_dir` and
`train(session)`, the one training loop. Which session runs (a fresh run, a k-fold fold,
`--resume`, `nettrain retrain`) is decided above, in `nettrain.lifecycle.orchestrate`; the
sessions differ only in where the model and the first epoch come from.

`train` reads in two hops: `_callbacks` (what Keras calls at each epoch, in order), `_fit` (the
epochs, by nettrain's own loop: `_loop`) and `ending.finish` (how training ended, then the final
files; training/ending.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nettrain.config.schema import Config
from nettrain.errors import Interrupted
from nettrain.training import runtime  # noqa: F401  (sets TF log level before TF loads)

import keras  # noqa: E402

from nettrain.data import load_dataset  # noqa: E402
from nettrain.data.types import Dataset  # noqa: E402
from nettrain.model.build import build_model  # noqa: E402
from nettrain.model.compile import (compile_model, initial_learning_rate, label_mode, metric_names,  # noqa: E402
                                    output_activation_kind)
from nettrain.store import guard, h5, rundir  # noqa: E402
from nettrain.training import callbacks as cb, prefix  # noqa: E402
from nettrain.training.ending import (FitResult, after_result, best_epoch, best_value, finish,  # noqa: E402,F401
                                      held_rows, later)  # (FitResult, after_result, later: used as fit.*)
from nettrain.training.engine import ArrayLoop, StepGraph, StreamLoop  # noqa: E402
from nettrain.training.feed import ArrayFeed, EpochCursor, Feed, StreamFeed, lively_steps  # noqa: E402
from nettrain.training.progress import notice, report_result  # noqa: E402,F401  (used as fit.notice, fit.report_result)
from nettrain.training.schedules import make_schedule  # noqa: E402


@dataclass
class Prepared:
    """Everything that comes from the config and the data, before a model exists."""

    cfg: Config
    device: str
    strategy: Any                                # tf.distribute.Strategy, or None for the default (one device)
    dataset: Dataset
    feed: Feed                                   # the dataset's rows as a session consumes them
    mode: str
    threshold: float
    n_classes: int | None
    spe: int
    data_path: Any = None                        # data.stream.DataPath: streamed or in memory, and why

    @property
    def steps(self) -> int:
        return self.feed.steps

    @property
    def has_val(self) -> bool:
        return self.feed.has_validation

    def scope(self) -> contextlib.AbstractContextManager:
        """The distribution strategy's scope, to build or load a model in (a new one at each call)."""
        return strategy_scope(self.strategy)

    def features(self, model: keras.Model) -> dict[str, Any]:
        return {**self.dataset.schema.to_dict(), "label_mode": self.mode, "threshold": self.threshold,
                "inputs": [t.name for t in model.inputs]}


def prepare(cfg: Config, *, stream: bool | None = None, dataset: Dataset | None = None) -> Prepared:
    """The config and the data: in memory, or streamed from the file (`data.stream`; `stream`, the
    path a resumed run was started on, keeps it under `auto`). A streamed dataset's first pass
    reads the whole file here, so a bad value anywhere in it stops the command before a run exists.
    `dataset`: rows in memory already loaded from the same data keys (a warm sweep worker's), reused."""
    from nettrain.data.stream import choose, load_stream

    path = choose(cfg, recorded=stream)  # a config mistake before the slow part
    device, strategy = runtime.setup(cfg)  # the seeds too: set again whether the rows are loaded or reused
    if dataset is None or path.stream:
        dataset = load_stream(cfg, path.why) if path.stream else load_dataset(cfg)
    schema = dataset.schema
    mode = label_mode(cfg, schema)
    n_classes = len(schema.class_names) if schema.class_names else None
    feed = _feed(cfg, dataset, mode, n_classes)
    spe = cfg.training.steps_per_execution
    return Prepared(cfg=cfg, device=device, strategy=strategy, dataset=dataset, feed=feed, mode=mode,
                    threshold=0.0 if output_activation_kind(cfg, schema) == "tanh" else 0.5,
                    n_classes=n_classes, spe=min(32, feed.steps) if spe == "auto" else spe, data_path=path)


def strategy_scope(strategy: Any) -> contextlib.AbstractContextManager:
    """`strategy.scope()`, or no scope for the default strategy (None)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def with_rows(prep: Prepared, dataset: Dataset) -> Prepared:
    """`prep` for other rows of the same data (a k-fold fold): its own feed and steps per epoch."""
    return dataclasses.replace(prep, dataset=dataset, feed=_feed(prep.cfg, dataset, prep.mode, prep.n_classes))


def _feed(cfg: Config, dataset: Dataset, mode: str, n_classes: int | None) -> Feed:
    from nettrain.data.images import ImageDataset
    from nettrain.data.stream import StreamDataset

    if isinstance(dataset, ImageDataset):  # image files, decoded chunk by chunk
        from nettrain.training.imagefeed import ImageFeed

        return ImageFeed(dataset, mode=mode, n_classes=n_classes, batch_size=cfg.training.batch_size, seed=cfg.seed)
    kind = StreamFeed if isinstance(dataset, StreamDataset) else ArrayFeed
    return kind(dataset, mode=mode, n_classes=n_classes, batch_size=cfg.training.batch_size, seed=cfg.seed)


def new_model(prep: Prepared) -> keras.Model:
    cfg = prep.cfg
    with prep.scope(), runtime.quiet_native_stderr():  # TensorFlow's allocator logs an out-of-memory layer
        added: list[str] = []
        model = build_model(cfg, prep.dataset, compile=False, notes=added)
    prep.dataset.notes.extend(n for n in added if n not in prep.dataset.notes)  # recorded in run.json
    with prep.scope():
        schedule, _ = make_schedule(cfg, initial_learning_rate(cfg), prep.steps)
        compile_model(cfg, model, prep.dataset.schema, learning_rate=schedule,
                      steps_per_execution=prep.spe)
    return model


@dataclass(kw_only=True)
class Session:
    """One training session: epochs `first_epoch + 1 .. last_epoch` of `model`, written into `out`.

    The seams: `feed` says where the examples come from, `strategy` is the distribution strategy
    the model was built under (a `tf.distribute.Strategy`, None for the default; the training step
    runs in its scope), and `extra_callbacks` are a caller's own (e.g. a sweep's pruning), run
    after nettrain's (see `_callbacks`).
    """

    prep: Prepared                        # the config and what the data stage decided
    model: keras.Model
    out: Path
    record: rundir.RunRecord
    feed: Feed
    strategy: Any
    monitors: dict[str, str]              # see check_monitors
    first_epoch: int = 0                  # epochs already done (0 for a fresh run)
    last_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows up to first_epoch
    extra_callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    quiet: bool = False
    json_output: bool = False
    # Early stopping carries on from the epochs already done (a resumed run), or starts a fresh
    # patience count and best value (a retrain: N more epochs are N more epochs).
    continue_early_stopping: bool = True


# ------------------------------------------------------------------------------ the training loop

def train(s: Session) -> FitResult:
    """Epochs `first_epoch + 1 .. last_epoch`, then the final model, metrics and plots.

    The run is `running` inside; a signal ends it `interrupted` after its last complete epoch (the
    epoch being written is finished first), an error ends it `failed`.
    """
    try:
        # a stream's prepared rows are parsed once and kept in the run folder until the session ends
        with guard.handlers(), guard.deferred(), s.record.active(), s.feed.caching(s.out / rundir.CACHE):
            kit = _callbacks(s)
            _fit(s, kit)
            return finish(s, kit)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after epoch {s.record.data.get('epochs_done', 0)}; the run so far is in "
                          f"{s.out} (continue it with: nettrain fit CONFIG --resume {s.out})") from None


@dataclass
class SessionCallbacks:
    """A session's callbacks in the order Keras calls them (`all`), and those read after training."""

    all: list[keras.callbacks.Callback]
    cursor: EpochCursor
    csv: rundir.MetricsCSV
    nan_guard: cb.NaNGuard
    early: cb.EarlyStopping | None
    progress: keras.callbacks.Callback
    meta: Callable[[int], dict[str, Any]]  # the nettrain metadata of a model file saved at an epoch


def _callbacks(s: Session) -> SessionCallbacks:
    """In this order: stop at a signal; tell the feed which epoch runs; stop at a NaN loss
    (callbacks.terminate_on_nan); the per-epoch learning-rate schedule; the end of an epoch as one
    step (checkpoints, metrics.csv, run.json); early stopping; TensorBoard; the progress display;
    then the session's `extra_callbacks`, which thus see an epoch after it is on disk and shown:
    one that stops training or raises (a pruned sweep trial) leaves the run whole up to that epoch."""
    prep, model, out, record = s.prep, s.model, s.out, s.record
    cfg = prep.cfg
    features, config_dict = prep.features(model), cfg.to_dict()

    def meta(epoch: int, weights_epoch: int | None = None) -> dict[str, Any]:
        kept = {} if weights_epoch is None or weights_epoch == epoch else {"weights_epoch": weights_epoch}
        return {"features": features, "config": config_dict, "epoch": epoch, "run": cfg.name, **kept}

    csv = rundir.MetricsCSV(out / rundir.METRICS_CSV)
    cursor, nan_guard = EpochCursor(s.first_epoch + 1), cb.NaNGuard()
    callbacks: list[keras.callbacks.Callback] = [cb.InterruptPoll(), cursor]
    if cfg.callbacks.terminate_on_nan:
        callbacks.append(nan_guard)
    _, schedule_cb = make_schedule(cfg, initial_learning_rate(cfg), s.feed.steps)
    if schedule_cb is not None:
        callbacks.append(schedule_cb)
    grads = _gradient_stats(s)  # measured at the end of an epoch, written with its metrics.csv row
    if grads is not None:
        callbacks.append(grads)
    checkpointer = _checkpointer(s, meta)
    callbacks.append(cb.EpochRecorder(csv, on_epoch=_epochs_done(record, every=0.0 if checkpointer else 1.0),
                                      checkpointer=checkpointer, extra=grads.row if grads else None))
    early = _early_stopping(s)
    if early is not None:
        callbacks.append(early)
    tb = cfg.callbacks.tensorboard
    if tb is not None:  # a callback like any other: the loop is the same with or without it
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / rundir.TENSORBOARD),
                                                     histogram_freq=tb.histogram_freq, update_freq=tb.update_freq,
                                                     write_graph=tb.write_graph))
        if tb.write_graph:  # Keras's callback draws only model.fit's train_function
            callbacks.append(StepGraph(str(out / rundir.TENSORBOARD / "train")))
    from nettrain.training import tracking

    logger = tracking.session_callback(s, nan_guard)  # tracking.mlflow: each epoch, once it is on disk
    if logger is not None:
        callbacks.append(logger)
    progress = _progress(s)
    callbacks += [progress, *s.extra_callbacks]
    return SessionCallbacks(callbacks, cursor, csv, nan_guard, early, progress, meta)


def _epochs_done(record: rundir.RunRecord, every: float) -> Callable[[int, dict], None]:
    """run.json `epochs_done` at an epoch's end: written with each epoch's checkpoint (what `--resume`
    continues from), else at most once every `every` seconds. In memory at once: an interrupted or failed
    run (`record.active`) and the end of training (`_ending`) write it, so only a process killed outright
    leaves run.json up to a second behind metrics.csv, in a run that keeps no checkpoint to resume."""
    import time

    written = [time.monotonic()]

    def on_epoch(epoch: int, row: dict) -> None:
        record.data["epochs_done"] = epoch
        if time.monotonic() - written[0] >= every:
            record.update()
            written[0] = time.monotonic()

    return on_epoch


def _gradient_stats(s: Session) -> keras.callbacks.Callback | None:
    """callbacks.gradient_stats: per-layer gradient norms on the first batch_size training rows."""
    gs = s.prep.cfg.callbacks.gradient_stats
    if gs is None:
        return None
    from nettrain.training.gradients import GradientStats, first_rows

    x, y = first_rows(s.feed, s.model, s.prep.cfg.training.batch_size)
    tb = s.out / rundir.TENSORBOARD / "gradients" if s.prep.cfg.callbacks.tensorboard is not None else None
    return GradientStats(x, y, every=gs.every, tensorboard=tb)


def _checkpointer(s: Session, meta: Callable[[int], dict[str, Any]]) -> cb.Checkpointer | None:
    ck, model = s.prep.cfg.callbacks.checkpoint, s.model
    if not ck.enabled:
        return None
    monitor = s.monitors["checkpoint"]
    return cb.Checkpointer(
        s.out / rundir.CHECKPOINTS, lambda p, e: h5.write_model(model, p, meta(e)), filename=ck.filename,
        monitor=monitor, mode=ck.mode, save_best_only=ck.save_best_only, keep=ck.keep,
        best=best_value(s.history, monitor, ck.mode), save_native=lambda p: h5.write_keras(model, p))


def _early_stopping(s: Session) -> cb.EarlyStopping | None:
    es = s.prep.cfg.callbacks.early_stopping
    if es is None:
        return None
    return cb.EarlyStopping(monitor=es.monitor, patience=es.patience, min_delta=es.min_delta, mode=es.mode,
                            restore_best_weights=es.restore_best_weights, baseline=es.baseline,
                            start_from_epoch=es.start_from_epoch,
                            history=s.history if s.continue_early_stopping else None,
                            best_weights=_earlier_best_weights(s, es) if s.continue_early_stopping else None)


def _fit(s: Session, kit: SessionCallbacks) -> None:
    """The epochs: the feed's batches through nettrain's own loop (`_loop`), the callbacks of `kit`."""
    cfg, model = s.prep.cfg, s.model
    if getattr(kit.progress, "live", False) and cfg.training.steps_per_execution == "auto":
        model.steps_per_execution = lively_steps(model, s.feed.first_batch(model), s.prep.spe)
    val_ds = held_rows(s.feed, model, ("validation",)).get("validation") if s.strategy is None else None
    if val_ds is None:
        val_ds = s.feed.validation(model)
    try:
        loop = _loop(s, kit.cursor)  # same step, batches and callbacks as model.fit, without its per-batch input feed
        loop.fit(initial_epoch=s.first_epoch, epochs=s.last_epoch, callbacks=kit.all, validation_data=val_ds)
    except Exception:
        failure = getattr(s.feed, "failure", None)  # a streamed file that could not be read again
        if failure is not None:
            raise failure from None
        raise
    finally:
        kit.progress.close()


def _loop(s: Session, cursor: EpochCursor) -> Any:
    """The `engine.Loop` that trains the session, whatever its callbacks (TensorBoard too): under a
    distribution strategy with its strategy branch (`distributed.session_loop`: Keras's train_step on
    every replica; Keras 3's fit fails under a multi-worker strategy); else `engine.ArrayLoop` for
    rows held in memory and `engine.StreamLoop` for a stream."""
    cfg, model = s.prep.cfg, s.model
    common = dict(batch_size=cfg.training.batch_size, steps_per_call=int(model.steps_per_execution),
                  class_weight=s.feed.class_weight(cfg), mode=s.prep.mode)
    loop = None
    if s.strategy is not None:
        from nettrain.training import distributed

        loop = distributed.session_loop(s, cursor, **common)
    elif hasattr(s.feed, "train_tensors"):  # rows in memory (ArrayFeed, or a feed that wraps one)
        x, y = s.feed.train_tensors(model)
        front = prefix.split(model, x, y, lambda trainer: compile_model(cfg, trainer, s.prep.dataset.schema,
                                                                        optimizer=model.optimizer))
        loop = ArrayLoop(model, x if front is None else front.features, y, seed=cfg.seed,
                         trainer=None if front is None else front.trainer, **common)
    elif hasattr(s.feed, "epoch_arrays"):  # a stream's windows (StreamFeed)
        feed = s.feed
        loop = StreamLoop(model, lambda epoch: feed.epoch_arrays(model, epoch), steps=feed.steps, **common)
    if loop is None:
        raise TypeError(f"no training loop for a feed of type {type(s.feed).__name__}")
    return loop


def _earlier_best_weights(s: Session, es) -> Callable[[], list] | None:
    """On resume/retrain: the best earlier epoch's weights, from best.h5 when it tracks the same metric."""
    if not s.history or not es.restore_best_weights:
        return None
    best = s.out / rundir.CHECKPOINTS / rundir.BEST
    if not best.exists() or s.monitors["checkpoint"] != es.monitor:
        return None
    # best.h5 follows the checkpoint's rule (no min_delta, its own mode): used only when it holds the epoch
    # that early stopping's rule picks from the same history
    if h5.read_meta(best).get("epoch") != best_epoch(s.history, es.monitor, es.mode, es.min_delta):
        return None
    return lambda: h5.load_model(best, restore_optimizer=False).get_weights()


def _progress(s: Session) -> keras.callbacks.Callback:
    from nettrain.training.progress import PlainProgress, RichProgress, interactive

    stream = sys.stderr  # progress and epoch lines: stderr, whatever stdout carries (docs: Output streams)
    if interactive(stream, s.quiet or s.json_output):
        return RichProgress(s.last_epoch, s.feed.steps, first_epoch=s.first_epoch + 1)
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


