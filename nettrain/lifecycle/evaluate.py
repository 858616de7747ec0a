"""`nettrain evaluate`: measure a trained model on its run's own split or on a data file.

The Keras metrics come from the model's own compiled metrics (Keras's `test_step` on the same
batches `fit` used, in one pass that also gives the predictions: `OnePass`), so evaluating a run's
`model.h5` on its test split gives exactly the test numbers in `metrics.json`. On top of them:
classification gets scikit-learn's exact AUC (`auc_exact`), per-class report and the confusion
matrix, regression gets MAE, MSE, RMSE and R2. The result names the epoch whose weights it measured
(`Target.weights_epoch`: the restored best one of a run stopped early). `--fail-under` gates turn the
result into an exit code for CI.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nettrain.data import contract
from nettrain.data.chunks import streamable as streamed
from nettrain.data.rows import Rows, aligned, file_rows, table_rows
from nettrain.data.split import trained_folds
from nettrain.data.stream import read_ahead
from nettrain.errors import DataError, GateFailed, UsageError
from nettrain.lifecycle.runrows import folds_of, pick_rows, run_dataset_of, run_parts, run_record, run_split_rows
from nettrain.lifecycle.target import (Target, batch_size, check_widths, execution_rows, load_model, model_feed,
                                       n_classes, resolve_target)
from nettrain.report.gates import Gate, check_gate_names, parse_gates
from nettrain.report.metrics import r2_from_sums
from nettrain.store import atomic, rundir
from nettrain.store.record import RunRecord, read_record

# TensorFlow is imported only once a model is loaded, so a bad TARGET, data file or argument is
# reported without paying for the TensorFlow start-up.

# The splits a model can be measured on, in the order evaluate prefers them (test first).
EVAL_SPLITS = tuple(reversed(rundir.SPLITS))


# ------------------------------------------------------------------------------ evaluate

@dataclass
class EvalResult:
    model_path: Path
    run_dir: Path | None
    epoch: int                         # the epoch whose weights were measured (`Target.weights_epoch`)
    name: str                          # split name or data file stem
    split: str | None                  # None with --data
    data: str                          # where the rows came from
    rows: int
    task: str
    keras_metrics: dict[str, float]
    metrics: dict[str, float]          # keras metrics first, then the extra ones
    per_class: dict[str, dict[str, float]] | None = None
    report: dict[str, Any] | None = None
    class_names: list[str] | None = None          # as text: the keys of per_class
    confusion_matrix: list[list[int]] | None = None
    gates: list[Gate] = field(default_factory=list)
    eval_file: Path | None = None
    class_labels: list[Any] | None = None          # the classes as the target held them (2, not "2")
    note: str | None = None                        # what was evaluated, when it is not the obvious
    epochs_done: int | None = None                 # the epochs the run had trained when the file was saved
    input_check: dict[str, Any] | None = None      # --data: its drift from the run's signature.json

    @property
    def restored(self) -> bool:
        """Whether the weights are an earlier epoch's than the last one trained (early stopping restored them)."""
        return self.epochs_done is not None and 0 < self.epoch < self.epochs_done

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def files(self) -> list[Path]:
        return [self.eval_file] if self.eval_file is not None else []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": str(self.model_path), "run_dir": str(self.run_dir) if self.run_dir else None,
            "epoch": self.epoch, "epochs_done": self.epochs_done, "split": self.split, "data": self.data,
            "rows": self.rows, "task": self.task,
            "metrics": atomic.finite(self.metrics), "keras_metrics": atomic.finite(self.keras_metrics)}
        if self.per_class is not None:
            out["class_names"] = self.class_labels if self.class_labels is not None else self.class_names
            out["per_class"] = atomic.finite(self.per_class)
            out["confusion_matrix"] = self.confusion_matrix
        out["gates"] = [g.to_dict() for g in self.gates]
        out["passed"] = self.passed
        if self.note:
            out["note"] = self.note
        if self.input_check is not None:
            out["input_check"] = self.input_check
        out["files"] = [str(f) for f in self.files]
        return out


def evaluate(target_path: str | Path, *, data: str | Path | None = None, split: str | None = None,
             fail_under: Iterable[str] = (), strict: bool = False, notify=None) -> "EvalResult | KFoldResult":
    """Measure the model at `target_path`; writes `eval-<name>.json` into its run directory.

    A k-fold run without a refit model (`fold-<i>/` runs, no model.h5 of its own) is measured
    fold by fold: see `evaluate_kfold`. Gates are filled in but not enforced here (see `check_gates`).
    A --data file is checked against the run's signature.json (`data.contract`): the drift summary
    goes to `notify`, the report into the result (`input_check`); with `strict` a drift is a
    DataError before the model loads.
    """
    gates = parse_gates(fail_under)
    if strict and data is None:
        raise UsageError("--strict checks a --data file against the run's training rows (signature.json); "
                         "give --data FILE, or leave --strict out")
    if split is not None and split not in EVAL_SPLITS:
        raise UsageError(f"--split {split!r}: choose one of {', '.join(EVAL_SPLITS)}")
    if split is not None and data is not None:
        raise UsageError("give either --data FILE or --split NAME, not both (--split picks a part of the run's "
                         "own data)")
    parent = kfold_parent(Path(target_path))
    if parent is not None and not (Path(target_path) / rundir.MODEL).is_file():
        return evaluate_kfold(Path(target_path), parent, data=data, split=split, gates=gates, strict=strict,
                              notify=notify)
    target = resolve_target(target_path)
    record = run_record(target.run_dir)
    watch = None
    if data is not None:
        watch = contract.watch_for(target.run_dir)
        rows, name = data_rows(target, Path(data), watch), data_name(Path(data))
        split_name = None
    else:
        split_name = split or "test"
        rows, name = run_split_rows(target, split_name, record, notify), split_name
    rows.check()  # a missing column or a bad value in the first rows: reported before the model loads
    checked = _checked_first(rows, watch, strict, notify)

    model = load_model(target)
    result = _measure(target, model, rows, name, split_name)
    if data is not None:  # a --data file: its drift from the run's training rows
        result.input_check = _input_check(rows, watch, checked, notify, target.run_dir)
    if target.run_dir is not None and record.is_kfold_parent and target.model_path.parent == target.run_dir:
        plan = record.refit
        what = (f"the ensemble model {target.model_path.name} (the mean of the {plan.members} fold models)"
                if plan is not None and plan.members else
                f"the refit model {target.model_path.name} (trained on all the non-test rows after the "
                f"{record.folds} folds)")
        result.note = (f"k-fold run: evaluated {what}; to measure the fold models: "
                       f"nettrain evaluate {target.run_dir / 'fold-1'} (and the others)")
    _apply_gates(gates, result.metrics)
    result.gates = gates
    if target.run_dir is not None:
        suffix = "" if target.model_path.name == rundir.MODEL else f"-{target.model_path.stem}"
        result.eval_file = write_into_run(target.run_dir / f"eval-{name}{suffix}.json", result.to_dict)
    return result


def _apply_gates(gates: list[Gate], metrics: dict[str, float]) -> None:
    check_gate_names(gates, metrics)
    for gate in gates:
        gate.value = metrics[gate.metric]


def write_into_run(path: Path, content, stamp: str = "evaluated") -> Path | None:
    """Write `content()` (plus the time, under `stamp`) to `path` under the run's lock; None when another
    process owns the run (a warning says so). The file lists itself under `files`."""
    lock = rundir.try_lock(path.parent)
    if lock is None:  # one writer per run: a training process owns it now
        warnings.warn(f"not writing {path}: the run is being written by another nettrain process")
        return None
    with lock:
        body = content()
        body["files"] = sorted(set(body.get("files", [])) | {str(path)})
        atomic.write_json(path, {**body, stamp: rundir.now()})
    return path


def kfold_parent(path: Path) -> RunRecord | None:
    """run.json of a k-fold parent run directory (`RunRecord.is_kfold_parent`), else None."""
    try:
        if not path.is_dir():
            return None
    except OSError:
        return None
    record = read_record(path)
    return record if record is not None and record.is_kfold_parent else None


def check_gates(result: "EvalResult | KFoldResult") -> None:
    """GateFailed (exit 3) naming every --fail-under gate `result` missed."""
    missed = [g for g in result.gates if not g.passed]
    if missed:
        parts = [f"{g.metric} {_num(g.value)} {'<' if g.higher_is_better else '>'} {g.bound:g} "
                 f"(required {g.relation} {g.bound:g})" for g in missed]
        total = len(result.gates)
        of_mean = " (k-fold: the mean over the folds)" if isinstance(result, KFoldResult) else ""
        raise GateFailed(f"{len(missed)} of {total} --fail-under gate{'s' if total > 1 else ''} missed{of_mean}: "
                         f"{'; '.join(parts)}")


def data_rows(target: Target, path: Path, watch: "contract.Watch | None" = None) -> Rows:
    """The rows of a --data file: a CSV/TSV/Parquet file streamed chunk by chunk; another file read
    whole, and of an .npz holding its own split the test part (x_test, y_test). `watch` checks them
    against the run's signature as they are read (`data.contract`)."""
    from nettrain.data.sources import SOURCE, part_name, read_parts
    from nettrain.data.cells import text_columns
    from nettrain.data.images import ImageSpec, is_image_model, labelled_rows

    if is_image_model(target):  # an image model: a folder of class sub-folders
        if not Path(path).is_dir():
            raise DataError(f"--data {path}: an image model is evaluated on a folder with one sub-folder per class")
        images = ((target.config or {}).get("data") or {}).get("images")
        return labelled_rows(Path(path), target.schema.class_names, ImageSpec.of(images))
    if streamed(path):
        return file_rows(path, target.schema, require_target=True, watch=watch)
    frames = read_parts(path, text=text_columns(target.schema))  # typed as fit typed them (`table_rows`)
    frame, where = (frames[SOURCE], str(path)) if SOURCE in frames else (frames["test"], part_name(path, "test"))
    return table_rows(frame, target.schema, where, require_target=True, watch=watch)


def _checked_first(rows: Rows, watch: "contract.Watch | None", strict: bool, notify) -> bool:
    """With `strict`, every row of the --data file checked before the model loads (a drift: DataError);
    whether that was done."""
    if not strict or watch is None:
        return False
    for _ in rows:
        pass
    contract.conclude(watch, rows.where, strict=True, notify=notify, what="evaluated")
    return True


def _input_check(rows: Rows, watch: "contract.Watch | None", checked: bool, notify,
                 run_dir: Path | None) -> dict[str, Any] | None:
    """The --data file's drift report once every row was measured (its summary to `notify`, unless
    `_checked_first` told it already)."""
    if watch is None:
        contract.conclude(None, rows.where, strict=False, notify=notify, run_dir=run_dir)  # the note: unchecked
        return None
    report = watch.report if checked else contract.conclude(watch, rows.where, strict=False, notify=notify)
    return report.to_dict()


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


def _measure(target: Target, model, rows: Rows, name: str, split: str | None) -> EvalResult:
    """The model's compiled Keras metrics and its predictions in one pass over `rows` (`OnePass`: Keras's
    own `test_step`, batched as `fit` batches its evaluations, so the numbers are those of `model.evaluate` and of fit's
    metrics.json), and the extra metrics from the predictions, accumulated chunk by chunk (`Tally`):
    memory stays flat for a streamed file, and the numbers are those of all the rows at once."""
    from nettrain.data.images import is_image_model
    from nettrain.training.feed import evaluation_batch  # (TensorFlow: the model is about to run)

    tally = Tally(target)
    batch = evaluation_batch(batch_size(target), images=is_image_model(target))  # as fit batches its evaluations
    keras_metrics = OnePass(target, model, batch, rows.where).run(rows, tally)
    result = EvalResult(model_path=target.model_path, run_dir=target.run_dir, epoch=target.weights_epoch,
                        name=name, split=split, data=rows.where, rows=tally.rows, task=target.schema.task,
                        keras_metrics=keras_metrics, metrics={},
                        epochs_done=target.epoch if target.run_dir is not None else None)
    extra = tally.fill(result)
    metrics = {}
    for key, value in keras_metrics.items():
        metrics[key] = value
        if key == "auc" and "auc_exact" in extra:  # scikit-learn's exact AUC beside Keras's approximation
            metrics["auc_exact"] = extra["auc_exact"]
    for key, value in extra.items():
        metrics.setdefault(key, value)  # a compiled Keras metric of the same name wins
    result.metrics = metrics
    return result


class OnePass:
    """The compiled metrics (`model.evaluate`'s numbers) and the outputs of a model, in one pass over the
    rows, through one `tf.function` traced once: Keras's `test_step` on each batch of a chunk, cut inside
    the graph (no `tf.data` iterator, no `steps_per_execution` loop), and the batch's outputs.

    What it spares against `model.predict` then `model.evaluate` (the way evaluate ran before): a second
    pass over the rows (a streamed file read twice), two traced functions and their retraces for the
    last, short batch and chunk (the input signature leaves the rows' count open)."""

    def __init__(self, target: Target, model, batch: int, where: str):
        self.model, self.batch, self.where = model, max(1, int(batch)), where
        self.mode, self.classes = target.label_mode, n_classes(target)
        self._run = None

    def run(self, rows: Rows, tally: "Tally") -> dict[str, float]:
        """Every chunk of `rows` through the model (`tally` gets the outputs); the compiled metrics."""
        from nettrain.training import runtime

        with runtime.quiet_native_stderr():
            with rows.meter("evaluate") as meter:   # progress on stderr (a Ctrl-C says where it stopped)
                for part in read_ahead(aligned(rows, execution_rows(self.model, self.batch))):
                    tally.add(part.y, self._outputs(part))
                    meter.add(len(part))
            values = self.model.get_metrics_result()
        return {k: float(v) for k, v in values.items()}

    def _outputs(self, part) -> np.ndarray:
        from nettrain.model.compile import encode_targets

        x = model_feed(self.model, part, self.where)
        y = encode_targets(part.y, self.mode, self.classes)
        if self._run is None:
            check_widths(self.model, x, self.where)
            self._run = self._start(x, y)
        return self._run(x, y).numpy()

    def _start(self, x: dict, y: np.ndarray):
        """The compiled loss's and metrics' variables made by one eager pass on a batch (as Keras makes them
        before evaluating: not inside a graph loop), the metrics reset; the graph function."""
        import tensorflow as tf

        from nettrain.training.engine import build_evaluation_state

        model, batch = self.model, self.batch
        build_evaluation_state(model, {k: v[:batch] for k, v in x.items()}, y[:batch])
        signature = ({k: tf.TensorSpec((None, *v.shape[1:]), v.dtype) for k, v in x.items()},
                     tf.TensorSpec((None, *y.shape[1:]), tf.as_dtype(y.dtype)))

        def one(xb, yb):
            model.test_step((xb, yb))
            return tf.cast(model(xb, training=False), tf.float32)

        if getattr(model, "jit_compile", False) is True:  # XLA where Keras's own test step would use it
            one = tf.function(one, jit_compile=True, autograph=False)

        def chunk(x, y):
            rows = tf.shape(y)[0]
            count = (rows + batch - 1) // batch

            def step(i, outputs):
                lo = i * batch
                hi = tf.minimum(lo + batch, rows)
                pred = one({k: v[lo:hi] for k, v in x.items()}, y[lo:hi])
                return i + 1, outputs.write(i, tf.reshape(pred, (hi - lo, -1)))

            outputs = tf.TensorArray(tf.float32, size=count, infer_shape=False)
            _, outputs = tf.while_loop(lambda i, _: i < count, step, (tf.constant(0), outputs))
            return outputs.concat()

        return tf.function(chunk, input_signature=signature, autograph=False)


# The most scores (rows x outputs) evaluate holds for the exact AUC: 80 MB of float32.
AUC_SCORES = 20_000_000


class Tally:
    """The extra metrics of `evaluate`, accumulated chunk by chunk in flat memory, equal to sklearn's
    on all the rows at once. Classification: the confusion matrix (summed), and from it accuracy and
    sklearn's per-class report; and the scores with their classes (float32, up to AUC_SCORES values)
    for the exact AUC (`auc_exact`). Regression, per output: the sums of absolute and squared errors
    and the target's count, mean and sum of squared deviations (merged as Chan et al.) for R2."""

    def __init__(self, target: Target):
        self.target = target
        self.mode = target.label_mode
        self.rows = 0
        self.k = len(target.schema.class_names or [])
        self.confusion = np.zeros((self.k, self.k), dtype=np.int64)
        self.abs_err = self.sq_err = self.mean = self.m2 = None
        self.scores: list[tuple[np.ndarray, np.ndarray]] | None = []  # None once past AUC_SCORES

    def add(self, y: np.ndarray, pred: np.ndarray) -> None:
        from nettrain.model.outputs import predicted_classes

        n = len(pred)
        if n == 0:
            return
        if self.mode == "regression":
            truth = np.asarray(y, dtype=np.float64).reshape(n, -1)
            guess = pred.astype(np.float64).reshape(n, -1)
            mean = truth.mean(axis=0)
            m2 = ((truth - mean) ** 2).sum(axis=0)
            abs_err, sq_err = np.abs(guess - truth).sum(axis=0), ((truth - guess) ** 2).sum(axis=0)
            if self.mean is None:
                self.abs_err, self.sq_err, self.mean, self.m2 = abs_err, sq_err, mean, m2
            else:
                total = self.rows + n
                delta = mean - self.mean
                self.m2 = self.m2 + m2 + delta ** 2 * (self.rows * n / total)
                self.mean = self.mean + delta * (n / total)
                self.abs_err, self.sq_err = self.abs_err + abs_err, self.sq_err + sq_err
        else:
            from nettrain.lifecycle.predict import check_outputs

            check_outputs(self.target, pred)
            truth = np.asarray(y, dtype=np.int64)
            guess = predicted_classes(pred, self.mode, self.target.threshold)
            self.confusion += np.bincount(truth * self.k + guess, minlength=self.k * self.k).reshape(self.k, self.k)
            if self.scores is not None:
                if (self.rows + n) * pred.shape[1] > AUC_SCORES:
                    self.scores = None  # flat memory wins: no exact AUC of more scores than that
                else:
                    self.scores.append((truth.astype(np.int32), pred.astype(np.float32)))
        self.rows += n

    def fill(self, result: EvalResult) -> dict[str, float]:
        """The extra metrics; the report, class names and confusion matrix set on `result`."""
        if self.mode == "regression":
            n = self.rows
            mse = float(np.mean(self.sq_err / n))
            r2 = r2_from_sums(self.sq_err, self.m2, n)  # scikit-learn's r2_score, the one R² of nettrain
            return {"mae": float(np.mean(self.abs_err / n)), "mse": mse, "rmse": math.sqrt(mse), "r2": r2}
        from sklearn.metrics import classification_report

        names = list(self.target.schema.class_names or [])
        truth, guess = np.nonzero(self.confusion)  # the matrix's cells, weighted by their counts
        report = classification_report(truth, guess, labels=list(range(self.k)), target_names=names,
                                       sample_weight=self.confusion[truth, guess].astype(np.float64),
                                       output_dict=True, zero_division=0)
        for values in report.values():
            if isinstance(values, dict) and "support" in values:
                values["support"] = int(round(values["support"]))
        extra = {"accuracy": float(np.trace(self.confusion) / self.rows)}
        if self.scores is not None:
            from nettrain.report.metrics import roc_auc

            extra["auc_exact"] = roc_auc(np.concatenate([t for t, _ in self.scores]),
                                         np.concatenate([p for _, p in self.scores]))
        else:
            result.note = ((result.note + "; ") if result.note else "") + \
                f"auc_exact left out: more than {AUC_SCORES:,} scores to hold"
        for avg in ("macro", "weighted"):
            for key, short in (("precision", "precision"), ("recall", "recall"), ("f1-score", "f1")):
                extra[f"{short}_{avg}"] = float(report[f"{avg} avg"][key])
        result.report = report
        result.class_names = names
        result.class_labels = self.target.schema.class_labels
        result.per_class = {n: {k: float(v) for k, v in report[n].items()} for n in names if n in report}
        result.confusion_matrix = self.confusion.tolist()
        return extra


def _num(value: float | None) -> str:
    from nettrain.report.tables import format_value

    return format_value(value)


# ------------------------------------------------------------------------------ k-fold runs

@dataclass
class KFoldResult:
    """Every fold model of a k-fold run measured on its own fold's rows (or one file), and the
    mean and standard deviation (ddof 1, as fit reports them) of every metric over the folds."""

    run_dir: Path
    split: str | None                  # None with --data
    name: str
    data: str
    task: str
    folds: list[EvalResult]
    mean: dict[str, float]
    std: dict[str, float]
    gates: list[Gate] = field(default_factory=list)   # on the mean
    eval_file: Path | None = None
    input_check: dict[str, Any] | None = None         # --data: its drift from the run's signature.json

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def metrics(self) -> dict[str, float]:
        return self.mean

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.folds)

    @property
    def note(self) -> str:
        where = {"validation": "its own fold's validation rows", "train": "its own fold's training rows",
                 "test": "the test rows"}.get(self.split or "", self.data)
        return f"k-fold run: evaluated {len(self.folds)} fold models, each on {where}"

    @property
    def files(self) -> list[Path]:
        out = [f.eval_file for f in self.folds if f.eval_file is not None]
        return out + ([self.eval_file] if self.eval_file is not None else [])

    def to_dict(self) -> dict[str, Any]:
        folds = []
        for i, f in enumerate(self.folds, start=1):
            entry = f.to_dict()
            entry.pop("gates", None)
            entry.pop("passed", None)
            folds.append({"fold": i, **entry})
        return {"run_dir": str(self.run_dir), "kfold": True, "note": self.note, "split": self.split,
                "data": self.data, "rows": self.rows, "task": self.task,
                "metrics": atomic.finite(self.mean), "mean": atomic.finite(self.mean),
                "std": atomic.finite(self.std), "folds": folds,
                "gates": [g.to_dict() for g in self.gates], "passed": self.passed,
                **({"input_check": self.input_check} if self.input_check is not None else {}),
                "files": [str(p) for p in self.files]}


def evaluate_kfold(run_dir: Path, record: RunRecord, *, data: str | Path | None, split: str | None,
                   gates: list[Gate], strict: bool = False, notify=None) -> KFoldResult:
    """Each `fold-<i>/model.h5` on its fold's validation rows (or `split`, or the --data file)."""
    k = record.folds
    fold_dirs = [run_dir / f"fold-{i}" for i in range(1, k + 1)]
    unfinished = [d for d in fold_dirs if not (d / rundir.MODEL).is_file()]
    if unfinished:
        done = k - len(unfinished)
        raise UsageError(f"{run_dir} is a k-fold run of {k} folds and {unfinished[0].name} has no {rundir.MODEL} "
                         f"({done} of {k} fold models exist: the run did not finish); finish it with: nettrain fit "
                         f"CONFIG --resume {run_dir}" + (f", or evaluate one finished fold: nettrain evaluate "
                                                         f"{next(d for d in fold_dirs if d not in unfinished)}"
                                                         if done else ""))
    targets = [resolve_target(d) for d in fold_dirs]
    if data is not None:
        split_name, name = None, data_name(Path(data))
    else:
        split_name = split or "validation"
        name = split_name
        dataset = run_dataset_of(targets[0], record)
        members = ((targets[0].config.get("data") or {}).get("split") or {}).get("members")
        if trained_folds(folds_of(dataset), members) != k:
            raise UsageError(f"{run_dir}: run.json names {k} folds but its config gives "
                             f"{trained_folds(folds_of(dataset), members)}; the run was edited or damaged")
    results = []
    # a --data file is checked once, with the first fold's rows, against the parent run's signature
    watch = contract.watch_for(run_dir) if data is not None else None
    input_check = None
    for i, target in enumerate(targets, start=1):
        if data is not None:
            rows = data_rows(target, Path(data), watch if i == 1 else None)
        else:
            rows = pick_rows(dataset, run_parts(dataset, RunRecord(fold=i)), split_name, f"fold {i} of {run_dir}")
        rows.check()
        checked = _checked_first(rows, watch, strict, notify) if i == 1 else False
        model = load_model(target)
        result = _measure(target, model, rows, name, split_name)
        if i == 1 and data is not None:
            input_check = result.input_check = _input_check(rows, watch, checked, notify, run_dir)
        if target.run_dir is not None:
            result.eval_file = write_into_run(target.run_dir / f"eval-{name}.json", result.to_dict)
        results.append(result)
        del model
    names = [m for m in results[0].metrics if all(m in r.metrics for r in results)]
    values = {m: np.array([r.metrics[m] for r in results], dtype=np.float64) for m in names}
    mean = {m: float(v.mean()) for m, v in values.items()}
    std = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
    _apply_gates(gates, mean)
    out = KFoldResult(run_dir=run_dir, split=split_name, name=name, data=results[0].data,
                      task=results[0].task, folds=results, mean=mean, std=std, gates=gates, input_check=input_check)
    out.eval_file = write_into_run(run_dir / f"eval-{name}.json", out.to_dict)
    return out
