"""Which way is better for a metric: the one rule nettrain uses (no TensorFlow here).

`metric_direction("val_loss") == "min"`, `metric_direction("accuracy") == "max"`. Used to sort
runs (`nettrain runs --sort`), to say which run is better in `nettrain compare` and to mark
the best epoch; `evaluate --fail-under`, the checkpoint/early-stopping `mode: auto` and
`sweep.direction: auto` ask the same question and should get the same answer from here.
"""

from __future__ import annotations

import math
import re
from typing import Any

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
    """Coefficient of determination (as scikit-learn computes it), NaN when the actual values are
    constant: the one R² of nettrain (evaluate, the predicted-vs-actual plot)."""
    import numpy as np

    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    ss_tot = float(np.sum((t - t.mean()) ** 2)) if t.size else 0.0
    if ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot
