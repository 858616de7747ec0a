"""A bootstrap 95% interval of a model's test metrics, from its per-row outputs (numpy only).

`test_interval` is what metrics.json `test_interval` holds: the percentile bootstrap (RESAMPLES
resamples of the test rows with replacement, a fixed seed) of a small set of metrics computed by
numpy from the outputs, whatever the config's `training.metrics` lists:

- classification: `accuracy` (of the classes the caller says the model predicts), and `auc` (ROC AUC of
  the positive class's score) when there are two classes;
- regression: `mae`, `rmse` and `r2` (R² of each output averaged, as Keras's R2Score does).

The cost is bounded: at most MAX_ROWS rows (a seeded sample of them beyond), and every resample is a
row of counts (how often each row was drawn) multiplied with per-row values, a few resamples at a time,
so no resample is ever sorted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
MAX_ROWS = 100_000
_CELLS = 4_000_000  # counts held at once: resamples per pass x rows


def test_interval(pred: np.ndarray, y: np.ndarray, classes: np.ndarray | None = None, *,
                  n_classes: int | None = None, resamples: int = RESAMPLES, seed: int = SEED,
                  of_rows: int | None = None) -> dict[str, Any] | None:
    """metrics.json `test_interval` for the outputs `pred` of the test rows with labels `y` (class indices
    or target values) and, for a classifier, the `classes` it predicts (`model.outputs.predicted_classes`;
    None: a regression): {"level", "resamples", "seed", "rows" (the rows resampled), "of_rows" (the test
    rows there are), "metrics": {name: {"value", "low", "high"}}}; None when there are no rows."""
    pred = np.asarray(pred, dtype=np.float64)
    n = len(pred)
    if n == 0:
        return None
    pred = pred.reshape(n, -1)
    y = np.asarray(y)
    of_rows = n if of_rows is None else int(of_rows)
    rng = np.random.default_rng(seed)
    if n > MAX_ROWS:
        keep = np.sort(rng.choice(n, MAX_ROWS, replace=False))
        pred, y, n = pred[keep], y[keep], MAX_ROWS
        classes = None if classes is None else np.asarray(classes)[keep]
    values = _row_values(pred, y, classes, n_classes)
    if not values:
        return None
    point = {name: f(np.ones((1, n))) for name, f in values.items()}
    draws = {name: [] for name in values}
    step = max(1, _CELLS // n)
    done = 0
    while done < resamples:
        b = min(step, resamples - done)
        counts = _counts(rng, n, b)
        for name, f in values.items():
            draws[name].append(f(counts))
        done += b
    tail = (1 - LEVEL) / 2 * 100
    metrics = {}
    for name, parts in draws.items():
        found = np.concatenate(parts)
        found = found[np.isfinite(found)]
        value = float(point[name][0])
        if not np.isfinite(value) or len(found) == 0:
            continue
        low, high = np.percentile(found, [tail, 100 - tail])
        metrics[name] = {"value": round(value, 6), "low": round(float(low), 6), "high": round(float(high), 6)}
    return {"level": LEVEL, "resamples": resamples, "seed": seed, "rows": n, "of_rows": of_rows,
            "metrics": metrics}


def _counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """(b, n): how many times each of n rows was drawn in each of b resamples of n draws."""
    out = np.empty((b, n), dtype=np.float32)
    for i in range(b):
        out[i] = np.bincount(rng.integers(0, n, size=n, dtype=np.int32), minlength=n)
    return out


def _row_values(pred: np.ndarray, y: np.ndarray, classes: np.ndarray | None, n_classes: int | None):
    """{metric: f(counts (b, n)) -> (b,) values}: each metric of a resample from its row counts."""
    n = len(pred)
    if classes is None:
        truth = y.astype(np.float64).reshape(n, -1)
        k = min(truth.shape[1], pred.shape[1])
        truth, pred = truth[:, :k], pred[:, :k]
        err = pred - truth
        abs_err, sq_err = np.abs(err).mean(axis=1), (err ** 2).mean(axis=1)
        y1, y2, se = truth, truth ** 2, err ** 2

        def r2(c: np.ndarray) -> np.ndarray:
            w = c.sum(axis=1, keepdims=True)
            sst = c @ y2 - (c @ y1) ** 2 / w
            with np.errstate(divide="ignore", invalid="ignore"):
                per_output = 1 - (c @ se) / sst
            return per_output.mean(axis=1)

        return {"mae": lambda c: (c @ abs_err) / n, "rmse": lambda c: np.sqrt((c @ sq_err) / n), "r2": r2}
    labels = y.astype(np.int64).reshape(-1)
    correct = np.asarray(classes).reshape(-1) == labels
    two = (n_classes == 2) if n_classes is not None else pred.shape[1] <= 2
    if not (two and len(np.unique(labels)) == 2):
        return {"accuracy": lambda c: (c @ correct.astype(np.float32)) / n}
    score = pred[:, 0] if pred.shape[1] == 1 else pred[:, 1]
    order = np.argsort(score, kind="stable")  # the rows in score order (a resample's counts are alike in any order)
    return {"accuracy": lambda c: (c @ correct[order].astype(np.float32)) / n,
            "auc": _auc(score[order], labels[order])}


def _auc(score: np.ndarray, labels: np.ndarray):
    """ROC AUC of a resample from its row counts (rows sorted by `score`), ties grouped: a tie between
    a positive and a negative row counts one half."""
    positive = (labels == 1).astype(np.float32)
    negative = 1 - positive
    starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])
    ties = len(starts) < len(score)

    def auc(c: np.ndarray) -> np.ndarray:
        pos, neg = c * positive, c * negative
        if ties:
            pos, neg = np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives with a lower score (float32: exact up to 2**24 rows)
        total_pos, total_neg = pos.sum(axis=1, dtype=np.float64), neg.sum(axis=1, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (pos * (below + 0.5 * neg)).sum(axis=1, dtype=np.float64) / (total_pos * total_neg)

    return auc
