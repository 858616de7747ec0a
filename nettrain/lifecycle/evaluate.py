"""`nettrain evaluate`: measure a trained model on its run's own split or on a data file.

The Keras metrics come from the model's own compiled metrics (`model.evaluate` on the same
batches `fit` used), so evaluating a run's `model.h5` on its test split gives exactly the test
numbers in `metrics.json`. On top of them: classification gets sklearn's per-class report and
the confusion matrix, regression gets MAE, MSE, RMSE and R2. `--fail-under` gates turn the
result into an exit code for CI.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nettrain.errors import GateFailed, UsageError
from nettrain.lifecycle.target import Target, resolve_target
from nettrain.store import atomic, h5, rundir

# TensorFlow is imported only once a model is loaded, so a bad TARGET, data file or argument is
# reported without paying for the TensorFlow start-up.

SPLITS = ("test", "validation", "train")

# Metric names (after lower-casing, with `val_` and punctuation dropped) where lower is better.
_LOWER_EXACT = {"loss", "mae", "mse", "rmse", "msle", "mape", "logcosh", "poisson", "kld", "kldivergence",
                "falsepositives", "falsenegatives", "crossentropy"}
_LOWER_PARTS = ("loss", "crossentropy", "error", "hinge", "divergence", "poisson", "logcosh")


# ------------------------------------------------------------------------------ gates

@dataclass
class Gate:
    metric: str
    bound: float
    value: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    @property
    def relation(self) -> str:
        return ">=" if self.higher_is_better else "<="

    @property
    def passed(self) -> bool:
        if self.value is None or not math.isfinite(self.value):
            return False
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def describe(self) -> str:
        """`accuracy 0.8100 >= 0.99 required: MISSED`."""
        from nettrain.report.tables import format_value

        return (f"{self.metric} {format_value(self.value)} {self.relation} {self.bound:g} required: "
                f"{'met' if self.passed else 'MISSED'}")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": atomic.finite(self.value), "bound": self.bound,
                "direction": "min" if self.higher_is_better else "max", "relation": self.relation,
                "passed": self.passed}


def higher_is_better(metric: str) -> bool:
    """False for loss-like metrics (loss, mae, mse, rmse, *crossentropy, *error, *hinge, ...)."""
    name = metric.lower()
    if name.startswith("val_"):
        name = name[4:]
    compact = re.sub(r"[^a-z0-9]", "", name)
    if compact in _LOWER_EXACT:
        return False
    return not any(part in compact for part in _LOWER_PARTS)


def parse_gates(specs: Iterable[str]) -> list[Gate]:
    """`METRIC=VALUE` strings -> gates; malformed ones are usage errors (exit 2)."""
    gates = []
    for spec in specs:
        name, eq, value = str(spec).partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise UsageError(f"--fail-under {spec!r}: expected METRIC=VALUE, e.g. --fail-under accuracy=0.9")
        try:
            bound = float(value)
        except ValueError:
            raise UsageError(f"--fail-under {spec!r}: {value!r} is not a number") from None
        if not math.isfinite(bound):
            raise UsageError(f"--fail-under {spec!r}: the bound must be a finite number")
        gates.append(Gate(name, bound))
    return gates


def check_gate_names(gates: list[Gate], metrics: dict[str, float]) -> None:
    from nettrain.data.words import did_you_mean

    for gate in gates:
        if gate.metric not in metrics:
            hint = did_you_mean(gate.metric, metrics)
            if not hint:
                close = [m for m in metrics if m.startswith(gate.metric.lower() + "_")]
                hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"--fail-under: unknown metric '{gate.metric}'; {hint}available: {', '.join(metrics)}")


# ------------------------------------------------------------------------------ loading

def setup_runtime(config: dict[str, Any]) -> None:
    """The run's device choice (cpu hides the GPUs) and op determinism; never fails."""
    from nettrain.training import runtime

    rt = (config or {}).get("runtime") or {}
    runtime.apply_device_and_determinism(rt.get("device"), rt.get("deterministic", True))


def load_model(target: Target):
    """The compiled Keras model of a resolved TARGET (exit 2 for a file Keras cannot load)."""
    from nettrain.training import runtime

    setup_runtime(target.config)
    with runtime.quiet_native_stderr():
        model = h5.load_model(target.model_path, restore_optimizer=False)
    return model


def batch_size(target: Target) -> int:
    try:
        return int(target.config["training"]["batch_size"])
    except (KeyError, TypeError, ValueError):
        return 32


def n_classes(target: Target) -> int | None:
    return len(target.schema.class_names) if target.schema.class_names else None


def model_feed(model, split, where: str):
    """Split inputs -> the model's input tensors; a schema/model mismatch is named, not a KeyError."""
    from nettrain.training import feed

    try:
        return feed.model_inputs(model, split.inputs)
    except KeyError as e:
        raise UsageError(f"{where}: the model takes an input {e.args[0]!r} that its feature schema does not "
                         f"produce (inputs made: {', '.join(split.inputs)}); the .h5 file and its nettrain "
                         "metadata do not belong together") from None


# ------------------------------------------------------------------------------ evaluate

@dataclass
class EvalResult:
    model_path: Path
    run_dir: Path | None
    epoch: int
    name: str                          # split name or data file stem
    split: str | None                  # None with --data
    data: str                          # where the rows came from
    rows: int
    task: str
    keras_metrics: dict[str, float]
    metrics: dict[str, float]          # keras metrics first, then the extra ones
    per_class: dict[str, dict[str, float]] | None = None
    report: dict[str, Any] | None = None
    class_names: list[str] | None = None
    confusion_matrix: list[list[int]] | None = None
    gates: list[Gate] = field(default_factory=list)
    eval_file: Path | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": str(self.model_path), "run_dir": str(self.run_dir) if self.run_dir else None,
            "epoch": self.epoch, "split": self.split, "data": self.data, "rows": self.rows, "task": self.task,
            "metrics": atomic.finite(self.metrics), "keras_metrics": atomic.finite(self.keras_metrics)}
        if self.per_class is not None:
            out["class_names"] = self.class_names
            out["per_class"] = atomic.finite(self.per_class)
            out["confusion_matrix"] = self.confusion_matrix
        out["gates"] = [g.to_dict() for g in self.gates]
        out["passed"] = self.passed
        return out


def evaluate(target_path: str | Path, *, data: str | Path | None = None, split: str | None = None,
             fail_under: Iterable[str] = ()) -> EvalResult:
    """Measure the model at `target_path`; writes `eval-<name>.json` into its run directory.

    Gates are filled in but not enforced here (see `run_evaluate`).
    """
    gates = parse_gates(fail_under)
    if split is not None and split not in SPLITS:
        raise UsageError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    if split is not None and data is not None:
        raise UsageError("give either --data FILE or --split NAME, not both (--split picks a part of the run's "
                         "own data)")
    target = resolve_target(target_path)
    if data is not None:
        rows, name, where = _data_file_rows(target, Path(data))
        split_name = None
    else:
        split_name = split or "test"
        rows, where = _run_split_rows(target, split_name)
        name = split_name

    model = load_model(target)
    result = _measure(target, model, rows, name, split_name, where)
    check_gate_names(gates, result.metrics)
    for gate in gates:
        gate.value = result.metrics[gate.metric]
    result.gates = gates
    if target.run_dir is not None:
        suffix = "" if target.model_path.name == rundir.MODEL else f"-{target.model_path.stem}"
        path = target.run_dir / f"eval-{name}{suffix}.json"
        lock = rundir.try_lock(target.run_dir)
        if lock is None:  # one writer per run: a training process owns it now
            warnings.warn(f"not writing {path}: the run is being written by another nettrain process")
        else:
            with lock:
                atomic.write_json(path, {**result.to_dict(), "evaluated": rundir.now()})
            result.eval_file = path
    return result


def run_evaluate(target_path: str | Path, *, data: str | Path | None = None, split: str | None = None,
                 fail_under: Iterable[str] = (), json_output: bool = False) -> EvalResult:
    """`evaluate`, then print (tables, or one JSON object with `json_output`) and enforce the gates."""
    result = evaluate(target_path, data=data, split=split, fail_under=fail_under)
    if json_output:
        sys.stdout.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        print_result(result)
    missed = [g for g in result.gates if not g.passed]
    if missed:
        parts = [f"{g.metric} {_num(g.value)} {'<' if g.higher_is_better else '>'} {g.bound:g} "
                 f"(required {g.relation} {g.bound:g})" for g in missed]
        total = len(result.gates)
        raise GateFailed(f"{len(missed)} of {total} --fail-under gate{'s' if total > 1 else ''} missed: "
                         f"{'; '.join(parts)}")
    return result


def print_result(result: EvalResult) -> None:
    from nettrain.report.tables import (classification_report_table, confusion_matrix_table, make_console,
                                        metrics_table, print_table)

    console = make_console()
    where = f"split '{result.split}'" if result.split else result.data
    epoch = f" (epoch {result.epoch})" if result.epoch else ""
    console.print(f"evaluated {result.model_path}{epoch} on {where}: {result.rows} rows", markup=False)
    print_table(console, metrics_table({result.name: result.metrics}, title="Metrics"))
    if result.report is not None:
        print_table(console, classification_report_table(result.report))
        print_table(console, confusion_matrix_table(result.confusion_matrix, result.class_names))
    for gate in result.gates:
        console.print(f"gate: {gate.describe()}", markup=False)
    if result.eval_file is not None:
        console.print(f"wrote {result.eval_file}", markup=False)


def _run_split_rows(target: Target, split: str):
    """Re-create the run's own split from its saved config; the data must not have changed."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    cfg = load_config(target.model_path, data=copy.deepcopy(target.config), check_names=False)
    try:
        dataset = load_dataset(cfg)
    except UsageError as e:
        raise type(e)(f"{e.message} (re-creating the run's data to evaluate it; to evaluate on another file "
                      "use --data FILE)") from None
    expected = _recorded_fingerprint(target)
    if expected is not None and dataset.fingerprint != expected:
        raise UsageError(f"the data changed since training: {dataset.source} no longer gives the rows and "
                         f"splits the run was trained on (fingerprint {dataset.fingerprint[:12]}, run.json has "
                         f"{expected[:12]}); evaluate on a file with --data FILE")
    rows = getattr(dataset, split)
    if rows is None or len(rows) == 0:
        have = [s for s in ("train", "validation", "test")
                if getattr(dataset, s) is not None and len(getattr(dataset, s))]
        raise UsageError(f"the run has no {split} rows; available splits: {', '.join(have)} "
                         f"(--split {have[0] if have else 'train'})")
    return rows, dataset.source


def _recorded_fingerprint(target: Target) -> str | None:
    if target.run_dir is None:
        return None
    try:
        record = json.loads((target.run_dir / rundir.RUN).read_text())
    except (OSError, ValueError):
        return None
    return ((record.get("data") or {}).get("fingerprint")) or None


def _data_file_rows(target: Target, path: Path):
    from nettrain.data import prepare_inputs, read_table

    frame = read_table(path)
    rows = prepare_inputs(frame, target.schema, require_target=True, source=str(path))
    return rows, data_name(path), str(path)


def data_name(path: Path) -> str:
    """`new data.csv.gz` -> `new_data`: the file name without its data extensions, safe in a file name."""
    from nettrain.data.sources import COMPRESSIONS, TABLE_EXTENSIONS

    name = path.name
    for comp in COMPRESSIONS:
        if name.lower().endswith(comp):
            name = name[: -len(comp)]
            break
    suffix = Path(name).suffix
    if suffix.lower() in TABLE_EXTENSIONS:
        name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "data"


def _measure(target: Target, model, rows, name: str, split: str | None, where: str) -> EvalResult:
    from nettrain.model.compile import encode_targets
    from nettrain.training import feed, runtime
    from nettrain.training.fit import predicted_classes

    mode = target.label_mode
    batch = batch_size(target)
    x = model_feed(model, rows, where)
    y = encode_targets(rows.y, mode, n_classes(target))
    with runtime.quiet_native_stderr():
        keras_metrics = model.evaluate(feed.evaluation_dataset(x, y, batch), verbose=0, return_dict=True)
        pred = np.asarray(model.predict(feed.evaluation_dataset(x, None, batch), verbose=0))
    keras_metrics = {k: float(v) for k, v in keras_metrics.items()}
    metrics = dict(keras_metrics)
    result = EvalResult(model_path=target.model_path, run_dir=target.run_dir, epoch=target.epoch, name=name,
                        split=split, data=where, rows=len(rows), task=target.schema.task,
                        keras_metrics=keras_metrics, metrics=metrics)
    if mode == "regression":
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        truth = np.asarray(rows.y, dtype=np.float64).reshape(len(pred), -1)
        guess = pred.astype(np.float64).reshape(len(pred), -1)
        mse = float(mean_squared_error(truth, guess))
        extra = {"mae": float(mean_absolute_error(truth, guess)), "mse": mse, "rmse": math.sqrt(mse),
                 "r2": float(r2_score(truth, guess)) if len(truth) > 1 else float("nan")}
    else:
        from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

        names = list(target.schema.class_names or [])
        labels = list(range(len(names)))
        truth = np.asarray(rows.y, dtype=np.int64)
        guess = predicted_classes(pred, mode, target.threshold)
        report = classification_report(truth, guess, labels=labels, target_names=names, output_dict=True,
                                       zero_division=0)
        extra = {"accuracy": float(accuracy_score(truth, guess))}
        for avg in ("macro", "weighted"):
            for key, short in (("precision", "precision"), ("recall", "recall"), ("f1-score", "f1")):
                extra[f"{short}_{avg}"] = float(report[f"{avg} avg"][key])
        result.report = report
        result.class_names = names
        result.per_class = {n: {k: float(v) for k, v in report[n].items()} for n in names if n in report}
        result.confusion_matrix = confusion_matrix(truth, guess, labels=labels).tolist()
    for key, value in extra.items():
        metrics.setdefault(key, value)  # a compiled Keras metric of the same name wins
    return result


def _num(value: float | None) -> str:
    from nettrain.report.tables import format_value

    return format_value(value)
