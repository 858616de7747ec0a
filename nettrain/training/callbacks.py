"""nettrain's own Keras callbacks, one concern each, arguments checked at construction.

Epochs are counted from 1 wherever a user sees them (Keras passes 0-based indexes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras

from nettrain import keras_compat as compat
from nettrain.errors import JobFailed
from nettrain.report.metrics import BestTracker
from nettrain.store import atomic, guard
from nettrain.store.rundir import BEST, LAST, MetricsCSV

def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """`min` or `max`: the given mode, or for `auto` the one rule of which metrics are better higher."""
    return BestTracker.for_metric(monitor, mode).direction


def current_lr(model: keras.Model) -> float | None:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(opt.learning_rate))
    except Exception:  # an optimizer without a readable rate
        return None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class InterruptPoll(keras.callbacks.Callback):
    """Stops at the first batch or epoch boundary after a SIGINT/SIGTERM (see `store.guard`)."""

    def on_train_batch_end(self, batch, logs=None):
        guard.poll()

    def on_test_batch_end(self, batch, logs=None):
        guard.poll()

    def on_predict_batch_end(self, batch, logs=None):
        guard.poll()

    def on_epoch_begin(self, epoch, logs=None):
        guard.poll()


class EpochRecorder(keras.callbacks.Callback):
    """The end of an epoch as one step: the checkpoint files (written under temporary names first),
    the metrics.csv row (with the learning rate used and the epoch's seconds) and `on_epoch` (run.json)
    land together, so a signal or a crash never leaves them disagreeing about the epochs done.

    What a SIGKILL (which nothing blocks) can still cut is taken in the order a resume recovers from:
    the metrics.csv row first, then the checkpoint's renames, then run.json. A resume continues from
    last.h5's epoch and drops the rows after it (`lifecycle.resume.restore`): a row without its
    checkpoint is an epoch trained again; a checkpoint without its row would be an epoch whose row is
    lost (metrics.csv 2, 3, ... after a resume from 1)."""

    def __init__(self, csv: MetricsCSV, on_epoch: Callable[[int, dict], None] | None = None,
                 checkpointer: "Checkpointer | None" = None, extra: Callable[[int], dict] | None = None):
        super().__init__()
        self.csv, self.on_epoch, self.checkpointer = csv, on_epoch, checkpointer
        self.extra = extra  # epoch (from 1) -> more cells for its row, after `seconds` (gradient_stats)
        self._lr: float | None = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._lr = current_lr(self.model)  # rate at the epoch's first step (after any scheduler)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row: dict[str, Any] = {"epoch": epoch + 1}
        # loss first, then metrics, then their validation counterparts
        for k in sorted((k for k in logs if k != "learning_rate"),
                        key=lambda k: (k.startswith("val_"), k.removeprefix("val_") != "loss")):
            row[k] = float(logs[k])
        row["learning_rate"] = self._lr if self._lr is not None else logs.get("learning_rate")
        row["seconds"] = round(time.perf_counter() - self._t0, 4)
        if self.extra is not None:
            row.update(self.extra(epoch + 1))
        with guard.deferred():  # a first signal lets the checkpoint finish
            plan = self.checkpointer.stage(epoch + 1, logs) if self.checkpointer else None
            with guard.critical():  # renames and two small files: not even a second signal cuts these
                self.csv.append(row)
                if plan is not None:
                    self.checkpointer.commit(plan)
                if self.on_epoch:
                    self.on_epoch(epoch + 1, row)


class NaNGuard(keras.callbacks.Callback):
    """Stops at the first NaN/inf loss and remembers where it happened (epoch from 1, batch from 1)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.where: tuple[int, int] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(loss):
            self.where = (self.epoch, batch + 1)
            self.model.stop_training = True


class StepDecay(keras.callbacks.Callback):
    """lr = initial * drop ** floor((epoch - 1) / every), epochs counted from 1."""

    def __init__(self, initial: float, drop: float, every: int):
        super().__init__()
        if not initial > 0:
            raise ValueError(f"initial learning rate must be > 0, got {initial!r}")
        if not 0 < drop <= 1:
            raise ValueError(f"drop must be in (0, 1], got {drop!r}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.initial, self.drop, self.every = initial, drop, every

    def rate(self, epoch: int) -> float:
        return self.initial * self.drop ** math.floor((epoch - 1) / self.every)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rate(epoch + 1)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras EarlyStopping that can pick up its state (best value, patience used) from the epochs
    a resumed or retrained run already has in metrics.csv.

    `mode="auto"` is resolved here by nettrain's one rule (`monitor_mode`), so Keras, the replay
    of earlier epochs and the best-epoch bookkeeping of the run all compare in the same direction.
    """

    def __init__(self, *, history: list[dict] | None = None, best_weights=None, monitor: str = "val_loss",
                 mode: str = "auto", **kwargs):
        direction = monitor_mode(monitor, mode)
        super().__init__(monitor=monitor, mode=direction, **kwargs)
        self.direction = direction
        self._history = list(history or [])
        self._prior_best_weights = best_weights  # callable -> weights of the best earlier epoch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self._history:
            return
        compat.resume_early_stopping(self, self._history, self.direction)
        if self.restore_best_weights and self.best is not None and self._prior_best_weights is not None:
            self.best_weights = self._prior_best_weights()


@dataclass
class _Plan:
    staged: atomic.Staged
    epoch: int
    value: float | None
    improved: bool
    named: Path | None


class Checkpointer:
    """Full-model checkpoints: last.h5, best.h5 and templated files (.h5, or .keras in the native
    format), written by `EpochRecorder`.

    `save(path, epoch)` writes the .h5 model to `path` (a temporary name; `commit` renames it);
    `save_native(path)` writes a native .keras file.
    """

    def __init__(self, directory: Path, save: Callable[[Path, int], None], *, filename: str = "epoch{epoch:03d}.h5",
                 monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = False,
                 keep: int | None = None, best: float | None = None,
                 save_native: Callable[[Path], None] | None = None):
        from nettrain.config.template import check_template

        check_template(filename)
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep!r}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.save, self.save_native, self.filename, self.monitor = save, save_native, filename, monitor
        self.tracker = BestTracker.for_metric(monitor, mode, best=best)  # Keras's rule, no min_delta
        self.mode = self.tracker.direction
        self.save_best_only, self.keep = save_best_only, keep
        existing = [p for p in self.dir.iterdir() if p.suffix in (".h5", ".keras") and p.name not in (BEST, LAST)
                    and not atomic.is_leftover(p.name)]
        self.kept: list[Path] = sorted(existing, key=lambda p: p.stat().st_mtime)

    @property
    def best(self) -> float | None:
        """The best monitored value so far (best.h5's)."""
        return self.tracker.best

    @property
    def best_epoch(self) -> int | None:
        """The epoch of `best` in this session (None before one improved)."""
        return self.tracker.best_at

    def stage(self, epoch: int, logs: dict) -> _Plan | None:
        """Write this epoch's files under temporary names (None after a diverged epoch: a good
        checkpoint is never replaced by a NaN model)."""
        from nettrain.config.template import render_checkpoint_name

        if not _finite(logs.get("loss", 0.0)):
            return None
        value = logs.get(self.monitor)
        improved = self.tracker.improves(value)
        named = None
        if improved or not self.save_best_only:
            try:
                named = self.dir / render_checkpoint_name(self.filename, epoch, {k: float(v) for k, v in logs.items()})
            except ValueError as err:
                raise JobFailed(f"checkpoint filename {self.filename!r} cannot be filled at epoch {epoch}: {err}") \
                    from None
        with atomic.Staged() as staged:
            last = staged.path(self.dir / LAST)
            self.save(last, epoch)
            if improved:
                staged.copy(last, self.dir / BEST)
            if named is not None and named.suffix == ".keras":
                if self.save_native is None:
                    raise ValueError(f"{named.name}: no native saver for .keras checkpoints")
                self.save_native(staged.path(named))
            elif named is not None:
                staged.copy(last, named)
        return _Plan(staged, epoch, float(value) if improved else None, improved, named)

    def commit(self, plan: _Plan) -> None:
        plan.staged.commit()
        if plan.improved:
            self.tracker.offer(plan.value, plan.epoch)
        if plan.named is not None:
            self.kept = [p for p in self.kept if p != plan.named] + [plan.named]
            while self.keep is not None and len(self.kept) > self.keep:
                self.kept.pop(0).unlink(missing_ok=True)
