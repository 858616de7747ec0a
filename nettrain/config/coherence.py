"""Which labels, losses, heads and metrics fit each other: one table, used before any training.

`nettrain validate` applies it with what the config alone says (an explicit loss, `labels` or
`task`); `validate --build` and `fit` apply it again once the data gave the task, the classes and
the model's head. A mismatch is a ConfigError saying what was found, what fits and the one-line
fix, instead of a traceback after training started or a silent 0.0. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

from nettrain.config.catalog import normalize

# Losses by the labels they take (names normalized: lower case, no '_').
ONE_HOT_LOSSES = {"categoricalcrossentropy", "categoricalhinge", "kldivergence", "categoricalfocalcrossentropy",
                  "kld", "kullbackleiblerdivergence"}
SPARSE_LOSSES = {"sparsecategoricalcrossentropy"}
BINARY_LOSSES = {"binarycrossentropy", "binaryfocalcrossentropy", "hinge", "squaredhinge", "bce"}
HINGE_LOSSES = {"hinge", "squaredhinge"}
REGRESSION_LOSSES = {"meansquarederror", "mse", "meanabsoluteerror", "mae", "meanabsolutepercentageerror", "mape",
                     "meansquaredlogarithmicerror", "msle", "huber", "huberloss", "logcosh", "logcoshloss", "poisson",
                     "cosinesimilarity"}
MULTICLASS_LOSSES = ONE_HOT_LOSSES | SPARSE_LOSSES | {"categoricalgeneralizedcrossentropy"}
AUTO_METRICS = {"regression": ["mae"], "binary": ["accuracy", "auc"], "multiclass": ["accuracy"]}

# Metrics by the labels they expect.
_SPARSE_METRICS = {"sparsecategoricalaccuracy", "sparsetopkcategoricalaccuracy", "sparsecategoricalcrossentropy"}
_ONE_HOT_METRICS = {"categoricalaccuracy", "topkcategoricalaccuracy", "categoricalcrossentropy"}
_BINARY_METRICS = {"binaryaccuracy", "binarycrossentropy"}
_SCORE_METRICS = {"auc", "precision", "recall", "truepositives", "falsepositives", "truenegatives",
                  "falsenegatives", "precisionatrecall", "recallatprecision", "sensitivityatspecificity",
                  "specificityatsensitivity", "f1score", "fbetascore"}
_CLASSIFICATION_METRICS = _SPARSE_METRICS | _ONE_HOT_METRICS | _BINARY_METRICS | _SCORE_METRICS | {"accuracy", "acc"}

MODE_WORDS = {"binary": "0/1 labels for a 1-unit sigmoid head", "sparse": "integer class labels",
              "one_hot": "one-hot labels", "regression": "numbers (regression)"}


def loss_key(loss: Any) -> str | None:
    name = loss.get("name") if isinstance(loss, dict) else loss
    return normalize(name) if isinstance(name, str) and name != "auto" else None


def loss_task(loss: Any) -> str | None:
    """The task a loss implies: regression, binary, multiclass, or None (auto or task-neutral)."""
    key = loss_key(loss)
    if key in REGRESSION_LOSSES:
        return "regression"
    if key in BINARY_LOSSES:
        return "binary"
    if key in MULTICLASS_LOSSES:
        return "multiclass"
    return None


def mode_from_config(cfg) -> str | None:
    """The label encoding when the config alone decides it (explicit task, loss or labels), else None."""
    if cfg.data.task == "regression":
        return "regression"
    loss = loss_key(cfg.training.loss)
    labels = cfg.preprocessing.labels
    if loss in ONE_HOT_LOSSES or labels == "one_hot":
        return "one_hot"
    if loss in SPARSE_LOSSES or labels == "sparse":
        return "sparse"
    if cfg.data.task == "binary" and loss in BINARY_LOSSES:
        return "binary"
    return None


def _fix_for(mode: str) -> str:
    return {"binary": "accuracy, binary_accuracy or auc", "sparse": "accuracy or sparse_categorical_accuracy",
            "one_hot": "accuracy, categorical_accuracy or auc", "regression": "mae, mse or rmse"}[mode]


def metric_problem(name: str, mode: str, units: int | None = None) -> str | None:
    """Why metric `name` does not fit labels encoded as `mode` (and a head of `units`), or None."""
    key = normalize(name)
    if mode == "regression" and key in _CLASSIFICATION_METRICS:
        return f"'{name}' measures classes but the target is numbers (regression)"
    if mode == "one_hot" and key in _SPARSE_METRICS:
        return f"'{name}' expects integer class labels but the labels are one-hot"
    if mode in ("sparse", "binary") and key in _ONE_HOT_METRICS:
        return f"'{name}' expects one-hot labels but the labels are {MODE_WORDS[mode]}"
    if mode in ("sparse", "one_hot") and key in _BINARY_METRICS:
        return f"'{name}' expects one 0/1 probability per row but the head gives one probability per class"
    if mode == "sparse" and key in _SCORE_METRICS and (units is None or units > 1):
        return (f"'{name}' needs one probability per row (a 1-unit sigmoid head) or one-hot labels, but the labels "
                "are integer classes for a head with one unit per class")
    return None


def auto_metrics(task: str, mode: str) -> list[str]:
    """`training.metrics: auto` for a task whose labels are fed as `mode`: AUTO_METRICS[task], less
    those the labels do not fit (a binary target with `labels: sparse` has a 2-unit softmax head and
    integer labels, which AUC cannot read)."""
    return [m for m in AUTO_METRICS[task] if metric_problem(m, mode) is None]


def metrics_problem(cfg, mode: str, units: int | None = None) -> tuple[tuple, str] | None:
    """(key path, message) for the first configured metric that does not fit, or None."""
    metrics = cfg.training.metrics
    if metrics == "auto":
        return None
    for i, metric in enumerate(metrics):
        name = metric.get("name") if isinstance(metric, dict) else metric
        problem = metric_problem(name, mode, units) if isinstance(name, str) else None
        if problem:
            fix = "mae" if mode == "regression" else "accuracy"
            return ("training", "metrics", i), f"{problem}; fits: {_fix_for(mode)}. Fix: metrics: [{fix}]"
    return None


def loss_problem(loss: Any, mode: str) -> str | None:
    """Why the configured loss does not fit the target, or None (auto always fits)."""
    key = loss_key(loss)
    if key is None:
        return None
    name = loss["name"] if isinstance(loss, dict) else loss
    if mode == "regression" and (key in ONE_HOT_LOSSES | SPARSE_LOSSES | BINARY_LOSSES):
        return (f"'{name}' is a classification loss but the target is numbers (regression); fits: mse, mae, huber. "
                "Fix: loss: auto, or data.task: binary/multiclass if the numbers are classes")
    if mode == "sparse" and key in BINARY_LOSSES:
        return (f"'{name}' takes one 0/1 label per row (or one-hot labels), but the labels are integer classes for a "
                "head with one unit per class; fits: sparse_categorical_crossentropy. Fix: loss: auto, or "
                "preprocessing.labels: one_hot")
    if mode != "regression" and key in REGRESSION_LOSSES:
        return (f"'{name}' is a regression loss but the target is classes; fits: binary_crossentropy (two "
                "classes), sparse_categorical_crossentropy. Fix: loss: auto, or data.task: regression")
    return None


def head_problem(mode: str, units: int, n_classes: int | None, loss: Any) -> str | None:
    """Why a head of `units` outputs does not fit the labels, or None."""
    name = (loss.get("name") if isinstance(loss, dict) else loss) or "auto"
    if mode == "binary" and units != 1:
        return (f"the head has {units} units but loss {name} on a binary target needs 1 sigmoid unit; fix: output: "
                "auto, or loss: sparse_categorical_crossentropy for a 2-unit softmax head")
    if mode in ("sparse", "one_hot") and n_classes is not None and units != n_classes:
        extra = (" (categorical_crossentropy needs one output per class: for a binary target use "
                 "binary_crossentropy with 1 sigmoid unit)") if mode == "one_hot" and units == 1 else ""
        return (f"the head has {units} unit(s) but the target has {n_classes} classes{extra}; fix: output: auto, "
                f"or units: {n_classes}")
    return None
