"""One monitor rule (`report.metrics.BestTracker`) and one R² (`report.metrics.r2_score`/`r2_from_sums`).

The tracker is Keras's EarlyStopping/ModelCheckpoint rule: better by more than `min_delta` in the
direction, a tie is no improvement, a value that is not finite never improves. best.h5, the run's
best epoch, the trial's value and the sweep's best trial all ask it, so they agree on one sequence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nettrain.report.metrics import BestTracker, best_of, better_way, r2_from_sums, r2_score

NAN, INF = float("nan"), float("inf")


def test_direction_from_the_name_or_the_mode():
    assert BestTracker.for_metric("val_loss").direction == "min"
    assert BestTracker.for_metric("val_accuracy").direction == "max"
    assert BestTracker.for_metric("val_accuracy", "min").direction == "min"
    assert [better_way(d) for d in ("minimize", "maximize", "min", "max")] == ["min", "max", "min", "max"]
    with pytest.raises(ValueError, match="direction must be"):
        better_way("auto")


@pytest.mark.parametrize("direction, values, best, at", [
    ("min", [3.0, 2.0, 2.5, 1.0], 1.0, 4),
    ("max", [3.0, 2.0, 4.5, 1.0], 4.5, 3),
    ("min", [2.0, 2.0, 2.0], 2.0, 1),          # a tie is no improvement: the first stays
    ("max", [NAN, 1.0, NAN, 0.5], 1.0, 2),     # NaN never improves, not even as the first value
    ("min", [INF, -INF, 5.0, None], 5.0, 3),   # nor does inf, nor a missing value
    ("min", [NAN, None], None, None),
])
def test_best_of_a_sequence(direction, values, best, at):
    tracker = best_of(enumerate(values, 1), direction)
    assert (tracker.best, tracker.best_at) == (best, at)


def test_min_delta_is_keras_rule():
    # better by MORE than min_delta (its absolute value), in the tracker's direction
    down = BestTracker("min", min_delta=-0.1, best=1.0)
    assert down.min_delta == 0.1
    assert not down.improves(0.95) and not down.improves(0.9) and down.improves(0.89)
    up = BestTracker("max", min_delta=0.1, best=1.0)
    assert not up.improves(1.1) and up.improves(1.11)
    assert best_of(enumerate([1.0, 0.95, 0.85, 0.8], 1), "min", min_delta=0.1).best_at == 3


def test_baseline_is_a_bar_not_a_best():
    tracker = BestTracker("min", baseline=0.5)
    assert tracker.offer(0.7, 1) and tracker.best == 0.7   # the first value is the best even above the bar
    assert not tracker.clears_baseline(0.7) and not tracker.clears_baseline(0.5)
    assert tracker.clears_baseline(0.4) and not tracker.clears_baseline(NAN)
    assert BestTracker("max").clears_baseline(-1e9)


def test_a_starting_best_must_be_beaten():
    tracker = BestTracker("min", best=0.3)
    assert not tracker.offer(0.3, 1) and tracker.best_at is None
    assert tracker.offer(0.2, 2) and (tracker.best, tracker.best_at) == (0.2, 2)


@pytest.mark.slow
@pytest.mark.parametrize("mode, min_delta, values", [
    ("min", 0.0, [1.0, 0.8, 0.8, 0.9, 0.7]),
    ("min", 0.15, [1.0, 0.9, 0.8, 0.84, 0.6]),
    ("max", 0.05, [0.5, 0.52, 0.56, 0.56, 0.7, 0.74]),
])
def test_the_tracker_is_keras_early_stopping_rule_on_finite_values(mode, min_delta, values):
    import keras

    keras_es = keras.callbacks.EarlyStopping(monitor="m", mode=mode, min_delta=min_delta, patience=100)
    keras_es.on_train_begin()
    for epoch, value in enumerate(values):
        keras_es.on_epoch_end(epoch, {"m": value})
    ours = best_of(enumerate(values, 1), mode, min_delta=min_delta)
    assert (ours.best, ours.best_at) == (keras_es.best, keras_es.best_epoch + 1)


# ------------------------------------------------------------------ the four users agree

SEQUENCES = {
    "val_loss": [0.5, NAN, 0.4, 0.4, 0.45, INF, 0.41],            # min: 0.4 at epoch 3
    "val_accuracy": [0.5, NAN, 0.7, 0.7, 0.6, INF, -INF],         # max: 0.7 at epoch 3 (inf ignored)
}
EXPECTED = {"val_loss": (0.4, 3), "val_accuracy": (0.7, 3)}


@pytest.mark.slow
@pytest.mark.parametrize("monitor", sorted(SEQUENCES))
def test_checkpoint_and_best_epoch_agree_with_the_tracker(monitor, tmp_path):
    """best.h5 (Checkpointer) and the run's best epoch/value (ending) pick the tracker's epoch."""
    from nettrain.store.rundir import BEST
    from nettrain.training.callbacks import Checkpointer
    from nettrain.training.ending import best_epoch as _best_epoch, best_value as _best_value

    values = SEQUENCES[monitor]
    ck = Checkpointer(tmp_path, lambda path, epoch: path.write_text(str(epoch)), monitor=monitor,
                      save_best_only=True)
    for epoch, value in enumerate(values, 1):
        plan = ck.stage(epoch, {"loss": 0.1, monitor: value})
        ck.commit(plan)
    history = [{"epoch": e, monitor: v} for e, v in enumerate(values, 1)]
    best, at = EXPECTED[monitor]
    assert (ck.best, ck.best_epoch) == (best, at)
    assert (tmp_path / BEST).read_text() == str(at)
    assert (_best_value(history, monitor, "auto"), _best_epoch(history, monitor, "auto")) == (best, at)


@pytest.mark.parametrize("monitor", sorted(SEQUENCES))
def test_trial_value_and_sweep_best_agree_with_the_tracker(monitor):
    """The trial's value (the best of its epochs) and the sweep's best trial (first row) are the tracker's."""
    from nettrain.sweep.metric import best_value
    from nettrain.sweep.run import sort_rows

    values = SEQUENCES[monitor]
    direction = "maximize" if BestTracker.for_metric(monitor).direction == "max" else "minimize"
    best, at = EXPECTED[monitor]
    assert best_value(values, direction) == best
    rows = [{"number": n, "state": "complete", "value": v} for n, v in enumerate(values, 1)]
    rows.append({"number": 0, "state": "failed", "value": None})
    ranked = sort_rows(rows, direction)
    assert (ranked[0]["value"], ranked[0]["number"]) == (best, at)
    not_finite = [n for n, v in enumerate(values, 1) if not math.isfinite(v)]
    assert [r["number"] for r in ranked[-len(not_finite) - 1:]] == not_finite + [0]  # then the failed trial


# ------------------------------------------------------------------ one R²: scikit-learn's

@pytest.mark.parametrize("y_true, y_pred", [
    ([1, 2, 3, 4], [1, 2, 3, 4]),
    ([1, 2, 3, 4], [2.5, 2.5, 2.5, 2.5]),
    ([1, 2, 3], [1, 2, 4]),
    ([2, 2, 2], [2, 2, 2]),                    # a constant target predicted exactly: 1
    ([2, 2, 2], [1, 2, 3]),                    # a constant target missed: 0
    ([[1, 5], [2, 5], [3, 5]], [[1, 5], [2, 5], [4, 5]]),    # per output, then averaged
    ([[1, 5], [2, 5], [3, 5]], [[1, 4], [2, 5], [3, 6]]),
])
def test_r2_is_scikit_learns(y_true, y_pred):
    from sklearn.metrics import r2_score as sklearn_r2

    assert r2_score(y_true, y_pred) == pytest.approx(sklearn_r2(y_true, y_pred, force_finite=True))
    t, p = np.asarray(y_true, dtype=float).reshape(len(y_true), -1), np.asarray(y_pred, dtype=float)
    p = p.reshape(len(y_pred), -1)
    sums = r2_from_sums(((t - p) ** 2).sum(axis=0), ((t - t.mean(axis=0)) ** 2).sum(axis=0), len(t))
    assert sums == pytest.approx(sklearn_r2(y_true, y_pred))


def test_r2_of_one_row_is_nan_as_scikit_learns():
    import warnings

    from sklearn.metrics import r2_score as sklearn_r2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(sklearn_r2([1.0], [2.0]))
    assert math.isnan(r2_score([1.0], [2.0])) and math.isnan(r2_from_sums([1.0], [0.0], 1))
