"""What a trial tells its study of the sweep's metric: each epoch's value, reported to its Optuna trial
with the pruner's verdict coming back (`pruning_callback`, a Keras callback in the trial's training), and
the value of the finished run (`delivered`: the saved model's, as its final metrics measured it).

`trial.py` runs the trial and hands these to the study. Keras is imported inside `pruning_callback`
only, the study and report modules inside the functions that use them, as in the rest of `sweep/`.
"""

from __future__ import annotations

import math
import threading
import time


WAIT_SHARE = 0.1  # of the last epoch's seconds: how long an epoch end waits for a storage pruner's answer


def pruning_callback(study, number: int, metric: str, earliest: float = 0):
    """A Keras callback: report `metric` to trial `number` of `study` (a `Study`) after every epoch; stop
    training when the study's pruner says so.

    Hand-written rather than optuna_integration's (the same few lines) so that the sweep process
    needs no TensorFlow; training stops at the epoch's end, so the run is whole up to it.

    The study's storage is written and read on a thread of its own, off the training's path: the trial
    (Optuna's Trial: one read), then each epoch's `report` (a write each, in order; `on_train_end` waits
    for the last, so the trial is told after every report). The verdict, from step `earliest` on (before,
    the pruner cannot stop a trial: its warm-up), comes by the pruner's kind (`study.judge`):
    - "here" (the median pruner): asked at the epoch's end without waiting for the storage, Optuna's own
      pruner on the values this trial reported and the study's complete trials as the thread last read
      them (after its latest report, usually the previous epoch's): for the same values and trials,
      Trial.should_prune's verdict.
    - "storage" (hyperband): `Trial.should_prune` on the thread after each report; an epoch end waits for
      the answer at most WAIT_SHARE of the epoch's time, and a later answer stops the trial at the next
      epoch end.
    - "none": reports only.

    In a k-fold trial the same callback serves every fold (`next_fold`): fold i's epoch e is step
    (i - 1) * epochs + e, and what the pruner sees is the running mean across folds: the mean of the
    finished folds' values and this epoch's."""
    import queue

    import keras

    from nettrain.sweep import study as ST

    judge = ST.judge(study.pruner)

    class Pruning(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values: list[float] = []
            self.pruned_at: int | None = None
            self.offset = 0                  # steps of the folds before this one
            self.finished: list[float] = []  # the finished folds' values
            self.reported: dict[int, float] = {}  # step -> value, every fold's
            self.verdict: int | None = None  # the step at which the pruner said stop
            self.answered = 0                # the last step the storage pruner answered for
            self.complete: list | None = None  # the study's complete trials as the thread last read them
            self.trial = None                # Optuna's Trial, made on the thread
            self.error: BaseException | None = None
            self.jobs: queue.Queue = queue.Queue()
            self.answer = threading.Condition()
            self.started = time.monotonic()
            self.thread: threading.Thread | None = None

        def on_train_begin(self, logs=None):  # each fold's training too
            self.thread = threading.Thread(target=self._work, name="nettrain-pruner", daemon=True)
            self.thread.start()

        def _work(self) -> None:
            self._safely(self._open)
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                value, step = job
                prune = self.error is None and self._safely(lambda: self._report(value, step))
                with self.answer:
                    self.answered = step
                    if prune and self.verdict is None:
                        self.verdict = step
                    self.answer.notify_all()

        def _safely(self, call) -> bool:
            """call() on the thread; its error is raised in the training's thread at its next epoch end."""
            try:
                return bool(call())
            except BaseException as e:  # noqa: BLE001 - raised in the training thread
                with self.answer:
                    self.error = self.error or e
                    self.answer.notify_all()
                return False

        def _open(self) -> None:
            if self.trial is None:
                self.trial = study.trial(number)
            if judge == "here" and self.complete is None:
                self._read()

        def _report(self, value: float, step: int) -> bool:
            self.trial.report(value, step=step)
            if judge == "storage":
                return self.trial.should_prune()
            if judge == "here" and step + 1 >= earliest and self.jobs.empty():  # the trials the next verdict
                self._read()                                  # rests on (a report waiting: read after it)
            return False

        def _read(self) -> None:
            complete = study.complete()
            with self.answer:
                self.complete = complete
                self.answer.notify_all()

        def next_fold(self, value: float, epochs: int) -> None:
            self.finished.append(value)
            self.offset += epochs
            self.values = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.started
            value = (logs or {}).get(metric)
            if value is None:
                return
            value = float(value)
            self.values.append(value)
            if math.isfinite(value):
                step = self.offset + epoch + 1
                self.reported[step] = (sum(self.finished) + value) / (len(self.finished) + 1)
                self.jobs.put((self.reported[step], step))
                if step >= earliest:  # before, the pruner cannot say stop
                    self._judge(step, seconds)
            if self.error is not None:
                raise self.error
            if self.verdict is not None:
                self.pruned_at = epoch + 1
                self.model.stop_training = True

        def _judge(self, step: int, seconds: float) -> None:
            with self.answer:
                if judge == "storage":
                    self.answer.wait_for(lambda: self.answered >= step, timeout=WAIT_SHARE * seconds)
                    return
                self.answer.wait_for(lambda: self.complete is not None or self.error is not None
                                     or not self.thread.is_alive())
                complete = self.complete
            if judge == "here" and complete is not None and self.verdict is None:
                if study.should_prune(number, self.reported, complete):
                    self.verdict = step

        def on_train_end(self, logs=None):
            """Every report written (the trial is told after this); a stop the pruner said after the
            last epoch ended counts as at that epoch."""
            if self.thread is not None and self.thread.is_alive():
                self.jobs.put(None)
                self.thread.join()
            if self.error is not None:
                raise self.error
            if self.verdict is not None and self.pruned_at is None:
                self.pruned_at = self.verdict - self.offset

    return Pruning()


def best_value(values: list[float], direction: str) -> float | None:
    """The best of a trial's epoch values by the one monitor rule (None without a finite one)."""
    from nettrain.report.metrics import best_of

    return best_of(enumerate(values, 1), direction).best


def delivered(result, metric: str, direction: str) -> tuple[float | None, int | None, int | None]:
    """(value, its epoch, the best epoch) of a finished trial run. The value is `metric` of the model the
    run saved (model.h5: early stopping's restored best epoch when it restores weights, else the last
    epoch) as its final metrics measured it: `val_X` on the validation rows, any other name on the
    training rows; so `nettrain evaluate RUN --split validation` prints it. A metric the final metrics
    lack is read from metrics.csv at the saved model's epoch. The best epoch is the epoch with the
    best logged value of the metric (what the pruner saw)."""
    from nettrain.store import rundir

    record = rundir.RunRecord.load(result.run_dir).data
    epoch = record.get("weights_epoch") or result.epochs_done or None
    history = result.history or []
    logged = [(int(r["epoch"]), r.get(metric)) for r in history]
    from nettrain.report.metrics import best_of, is_finite

    finite = [(e, float(v)) for e, v in logged if is_finite(v)]
    best_epoch = best_of(finite, direction).best_at
    split, name = ("validation", metric[4:]) if metric.startswith("val_") else ("train", metric)
    value = (result.metrics.get(split) or {}).get(name)
    if not is_finite(value):
        value = next((v for e, v in finite if e == epoch), None)
    return (float(value) if value is not None else None), epoch, best_epoch
