"""The baselines a network has to beat: scikit-learn's HistGradientBoosting and a linear model (logistic
regression or ridge on standardized inputs), fitted on the rows nettrain prepared and scored under the
names of nettrain's metrics (no TensorFlow; scikit-learn imported inside the functions that fit).

The rows are the `Split`s of the data stage (`data.load_dataset`), after nettrain's missing-value
policy: the numeric matrix as the model gets it before its own scaling, each categorical column
ordinal-encoded from the fitting rows' categories (a category they lack reads as missing) and declared
categorical to the boosting, one-hot encoded for the linear model; text columns are left out (a note
says so). `Tabular` turns Splits into those matrices; `fit_baselines` fits both models and scores them
on every split; `bench/quality.py` uses the same `Tabular`.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from nettrain.report.metrics import r2_score, roc_auc
from nettrain.store.meta import NUMERIC_INPUT

# The models, by the key `--json` and baseline.json name them, in the order they are shown.
BOOSTING, LINEAR, NETWORK = "hist_gradient_boosting", "linear", "network"

# HistGradientBoosting takes a categorical column of at most this many categories (its max_bins);
# a column with more goes to it as ordinal codes, a number.
MAX_CATEGORIES = 255

# Below this many training rows the baselines run on one thread (`_threads`).
SMALL_ROWS = 20_000

# The linear model's matrix is dense up to this many values (160 MB), sparse beyond.
DENSE_VALUES = 20_000_000

# What a nettrain metric name means to the baselines (the name compacted: lower case, a-z and 0-9 only).
MEANINGS = {
    "accuracy": "accuracy", "acc": "accuracy", "binaryaccuracy": "accuracy", "categoricalaccuracy": "accuracy",
    "sparsecategoricalaccuracy": "accuracy", "auc": "auc", "precision": "precision", "recall": "recall",
    "mae": "mae", "meanabsoluteerror": "mae", "mse": "mse", "meansquarederror": "mse", "rmse": "rmse",
    "rootmeansquarederror": "rmse", "r2": "r2", "r2score": "r2", "mape": "mape",
    "meanabsolutepercentageerror": "mape",
}
# Scored for every task whatever the network logs (the first names, as nettrain's evaluate names them).
CORE = {"binary": ("accuracy", "auc"), "multiclass": ("accuracy", "auc"), "regression": ("mae", "mse", "r2")}
BINARY_ONLY = {"precision", "recall"}


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def metric_names(task: str, network: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(name, meaning) of every metric the baselines report: the network's metric names that a
    baseline can compute (in the network's order, under the network's names, so that they line up),
    then the task's CORE metrics the network does not log. Its loss is never one (the network's
    loss is Keras's, with its regularization and target scaling)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in network:
        meaning = MEANINGS.get(_compact(name))
        if meaning is None or meaning in seen or (meaning in BINARY_ONLY and task != "binary"):
            continue
        if (task == "regression") != (meaning in ("mae", "mse", "rmse", "r2", "mape")):
            continue
        out.append((str(name), meaning))
        seen.add(meaning)
    out += [(m, m) for m in CORE[task] if m not in seen]
    return out


class Tabular:
    """Splits as scikit-learn matrices, encoded from the fitting rows (`fit`) only.

    `ordinal(split)`: the numeric columns (float64), then one column of category codes per categorical
    column (-1 for a category the fitting rows lack: missing to the boosting); `categorical` says which
    columns the boosting takes as categories. `linear(split)`: the numeric columns standardized by the
    fitting rows' mean and standard deviation, then one 0/1 column per category of each categorical
    column (a category the fitting rows lack: all 0)."""

    def __init__(self, schema: Any, fit: Any):
        self.numeric = list(schema.numeric_columns)
        self.categorical_columns = [c.name for c in schema.columns if c.kind == "categorical"]
        self.skipped = [c.name for c in schema.columns if c.kind not in ("numeric", "categorical")]  # text
        self.categories = {name: np.unique(_texts(fit.inputs[name])) for name in self.categorical_columns}
        self.notes: list[str] = []
        if self.skipped:
            self.notes.append(f"text column{'s' if len(self.skipped) > 1 else ''} "
                              f"{', '.join(repr(n) for n in self.skipped)} left out: the baselines take "
                              "numeric and categorical columns only")
        wide = [n for n in self.categorical_columns if len(self.categories[n]) > MAX_CATEGORIES]
        if wide:
            self.notes.append(f"categorical column{'s' if len(wide) > 1 else ''} "
                              f"{', '.join(repr(n) for n in wide)} given to the boosting as ordinal codes (more "
                              f"than {MAX_CATEGORIES} categories, its limit)")
        self.categorical = np.array([False] * len(self.numeric)
                                    + [n not in wide for n in self.categorical_columns], dtype=bool)
        numbers = self._numbers(fit)
        self.mean = numbers.mean(axis=0) if len(numbers) else np.zeros(numbers.shape[1])
        std = numbers.std(axis=0) if len(numbers) else np.ones(numbers.shape[1])
        self.std = np.where(std > 0, std, 1.0)

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.categorical_columns)

    def _numbers(self, split: Any) -> np.ndarray:
        numeric = split.inputs.get(NUMERIC_INPUT)
        if numeric is None or not self.numeric:
            return np.zeros((len(split), 0))
        return np.asarray(numeric, dtype=np.float64).reshape(len(split), -1)

    def _codes(self, split: Any, name: str) -> np.ndarray:
        cats, values = self.categories[name], _texts(split.inputs[name])
        if not len(cats):
            return np.full(len(values), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(cats, values), len(cats) - 1)
        return np.where(cats[at] == values, at, -1)

    def ordinal(self, split: Any) -> np.ndarray:
        parts = [self._numbers(split)]
        parts += [self._codes(split, name).astype(np.float64).reshape(-1, 1) for name in self.categorical_columns]
        return np.concatenate(parts, axis=1)

    def linear(self, split: Any):
        from scipy import sparse

        parts = [sparse.csr_matrix((self._numbers(split) - self.mean) / self.std)]
        for name in self.categorical_columns:
            codes, n_cats = self._codes(split, name), len(self.categories[name])
            known = codes >= 0
            parts.append(sparse.csr_matrix((np.ones(known.sum()), (np.flatnonzero(known), codes[known])),
                                           shape=(len(codes), n_cats)))
        matrix = sparse.hstack(parts, format="csr")
        # dense while it is small (Ridge then solves exactly; LogisticRegression takes either)
        return matrix.toarray() if matrix.shape[0] * matrix.shape[1] <= DENSE_VALUES else matrix

    @property
    def boosting_categorical(self) -> np.ndarray | None:
        """The boosting's `categorical_features` mask (None without a categorical column)."""
        return self.categorical if self.categorical.any() else None


def _texts(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object).reshape(-1).astype(str)


@dataclass
class Scored:
    """One model's metrics per split (`{split: {metric: value}}`), what it is and how long it took to fit."""

    name: str
    estimator: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None                           # why it could not be fitted (then no metrics)

    def to_dict(self) -> dict[str, Any]:
        out = {"estimator": self.estimator, "params": self.params, "seconds": self.seconds, "metrics": self.metrics}
        if self.error:
            out["error"] = self.error
        return out


def estimators(task: str, seed: int, categorical: np.ndarray | None, targets: int = 1) -> dict[str, Any]:
    """{key: unfitted estimator}: HistGradientBoosting at scikit-learn's defaults (random_state the
    config's seed; one per target column of a multi-output regression), and LogisticRegression
    (max_iter 1000) or Ridge, at their defaults otherwise."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        boosting = HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed)
        if targets > 1:
            from sklearn.multioutput import MultiOutputRegressor

            boosting = MultiOutputRegressor(boosting)
        return {BOOSTING: boosting, LINEAR: Ridge()}
    return {BOOSTING: HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed),
            LINEAR: LogisticRegression(max_iter=1000)}


def fit_baselines(schema: Any, splits: Mapping[str, Any], *, seed: int, network: Iterable[str] = (),
                  fit_on: str = "train") -> tuple[list[Scored], list[tuple[str, str]], list[str]]:
    """Both baselines fitted on the rows of `splits[fit_on]`, scored on every split of `splits`
    ({name: Split}, in order). Returns (the models, the (name, meaning) of the metrics, notes)."""
    task = schema.task
    names = metric_names(task, network)
    fit = splits[fit_on]
    table = Tabular(schema, fit)
    notes = list(table.notes)
    if table.width == 0:
        notes.append("no numeric or categorical column: the baselines learn the target's distribution only")
    y_fit = _target(task, fit.y)
    targets = y_fit.shape[1] if y_fit.ndim == 2 else 1
    k = len(schema.class_names or [])
    out = []
    with _threads(len(fit)):
        for key, model in estimators(task, seed, table.boosting_categorical, targets).items():
            out.append(_fit_one(key, model, table, task, names, k, splits, fit, y_fit, notes))
    return out, names, notes


def _threads(rows: int):
    """One OpenMP thread for fewer than SMALL_ROWS rows (the boosting's threads only cost there: 10 s
    instead of 0.2 s for 150 rows on a busy 2-core machine), scikit-learn's own choice otherwise. The
    numbers do not depend on it."""
    import contextlib

    if rows >= SMALL_ROWS:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _fit_one(key: str, model: Any, table: "Tabular", task: str, names: list[tuple[str, str]], k: int,
             splits: Mapping[str, Any], fit: Any, y_fit: np.ndarray, notes: list[str]) -> Scored:
    """`model` fitted on the fitting rows and scored on every split (an error said, not raised)."""
    x_fit = table.ordinal(fit) if key == BOOSTING else table.linear(fit)
    if table.width == 0:
        x_fit = np.zeros((len(fit), 1))
    scored = Scored(key, _estimator_name(model), params=_params(model))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(x_fit, y_fit)
        except ValueError as e:  # one class only, too few rows: said, not raised
            scored.error = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    scored.seconds = round(time.perf_counter() - start, 3)
    for w in caught:
        if issubclass(w.category, Warning) and "converge" in str(w.message).lower():
            notes.append(f"{scored.estimator} did not converge in {getattr(model, 'max_iter', '?')} "
                         "iterations (its numbers are those of the last one)")
            break
    if scored.error is None:
        for split, rows in splits.items():
            if rows is None or not len(rows):
                continue
            x = table.ordinal(rows) if key == BOOSTING else table.linear(rows)
            if table.width == 0:
                x = np.zeros((len(rows), 1))
            scored.metrics[split] = score(task, names, rows.y, model, x, k)
    return scored


def _target(task: str, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if task != "regression":
        return y.reshape(-1).astype(np.int64)
    y = y.astype(np.float64)
    return y.reshape(-1) if y.ndim == 1 or y.shape[1] == 1 else y


def _estimator_name(model: Any) -> str:
    inner = getattr(model, "estimator", None)
    return type(inner if inner is not None else model).__name__


def _params(model: Any) -> dict[str, Any]:
    """The estimator's main parameters (scikit-learn's defaults but random_state and the linear max_iter)."""
    inner = getattr(model, "estimator", None) or model
    wanted = ("random_state", "learning_rate", "max_iter", "max_bins", "early_stopping", "C", "alpha")
    params = inner.get_params()
    out = {k: params[k] for k in wanted if k in params and isinstance(params[k], (int, float, str))}
    if getattr(inner, "categorical_features", None) is not None:
        out["categorical_features"] = int(np.sum(inner.categorical_features))
    return out


def score(task: str, names: list[tuple[str, str]], y: np.ndarray, model: Any, x: Any,
          n_classes: int) -> dict[str, float]:
    """{metric name: value} of a fitted `model` on rows `x` with targets `y`."""
    if task == "regression":
        truth = _target(task, y)
        guess = np.asarray(model.predict(x), dtype=np.float64).reshape(truth.shape)
        return {name: regression_value(meaning, truth, guess) for name, meaning in names}
    truth = _target(task, y)
    proba = np.zeros((len(truth), max(n_classes, 2)))
    proba[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(x)
    guess = proba.argmax(axis=1)
    return {name: class_value(meaning, truth, guess, proba, task) for name, meaning in names}


def class_value(meaning: str, truth: np.ndarray, guess: np.ndarray, proba: np.ndarray, task: str) -> float:
    if meaning == "accuracy":
        return float(np.mean(truth == guess)) if len(truth) else math.nan
    if meaning == "auc":
        return roc_auc(truth, proba[:, 1] if task == "binary" else proba)
    predicted, actual = guess == 1, truth == 1
    hits = float(np.sum(predicted & actual))
    if meaning == "precision":
        return hits / float(predicted.sum()) if predicted.any() else 0.0
    if meaning == "recall":
        return hits / float(actual.sum()) if actual.any() else 0.0
    raise ValueError(f"no classification metric {meaning!r}")


def regression_value(meaning: str, truth: np.ndarray, guess: np.ndarray) -> float:
    err = guess - truth
    if meaning == "mae":
        return float(np.mean(np.abs(err)))
    if meaning == "mse":
        return float(np.mean(err ** 2))
    if meaning == "rmse":
        return float(math.sqrt(np.mean(err ** 2)))
    if meaning == "r2":
        return r2_score(truth, guess)
    if meaning == "mape":  # Keras's: 100 * mean(|error| / max(|truth|, 1e-7))
        return float(100.0 * np.mean(np.abs(err) / np.maximum(np.abs(truth), 1e-7)))
    raise ValueError(f"no regression metric {meaning!r}")
