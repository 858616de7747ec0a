"""`nettrain evaluate`: measure a trained model on its run's own split or on a data file.

The Keras metrics come from the model's own compiled metrics (`model.evaluate` on the same
batches `fit` used), so evaluating a run's `model.h5` on its test split gives exactly the test
numbers in `metrics.json`. On top of them: classification gets sklearn's per-class report and
the confusion matrix, regression gets MAE, MSE, RMSE and R2. `--fail-under` gates turn the
result into an exit code for CI.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nettrain.data.chunks import streamable as streamed
from nettrain.data.rows import Rows, aligned, file_rows, table_rows
from nettrain.data.stream import read_ahead
from nettrain.errors import GateFailed, UsageError
from nettrain.lifecycle.target import (Target, batch_size, execution_rows, load_model, model_feed, model_outputs,
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
    class_names: list[str] | None = None          # as text: the keys of per_class
    confusion_matrix: list[list[int]] | None = None
    gates: list[Gate] = field(default_factory=list)
    eval_file: Path | None = None
    class_labels: list[Any] | None = None          # the classes as the target held them (2, not "2")
    note: str | None = None                        # what was evaluated, when it is not the obvious

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def files(self) -> list[Path]:
        return [self.eval_file] if self.eval_file is not None else []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": str(self.model_path), "run_dir": str(self.run_dir) if self.run_dir else None,
            "epoch": self.epoch, "split": self.split, "data": self.data, "rows": self.rows, "task": self.task,
            "metrics": atomic.finite(self.metrics), "keras_metrics": atomic.finite(self.keras_metrics)}
        if self.per_class is not None:
            out["class_names"] = self.class_labels if self.class_labels is not None else self.class_names
            out["per_class"] = atomic.finite(self.per_class)
            out["confusion_matrix"] = self.confusion_matrix
        out["gates"] = [g.to_dict() for g in self.gates]
        out["passed"] = self.passed
        if self.note:
            out["note"] = self.note
        out["files"] = [str(f) for f in self.files]
        return out


def evaluate(target_path: str | Path, *, data: str | Path | None = None, split: str | None = None,
             fail_under: Iterable[str] = ()) -> "EvalResult | KFoldResult":
    """Measure the model at `target_path`; writes `eval-<name>.json` into its run directory.

    A k-fold run without a refit model (`fold-<i>/` runs, no model.h5 of its own) is measured
    fold by fold: see `evaluate_kfold`. Gates are filled in but not enforced here (see `check_gates`).
    """
    gates = parse_gates(fail_under)
    if split is not None and split not in EVAL_SPLITS:
        raise UsageError(f"--split {split!r}: choose one of {', '.join(EVAL_SPLITS)}")
    if split is not None and data is not None:
        raise UsageError("give either --data FILE or --split NAME, not both (--split picks a part of the run's "
                         "own data)")
    parent = kfold_parent(Path(target_path))
    if parent is not None and not (Path(target_path) / rundir.MODEL).is_file():
        return evaluate_kfold(Path(target_path), parent, data=data, split=split, gates=gates)
    target = resolve_target(target_path)
    record = run_record(target.run_dir)
    if data is not None:
        rows, name = data_rows(target, Path(data)), data_name(Path(data))
        split_name = None
    else:
        split_name = split or "test"
        rows, name = _run_split_rows(target, split_name, record), split_name
    rows.check()  # a missing column or a bad value in the first rows: reported before the model loads

    model = load_model(target)
    result = _measure(target, model, rows, name, split_name)
    if target.run_dir is not None and record.is_kfold_parent and target.model_path.parent == target.run_dir:
        result.note = (f"k-fold run: evaluated the refit model {target.model_path.name} (trained on all the "
                       f"non-test rows after the {record.folds} folds); to measure the fold models: "
                       f"nettrain evaluate {target.run_dir / 'fold-1'} (and the others)")
    _apply_gates(gates, result.metrics)
    result.gates = gates
    if target.run_dir is not None:
        suffix = "" if target.model_path.name == rundir.MODEL else f"-{target.model_path.stem}"
        result.eval_file = _write_eval(target.run_dir / f"eval-{name}{suffix}.json", result.to_dict)
    return result


def _apply_gates(gates: list[Gate], metrics: dict[str, float]) -> None:
    check_gate_names(gates, metrics)
    for gate in gates:
        gate.value = metrics[gate.metric]


def _write_eval(path: Path, content) -> Path | None:
    """Write `content()` (plus the time) to `path` under the run's lock; None when another process
    owns the run (a warning says so). The file lists itself under `files`."""
    lock = rundir.try_lock(path.parent)
    if lock is None:  # one writer per run: a training process owns it now
        warnings.warn(f"not writing {path}: the run is being written by another nettrain process")
        return None
    with lock:
        body = content()
        body["files"] = sorted(set(body.get("files", [])) | {str(path)})
        atomic.write_json(path, {**body, "evaluated": rundir.now()})
    return path


def run_record(run_dir: Path | None) -> RunRecord:
    """A run's run.json (an empty record when there is none or it cannot be read)."""
    return read_record(run_dir) or RunRecord()


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


def _run_dataset(target: Target, record: RunRecord):
    """Re-create the run's data from its saved config; the data must not have changed.

    A run trained on streamed data (run.json `data.stream: true`, or for an .h5 away from its run,
    a config that streams) is re-created the way it was trained: `data.stream.load_stream` (one pass
    over the file, in flat memory; its rows fall into splits by a hash of their row number), not
    the in-memory split, whose rows and fingerprint differ."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset
    from nettrain.data.stream import choose, load_stream

    cfg = load_config(target.model_path, data=copy.deepcopy(target.config), check_names=False)
    try:
        path = choose(cfg, recorded=record.stream)
        dataset = load_stream(cfg, path.why) if path.stream else load_dataset(cfg)
    except UsageError as e:
        raise type(e)(f"{e.message} (re-creating the run's data to evaluate it; to evaluate on another file "
                      "use --data FILE)") from None
    expected = record.fingerprint
    if expected is not None and dataset.fingerprint != expected:
        raise UsageError(f"the data changed since training: {dataset.source} no longer gives the rows and "
                         f"splits the run was trained on (fingerprint {dataset.fingerprint[:12]}, run.json has "
                         f"{expected[:12]}); evaluate on a file with --data FILE"
                         + (" (nettrain now keeps the official train/test split of this source: a run trained "
                            "before that had other splits)" if dataset.official_split else ""))
    return dataset


def _is_stream(dataset) -> bool:
    from nettrain.data.stream import StreamDataset

    return isinstance(dataset, StreamDataset)


def _folds_of(dataset) -> int:
    """The number of folds the re-created data has (0: none)."""
    if _is_stream(dataset):
        return dataset.n_folds if dataset.n_folds > 1 and dataset.fold_stats else 0
    return len(dataset.folds or [])


def _parts(dataset, record: RunRecord) -> dict[str, Any]:
    """{split: rows} of the model a run record describes. A k-fold fold (`fold: i`) trained on its
    fold's rows and validated on the rest; a k-fold parent's (refit) model trained on all non-test rows.
    In memory the rows are Splits; of a stream, the split codes of its rows (`StreamDataset.codes`)."""

    fold = record.fold
    if _is_stream(dataset):
        k = _folds_of(dataset)
        parts = dict(dataset.codes)
        if k and fold is not None and 1 <= fold <= k:
            parts = dict(dataset.for_fold(fold).codes)
        elif k and record.is_kfold_parent:
            from nettrain.data.split import fold_codes

            train, valid = fold_codes(1, k)
            parts.update(train=frozenset(train | valid), validation=None)
        return parts
    parts = {"train": dataset.train, "validation": dataset.validation, "test": dataset.test}
    if dataset.folds is not None and dataset.pool is not None:
        if fold is not None and 1 <= fold <= len(dataset.folds):
            tr, va = dataset.folds[fold - 1]
            parts.update(train=dataset.pool.take(tr), validation=dataset.pool.take(va))
        elif record.is_kfold_parent:
            parts.update(train=dataset.pool, validation=None)
    return parts


def _pick(dataset, parts: dict[str, Any], split: str, what: str = "the run") -> Rows:
    """The rows of `split` (see `_parts`) as Rows: held in memory, or read from the stream's file(s)
    again, chunk by chunk, in file order."""
    def size(part) -> int:
        if part is None:
            return 0
        return sum(dataset.code_rows.get(c, 0) for c in part) if _is_stream(dataset) else len(part)

    part = parts.get(split)
    if size(part) == 0:
        have = [s for s in rundir.SPLITS if size(parts.get(s))]
        raise UsageError(f"{what} has no {split} rows; available splits: {', '.join(have)} "
                         f"(--split {have[0] if have else 'train'})")
    if _is_stream(dataset):
        reader = dataset.reader
        return Rows(dataset.source, lambda: reader.rows(part))
    return Rows.of(part, dataset.source)


def _run_split_rows(target: Target, split: str, record: RunRecord | None = None) -> Rows:
    """The rows of one split of the run's own data, re-created from its saved config."""
    record = run_record(target.run_dir) if record is None else record
    dataset = _run_dataset(target, record)
    return _pick(dataset, _parts(dataset, record), split)


def data_rows(target: Target, path: Path) -> Rows:
    """The rows of a --data file: a CSV/TSV/Parquet file streamed chunk by chunk; another file read
    whole, and of an .npz holding its own split the test part (x_test, y_test)."""
    from nettrain.data.sources import SOURCE, part_name, read_parts
    from nettrain.data.cells import text_columns

    if streamed(path):
        return file_rows(path, target.schema, require_target=True)
    frames = read_parts(path, text=text_columns(target.schema))  # typed as fit typed them (`table_rows`)
    frame, where = (frames[SOURCE], str(path)) if SOURCE in frames else (frames["test"], part_name(path, "test"))
    return table_rows(frame, target.schema, where, require_target=True)


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
    """The model's compiled Keras metrics on `rows` (`model.evaluate`, batched as `fit` batches), and
    the extra metrics from its predictions, accumulated chunk by chunk (`Tally`): memory stays flat
    for a streamed file, and the numbers are those of all the rows at once."""
    tally = Tally(target)
    batch = batch_size(target)
    # the predictions first: a bad row stops the command here, before Keras reads the rows again
    for part in read_ahead(aligned(rows, execution_rows(model, batch))):
        tally.add(part.y, model_outputs(model, part, batch, rows.where))
    keras_metrics = _keras_metrics(target, model, rows, batch, tally.rows)
    metrics = dict(keras_metrics)
    result = EvalResult(model_path=target.model_path, run_dir=target.run_dir, epoch=target.epoch, name=name,
                        split=split, data=rows.where, rows=tally.rows, task=target.schema.task,
                        keras_metrics=keras_metrics, metrics=metrics)
    extra = tally.fill(result)
    for key, value in extra.items():
        metrics.setdefault(key, value)  # a compiled Keras metric of the same name wins
    return result


def _keras_metrics(target: Target, model, rows: Rows, batch: int, count: int | None = None) -> dict[str, float]:
    """`model.evaluate` on the rows: one dataset of the same batches as the rows held at once (a
    streamed file's chunks are re-read and re-cut to whole batches), so the numbers are the same.
    `count`: the rows a stream holds (counted by the pass before), so Keras knows how many batches
    come and does not warn that the generated dataset "ran out of data"."""
    import tensorflow as tf

    from nettrain import keras_compat
    from nettrain.model.compile import encode_targets
    from nettrain.training import feed, runtime

    mode, classes = target.label_mode, n_classes(target)
    failed: list[BaseException] = []
    if rows.single is not None:
        x = model_feed(model, rows.single, rows.where)
        dataset = feed.evaluation_dataset(x, encode_targets(rows.single.y, mode, classes), batch)
    else:
        def pieces():
            try:
                for part in aligned(rows, execution_rows(model, batch)):
                    x = model_feed(model, part, rows.where)
                    yield {k: v.numpy() for k, v in x.items()}, encode_targets(part.y, mode, classes)
            except Exception as e:  # noqa: BLE001 - raised again below, not inside TensorFlow
                failed.append(e)

        stream = pieces()
        first = next(stream, None)
        if first is None:
            raise failed[0] if failed else UsageError(f"{rows.where}: no rows")

        def spec(a) -> tf.TensorSpec:
            dtype = tf.string if a.dtype == object or a.dtype.kind in "SU" else tf.as_dtype(a.dtype)
            return tf.TensorSpec(shape=(None, *a.shape[1:]), dtype=dtype)

        def chunks():
            yield first
            yield from stream

        signature = ({k: spec(v) for k, v in first[0].items()}, spec(first[1]))
        dataset = (tf.data.Dataset.from_generator(chunks, output_signature=signature)
                   .flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)))
        if count:
            dataset = keras_compat.assert_cardinality(dataset, math.ceil(count / batch))
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    try:
        with runtime.quiet_native_stderr():
            values = model.evaluate(dataset, verbose=0, return_dict=True)
    except Exception:
        if failed:  # the rows' own error (the file changed between the passes), not TensorFlow's
            raise failed[0] from None
        raise
    if failed:
        raise failed[0]
    return {k: float(v) for k, v in values.items()}


class Tally:
    """The extra metrics of `evaluate`, accumulated chunk by chunk in flat memory, equal to sklearn's
    on all the rows at once. Classification: the confusion matrix (summed), and from it accuracy and
    sklearn's per-class report. Regression, per output: the sums of absolute and squared errors and
    the target's count, mean and sum of squared deviations (merged as Chan et al.) for R2."""

    def __init__(self, target: Target):
        self.target = target
        self.mode = target.label_mode
        self.rows = 0
        self.k = len(target.schema.class_names or [])
        self.confusion = np.zeros((self.k, self.k), dtype=np.int64)
        self.abs_err = self.sq_err = self.mean = self.m2 = None

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
                "files": [str(p) for p in self.files]}


def evaluate_kfold(run_dir: Path, record: RunRecord, *, data: str | Path | None, split: str | None,
                   gates: list[Gate]) -> KFoldResult:
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
        dataset = _run_dataset(targets[0], record)
        if _folds_of(dataset) != k:
            raise UsageError(f"{run_dir}: run.json names {k} folds but its config gives "
                             f"{_folds_of(dataset)}; the run was edited or damaged")
    results = []
    for i, target in enumerate(targets, start=1):
        if data is not None:
            rows = data_rows(target, Path(data))
        else:
            rows = _pick(dataset, _parts(dataset, RunRecord(fold=i)), split_name, f"fold {i} of {run_dir}")
        rows.check()
        model = load_model(target)
        result = _measure(target, model, rows, name, split_name)
        if target.run_dir is not None:
            result.eval_file = _write_eval(target.run_dir / f"eval-{name}.json", result.to_dict)
        results.append(result)
        del model
    names = [m for m in results[0].metrics if all(m in r.metrics for r in results)]
    values = {m: np.array([r.metrics[m] for r in results], dtype=np.float64) for m in names}
    mean = {m: float(v.mean()) for m, v in values.items()}
    std = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
    _apply_gates(gates, mean)
    out = KFoldResult(run_dir=run_dir, split=split_name, name=name, data=results[0].data,
                      task=results[0].task, folds=results, mean=mean, std=std, gates=gates)
    out.eval_file = _write_eval(run_dir / f"eval-{name}.json", out.to_dict)
    return out
