"""How a training session ends: `finish` (how training ended, then the final files: model.h5,
metrics.json with the test split's interval, plots, run.json `completed`, MODEL.md), the final
metrics of every split (`evaluate_splits`, rows in memory by `held`), the work left for after a
result under `after_result()` (a sweep trial's plots), and the one rule of the best epoch
(`best_epoch`, `best_value`). Split from `training.fit`, which runs the epochs and calls `finish`.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

import keras

from nettrain.errors import JobFailed
from nettrain.model.outputs import predicted_classes
from nettrain.report.metrics import BestTracker
from nettrain.report.tables import format_value
from nettrain.store import atomic, guard, h5, rundir
from nettrain.training import callbacks as cb
from nettrain.training.engine import HeldRows, predict_rows
from nettrain.training.feed import Feed, evaluation_batch
from nettrain.training.progress import notice, report_result, tell_the_end
from nettrain.training.runfiles import split_rows, write_card

if TYPE_CHECKING:
    from nettrain.training.fit import Session, SessionCallbacks


@dataclass
class FitResult:
    run_dir: Path
    status: str
    metrics: dict[str, dict[str, float]]
    epochs_done: int = 0
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    test_interval: dict[str, Any] | None = None   # metrics.json `test_interval` (report.interval)

    def to_json(self) -> dict[str, Any]:
        """What `--json` prints: the run directory, the files in it, the final metrics (split keys) and
        the test split's bootstrap interval (`test_interval`, when there is one)."""
        interval = {"test_interval": self.test_interval} if self.test_interval else {}
        return {"run_dir": str(self.run_dir), "files": rundir.run_files(self.run_dir), **self.metrics, **interval}




@dataclass
class _Ending:
    history: list[dict[str, Any]]
    epochs_done: int
    best_epoch: int | None
    stopped: int | None
    weights_epoch: int | None = None   # the epoch whose weights model.h5 holds (early stopping's restored best)


def finish(s: Session, kit: SessionCallbacks) -> FitResult:
    """How training ended, then the final files: model.h5 (and model.keras), metrics.json (with the test
    split's bootstrap interval), plots, run.json `completed`, and MODEL.md."""
    end = _ending(s, kit)
    model, out, record, cfg = s.model, s.out, s.record, s.prep.cfg
    later = _LATER[-1] if _LATER else None  # after_result(): the plots wait until the result is reported
    h5.save_model(model, out / rundir.MODEL, kit.meta(end.epochs_done, end.weights_epoch))
    if cfg.output.keras:
        h5.export_keras(model, out / rundir.KERAS_EXPORT)
    guard.poll()
    plots_now = cfg.output.plots and later is None
    held, pred = held_out(s.feed, s.model) if plots_now or split_rows(s.prep.dataset)["test"] else (None, None)
    # the plots are drawn (matplotlib, on the host) while the final evaluation runs (TensorFlow)
    drawing = _Drawing(_plots(s, end.history, end.best_epoch, held, pred)) if plots_now else None
    try:
        metrics = evaluate_splits(model, s.feed)
    finally:
        if drawing is not None:
            drawing.finish()
    interval = held_interval(s.prep, held, pred)
    atomic.write_json(out / rundir.METRICS_JSON, {**metrics, **({"test_interval": interval} if interval else {})})
    guard.poll()
    record.update(status="completed", ended=rundir.now(), final_metrics=metrics)
    if later is None:
        write_card(out)
    best_file = out / rundir.CHECKPOINTS / rundir.BEST
    if end.best_epoch is not None and best_file.exists():
        value = next((r.get(s.monitors["best"]) for r in end.history if int(r["epoch"]) == end.best_epoch), None)
        notice(f"best epoch {end.best_epoch} ({s.monitors['best']} {format_value(value)}); best checkpoint: "
               f"{best_file}")
    from nettrain.training import tracking

    if later is None:
        tracking.finish_session(kit.all, out, metrics)  # tracking.mlflow: final metrics, files, FINISHED
    else:
        later.append(_after_result(s, kit, end, held, pred, metrics))
    report_result(metrics, out, s.json_output)
    return FitResult(out, "completed", metrics, end.epochs_done, end.best_epoch, end.stopped, end.history,
                     test_interval=interval)


_LATER: list[list[Callable[[], None]]] = []  # the innermost after_result() block's list


@contextlib.contextmanager
def after_result() -> Any:
    """Within the block, the end of each session that no result depends on (its plots, MODEL.md, then its
    MLflow run's final metrics, files and status) is not done by `train` but added to the list this
    yields, for the caller to run once it has reported the result (a sweep trial: after the study is
    told). Until they run, the run is `completed` with every file but `plots/` and MODEL.md."""
    jobs: list[Callable[[], None]] = []
    _LATER.append(jobs)
    try:
        yield jobs
    finally:
        _LATER.remove(jobs)


def later(job: Callable[[], None]) -> None:
    """`job` after the result within an `after_result()` block (in order), else now."""
    if _LATER:
        _LATER[-1].append(job)
    else:
        job()


def _after_result(s: Session, kit: SessionCallbacks, end: "_Ending", held: Any, pred: np.ndarray | None,
                  metrics: dict[str, dict[str, float]]) -> Callable[[], None]:
    """What `_finish` leaves for after the result under `after_result()`: the plots, drawn from the
    held-out rows' outputs (the model is still in memory), MODEL.md, then the MLflow run's end."""
    def run() -> None:
        from nettrain.training import tracking

        try:
            if s.prep.cfg.output.plots:
                rows, outputs = (held, pred) if held is not None else held_out(s.feed, s.model)
                _plots(s, end.history, end.best_epoch, rows, outputs)()
        finally:
            write_card(s.out)
            tracking.finish_session(kit.all, s.out, metrics)

    return run


def _ending(s: Session, kit: SessionCallbacks) -> _Ending:
    """Epochs done, best and early-stopped epoch, recorded in run.json; a NaN loss fails the run."""
    record, early = s.record, kit.early
    es = s.prep.cfg.callbacks.early_stopping
    history = kit.csv.read()
    stopped = int(early.stopped_epoch) + 1 if early is not None and early.stopped_epoch else None
    if stopped is None and s.first_epoch >= s.last_epoch:
        stopped = record.data.get("stopped_epoch")  # finishing a run that had stopped early
    # early stopping's rule (its min_delta too) when it is on: run.json's best epoch is the one it restores
    best = best_epoch(history, s.monitors["best"], es.mode if es else "auto", es.min_delta if es else 0.0)
    if kit.nan_guard.where is not None:
        epoch, batch_no = kit.nan_guard.where
        record.update(status="failed", ended=rundir.now(), best_epoch=best,
                      error=f"loss became NaN at epoch {epoch}, batch {batch_no}")
        last = s.out / rundir.CHECKPOINTS / rundir.LAST
        raise JobFailed(f"the loss became NaN/inf at epoch {epoch}, batch {batch_no}: training diverged. "
                        "Try a lower learning rate (training.optimizer.learning_rate), scaled inputs "
                        "(preprocessing.numeric: standard) or gradient clipping (clipnorm)."
                        + (f" Last good checkpoint: {last}" if last.exists() else ""))

    epochs_done = int(history[-1]["epoch"]) if history else s.first_epoch
    weights_epoch = epochs_done
    if early is not None and es.restore_best_weights and early.best_weights is not None:
        weights_epoch = int(early.best_epoch) + 1
    if s.first_epoch < s.last_epoch and early is not None:
        tell_the_end(es, early, stopped, weights_epoch, epochs_done)
    # Recorded before the final files, so a run stopped early and interrupted now is finished, not continued.
    record.update(epochs_done=epochs_done, best_epoch=best, stopped_epoch=stopped,
                  weights_epoch=weights_epoch)
    return _Ending(history, epochs_done, best, stopped, weights_epoch)



def _best(history: list[dict], monitor: str, mode: str, min_delta: float = 0.0) -> BestTracker:
    """The run's best epoch (`best_at`) and value (`best`) in `history`, by the one monitor rule."""
    tracker = BestTracker.for_metric(monitor, mode, min_delta=min_delta)
    for row in history:
        tracker.offer(row.get(monitor), int(row["epoch"]))
    return tracker


def best_epoch(history: list[dict], monitor: str, mode: str, min_delta: float = 0.0) -> int | None:
    return _best(history, monitor, mode, min_delta).best_at


def best_value(history: list[dict], monitor: str, mode: str) -> float | None:
    return _best(history, monitor, mode).best



def evaluate_splits(model: keras.Model, feed: Feed) -> dict[str, dict[str, float]]:
    """The final metrics: {split: {metric: value}} of the model on the feed's evaluation data."""
    from nettrain.training import distributed

    if distributed.needs_own_evaluation(model):  # built under a strategy: Keras's evaluate may fail there
        return distributed.evaluate_feed(model, feed, callbacks=[cb.InterruptPoll()])
    rows_held = held_rows(feed, model)
    if rows_held:
        return {name: rows.evaluate(model, [cb.InterruptPoll()]) for name, rows in rows_held.items()}
    out: dict[str, dict[str, float]] = {}
    for name, ds in feed.evaluation(model).items():
        try:
            result = model.evaluate(ds, verbose=0, return_dict=True, callbacks=[cb.InterruptPoll()])
        except Exception:
            failure = getattr(feed, "failure", None)  # a streamed file that could not be read again
            if failure is not None:
                raise failure from None
            raise
        out[name] = {k: float(v) for k, v in result.items()}
    return out


def held_rows(feed: Feed, model: keras.Model, names: tuple[str, ...] | None = None) -> dict[str, HeldRows]:
    """{split: `engine.HeldRows`} of a feed whose rows are in memory (`split_tensors`), else {}: those
    are evaluated by one traced graph instead of `model.evaluate`'s tf.data pipeline."""
    tensors = getattr(feed, "split_tensors", None)
    if tensors is None:
        return {}
    batch = evaluation_batch(feed.batch_size)
    return {name: HeldRows(x, y, batch_size=batch)
            for name, (x, y) in (tensors(model) if names is None else tensors(model, names)).items()}


class _Drawing(threading.Thread):
    """`draw()` on a thread of its own; `finish()` waits for it and raises what it raised."""

    def __init__(self, draw: Callable[[], None]):
        super().__init__(name="nettrain-plots", daemon=True)
        self.draw, self.error = draw, None
        self.start()

    def run(self) -> None:
        try:
            self.draw()
        except BaseException as e:  # noqa: BLE001 - raised again in the caller by finish()
            self.error = e

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def held_out(feed: Feed, model: keras.Model) -> tuple[Any, np.ndarray | None]:
    """The held-out rows of the final plots and the test interval (`Feed.holdout`: the test split, else
    the validation split) and the model's outputs for them; (None, None) when there are none."""
    held = feed.holdout(model)
    return held, (None if held is None else predict_rows(model, held.x, between=guard.poll))


def held_interval(prep: Any, held: Any, pred: np.ndarray | None) -> dict[str, Any] | None:
    """metrics.json `test_interval`: the bootstrap 95% interval of the test metrics (`report.interval`)
    from the model's outputs for the test rows (a stream's: the first HOLDOUT_ROWS of them) of the
    session's `fit.Prepared`; None without test rows."""
    if held is None or pred is None or held.name != "test" or held.y is None:
        return None
    from nettrain.report.interval import test_interval as bootstrap

    mode = prep.mode
    classes = None if mode == "regression" else predicted_classes(pred, mode, prep.threshold)
    return bootstrap(pred, held.y, classes, n_classes=prep.n_classes, of_rows=split_rows(prep.dataset)["test"])


def _plots(s: Session, history: list[dict], best_epoch: int | None, held: Any,
           pred: np.ndarray | None) -> Callable[[], None]:
    """The drawing of the plots from the held-out rows' outputs (`held_out`), which touches nothing
    of TensorFlow's."""
    from nettrain.report import plots

    plot_dir = s.out / rundir.PLOTS
    mode, names, threshold = s.prep.mode, s.prep.dataset.schema.class_names, s.prep.threshold

    def draw() -> None:
        plot_dir.mkdir(exist_ok=True)
        if history:
            from nettrain.report.gradients import gradient_columns, gradients_plot, without_gradients

            columns = {k: [r.get(k) for r in history] for k in history[0]}
            plots.learning_curves(without_gradients(columns), plot_dir / "learning_curves.png",
                                  best_epoch=best_epoch, monitor=s.monitors["best"])
            if gradient_columns(columns):
                gradients_plot(columns, plot_dir / "gradients.png")
        if held is None:
            return
        if mode == "regression":
            plots.predicted_vs_actual(np.asarray(held.y).reshape(len(pred), -1)[:, 0], pred[:, 0],
                                      plot_dir / "predicted_vs_actual.png")
        else:
            from sklearn.metrics import confusion_matrix

            labels = predicted_classes(pred, mode, threshold)
            matrix = confusion_matrix(held.y, labels, labels=list(range(len(names))))
            plots.confusion_matrix_plot(matrix, names, plot_dir / "confusion_matrix.png")

    return draw
