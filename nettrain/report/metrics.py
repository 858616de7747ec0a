"""Which way is better for a metric: the one rule nettrain uses (no TensorFlow here).

`metric_direction("val_loss") == "min"`, `metric_direction("accuracy") == "max"`. Used to sort
runs (`nettrain runs --sort`), to say which run is better in `nettrain compare` and to mark
the best epoch; `evaluate --fail-under`, the checkpoint/early-stopping `mode: auto` and
`sweep.direction: auto` ask the same question and should get the same answer from here.

Also the one monitor rule, `BestTracker` ("is this value better than the best so far": best.h5,
the run's best epoch, a sweep trial's value, the sweep's best trial), the one R² (`r2_score`,
`r2_from_sums`: scikit-learn's) and the one exact ROC AUC (`roc_auc`: scikit-learn's `roc_auc_score`,
for evaluate's `auc_exact` and the baselines' `auc`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

# Checked on the name lower-cased, with a `val_` prefix (or a `split.` prefix) and every
# character other than a-z and 0-9 dropped: `val_Mean-Squared-Error` -> `meansquarederror`.
LOWER_EXACT = frozenset({
    "loss", "mae", "mse", "rmse", "msle", "mape", "logcosh", "poisson", "kld", "kldivergence",
    "falsepositives", "falsenegatives", "crossentropy", "huber",
})
LOWER_PARTS = ("loss", "crossentropy", "error", "hinge", "divergence", "poisson", "logcosh")
HIGHER_PARTS = ("acc", "auc", "precision", "recall", "f1", "fbeta", "r2", "iou", "truepositives",
                "truenegatives", "correlation", "similarity", "specificity", "sensitivity")


def _compact(metric: str) -> str:
    name = str(metric).strip().lower()
    name = name.rpartition(".")[2]  # `test.accuracy` -> `accuracy`
    if name.startswith("val_"):
        name = name[4:]
    return re.sub(r"[^a-z0-9]", "", name)


def metric_direction(metric: str, default: str = "min") -> str:
    """"max" when a higher value of `metric` is better, "min" when a lower one is.

    Loss-like names win (`loss`, `mae`, `mse`, `rmse`, anything with `loss`, `crossentropy`,
    `error`, `hinge`, `divergence`, ... and the false positive/negative counts): "min". Then
    score-like names (`accuracy` and every `*acc*`, `auc`, `precision`, `recall`, `f1`, `fbeta`,
    `r2`, `iou`, true positive/negative counts, `correlation`, `cosine_similarity`,
    `specificity`, `sensitivity`): "max". A name that says neither (a custom metric, `mean`)
    gets `default`: "min" as Keras's `mode="auto"` does; a lower-bound gate passes "max".
    """
    if default not in ("min", "max"):
        raise ValueError(f"default must be 'min' or 'max', got {default!r}")
    compact = _compact(metric)
    if compact in LOWER_EXACT or any(part in compact for part in LOWER_PARTS):
        return "min"
    if any(part in compact for part in HIGHER_PARTS):
        return "max"
    return default


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination, scikit-learn's `r2_score` (`force_finite=True`, outputs averaged
    uniformly): the one R² of nettrain (the predicted-vs-actual plot; evaluate through `r2_from_sums`).
    Values of shape (rows,) or (rows, outputs)."""
    import numpy as np

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    rows = len(t) if t.ndim else 0
    t, p = t.reshape(rows, -1), p.reshape(rows, -1)
    sst = ((t - t.mean(axis=0)) ** 2).sum(axis=0) if rows else np.zeros(t.shape[1])
    return r2_from_sums(((t - p) ** 2).sum(axis=0), sst, rows)


def r2_from_sums(sse: Any, sst: Any, rows: int) -> float:
    """R² from per-output sums: `sse` of the squared errors, `sst` of the actual values' squared
    deviations from their mean. scikit-learn's rule: 1 - sse/sst per output, 1.0 when both are 0 (a
    constant target predicted exactly), 0.0 when only `sst` is (a constant target missed); the
    outputs' mean; NaN with fewer than 2 rows."""
    import numpy as np

    if rows < 2:
        return math.nan
    sse, sst = np.atleast_1d(np.asarray(sse, dtype=float)), np.atleast_1d(np.asarray(sst, dtype=float))
    scores = np.ones_like(sse)
    valid = (sst != 0) & (sse != 0)
    scores[valid] = 1.0 - sse[valid] / sst[valid]
    scores[(sse != 0) & (sst == 0)] = 0.0
    return float(np.mean(scores))


def roc_auc(y_true: Any, scores: Any) -> float:
    """The exact area under the ROC curve: scikit-learn's `roc_auc_score` on every score (Keras's `AUC`
    metric approximates it with 200 thresholds). `y_true`: class indices (rows,); `scores`: (rows,) or
    (rows, 1) the positive class's score (binary), or (rows, classes) one score per class: one-vs-rest,
    the mean over the classes (macro) that `y_true` holds together with others (scikit-learn's
    `multi_class="ovr", average="macro"` when every class is present; it refuses the rows otherwise).
    NaN when no class can be told from another (one class only, or no rows)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64).reshape(len(y), -1) if len(y) else np.zeros((0, 1))
    if s.shape[1] == 1:
        both = len(y) and (y == 1).any() and (y != 1).any()
        return float(roc_auc_score(y == 1, s[:, 0])) if both else math.nan
    per_class = [roc_auc_score(y == c, s[:, c]) for c in range(s.shape[1]) if (y == c).any() and (y != c).any()]
    return float(np.mean(per_class)) if per_class else math.nan


def better_way(direction: str) -> str:
    """"min" or "max" from a direction as nettrain ("min"/"max") or Optuna ("minimize"/"maximize") says it."""
    way = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}.get(str(direction).lower())
    if way is None:
        raise ValueError(f"direction must be min, max, minimize or maximize, got {direction!r}")
    return way


class BestTracker:
    """"Is this value better than the best so far": the one monitor rule of nettrain (best.h5, the
    run's best epoch, the trial's value and the sweep's best trial; Keras's own EarlyStopping, and
    `keras_compat.resume_early_stopping` that replays it, follow the same rule on finite values).

    Keras's rule (`EarlyStopping`, `ModelCheckpoint`): better means beyond the best by more than
    `min_delta` (its absolute value) in the direction, so a tie is no improvement and the first of
    equal values stays the best. A value that is not a finite number (NaN, inf, None) never
    improves. `baseline`: the bar early stopping's patience must clear (`clears_baseline`); it does
    not change the best. `best`: the best to start from (a resumed run's).
    """

    def __init__(self, direction: str, *, min_delta: float = 0.0, baseline: float | None = None,
                 best: float | None = None, best_at: Any = None):
        self.direction = better_way(direction)
        self.min_delta = abs(float(min_delta))
        self.baseline = baseline
        self.best, self.best_at = best, best_at

    @classmethod
    def for_metric(cls, monitor: str, mode: str = "auto", **kwargs: Any) -> "BestTracker":
        """A tracker for `monitor`; `mode: auto` takes the direction from its name (`metric_direction`)."""
        return cls(metric_direction(monitor) if mode == "auto" else mode, **kwargs)

    def better(self, value: Any, reference: float | None) -> bool:
        """Whether `value` beats `reference` (any finite value beats None)."""
        if not is_finite(value):
            return False
        if reference is None:
            return True
        value = float(value)
        return value + self.min_delta < reference if self.direction == "min" else value - self.min_delta > reference

    def improves(self, value: Any) -> bool:
        """Whether `value` beats the best so far."""
        return self.better(value, self.best)

    def clears_baseline(self, value: Any) -> bool:
        """Whether `value` beats the baseline (always, without one)."""
        return self.baseline is None or self.better(value, self.baseline)

    def offer(self, value: Any, at: Any = None) -> bool:
        """Take `value` (seen at `at`: an epoch, a trial number) as the best when it improves; whether it did."""
        if not self.improves(value):
            return False
        self.best, self.best_at = float(value), at
        return True


def best_of(values: Iterable[tuple[Any, Any]], direction: str, *, min_delta: float = 0.0) -> BestTracker:
    """The tracker after offering every (at, value) in order: `.best`, `.best_at` (None, None without a finite value)."""
    tracker = BestTracker(direction, min_delta=min_delta)
    for at, value in values:
        tracker.offer(value, at)
    return tracker


def is_finite(value: Any) -> bool:
    """Whether `value` is a finite number (not None, NaN, inf or text)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
