"""What the user sees while training: a Rich display on a terminal, plain lines otherwise.

The output streams rule (docs/config.md, "Output streams"): progress, epoch lines and notices go
to stderr, for every command and role; stdout carries only results (the final metrics table and
the `run directory:` line, or with --json the one JSON object), which the command line draws from
the result the library returns (`nettrain.render.show_fit`): nothing here writes to stdout."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import keras

from nettrain.report.tables import epoch_line, format_value, make_console
from nettrain.training.callbacks import current_lr


def notice(text: str) -> None:
    """A line about what a command is doing: always on stderr, so that stdout holds only results."""
    print(text, file=sys.stderr, flush=True)


def report_result(metrics: dict[str, Any], out: Path, json_output: bool) -> None:
    """A training session has its result (`metrics`, in `out`). The table and the `run directory:`
    line on stdout are the command's to draw from the result returned (`render.show_fit`); with
    `json_output` (--json, or a session inside another: a k-fold run's fold and refit) the run
    directory is named here, as a notice on stderr, as the session ends."""
    if json_output:
        notice(f"run directory: {out}")


def tell_the_end(es, early, stopped: int | None, weights_epoch: int, last: int) -> None:
    """Say how training ended when it is not the plain last epoch: an early stop (`es` the config of
    the `early` callback), or the weights of an earlier epoch kept."""
    best = f"best {es.monitor} {format_value(early.best)} at epoch {int(early.best_epoch) + 1}" \
        if early.best is not None and math.isfinite(float(early.best)) else f"no finite {es.monitor}"
    kept = f"the model keeps the weights of epoch {weights_epoch}" + (
        " (restore_best_weights)" if weights_epoch != last else ", the last")
    if stopped is not None:
        notice(f"early stopping at epoch {stopped}: {es.monitor} did not improve for {es.patience} epoch(s); "
               f"{best}; {kept}")
    elif weights_epoch != last:
        notice(f"restored the best weights: {best}; {kept}")


def interactive(stream: TextIO, quiet: bool) -> bool:
    if quiet or os.environ.get("NO_COLOR") or os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class PlainProgress(keras.callbacks.Callback):
    """One line per epoch, no control characters: fit for CI logs and pipes."""

    def __init__(self, epochs: int, stream: TextIO | None = None):
        super().__init__()
        self.epochs, self.stream = epochs, stream or sys.stderr
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._lr = current_lr(self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        lr = logs.pop("learning_rate", None) or self._lr
        self.stream.write(epoch_line(epoch + 1, self.epochs, {**logs, **({"learning_rate": lr} if lr else {})},
                                     time.perf_counter() - self._t0) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to undo (the Rich display's counterpart)."""


class RichProgress(keras.callbacks.Callback):
    """Epoch bar, batch bar with live loss and metrics, ETA, on stderr. Updates at most ~10 times a second."""

    live = True  # a person watches: the bar should move at least every second (see feed.lively_steps)

    def __init__(self, epochs: int, steps: int, first_epoch: int = 1):
        super().__init__()
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.epochs, self.steps, self.first = epochs, steps, first_epoch
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=make_console(stderr=True), redirect_stdout=False,  # results stay on stdout
                                 refresh_per_second=8, transient=False)
        self._last = 0.0

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs ", total=self.epochs, completed=self.first - 1, info="")
        self.batch_task = self.progress.add_task("batches", total=self.steps, info="")

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.batch_task, total=self.steps, info="")

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last < 0.1 and batch + 1 < self.steps:
            return
        self._last = now
        info = "  ".join(f"{k} {format_value(float(v))}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.progress.update(self.batch_task, completed=min(batch + 1, self.steps), info=info)

    def on_epoch_end(self, epoch, logs=None):
        info = "  ".join(f"{k} {format_value(float(v))}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.progress.update(self.batch_task, completed=self.steps)
        self.progress.update(self.epoch_task, completed=epoch + 1, info=info)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Stop the live display (also when training ends by an exception), giving the terminal back."""
        self.progress.stop()
