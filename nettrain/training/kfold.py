"""`data.split.folds: k`: k models, each trained on k-1 folds of the non-test rows and validated on
the remaining one. Each fold is a complete run in `fold-<i>/`; the parent run's metrics.json holds
every fold's metrics and their mean and standard deviation per split and metric, and its
`plots/learning_curves_mean.png` the folds' learning curves averaged per epoch (± one std).
`data.split.members: m` trains only the first m of the k folds (m fits instead of k).

`data.split.refit: true`: after the folds, one more model trained on all the non-test rows (no
validation rows) for the mean of the folds' best epochs, in the parent run's own directory: its
model.h5 (what `evaluate RUN` and `predict RUN` use), metrics.csv, checkpoints/ and plots/ are
those of an ordinary run, and metrics.json / run.json `final_metrics` hold its metrics under
`refit` next to the folds' `mean` and `std`.

What a k-fold run is made of: the folds' rows, the refit's rows and config, the parent run's
record and summary. The loop over the folds (train, keep or resume each one) and the refit's
session are in `nettrain.lifecycle.orchestrate`; each is trained by the leaf `training.fit`,
which knows nothing of folds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nettrain.config.callbacks import on_training_rows
from nettrain.config.schema import Config
from nettrain.data.load import fold_dataset
from nettrain.data.split import trained_folds
from nettrain.errors import Interrupted
from nettrain.store import atomic, guard, rundir
from nettrain.store.record import RunRecord
from nettrain.training import fit as F
from nettrain.training import runfiles as RF
from nettrain.training import tracking

MEAN_CURVES = "learning_curves_mean.png"   # in the parent's plots/


@dataclasses.dataclass
class KFoldFitResult(F.FitResult):
    """A k-fold run's result: `metrics` holds every fold's, their mean and std (and the refit's under
    `refit`); `refit` the refit model's metrics when it trained in this call (its own table)."""

    refit: dict[str, dict[str, float]] | None = None
    ensemble: bool = False  # the refit model is the folds' ensemble (data.split.refit: ensemble)


def _streamed(prep: F.Prepared) -> bool:
    from nettrain.data.stream import StreamDataset

    return isinstance(prep.dataset, StreamDataset)


def made(prep: F.Prepared) -> int:
    """How many folds the data stage made (k)."""
    if _streamed(prep):
        return prep.dataset.n_folds if prep.dataset.fold_stats else 0
    return len(prep.dataset.folds or [])


def count(prep: F.Prepared) -> int:
    """How many fold models the run trains: the first `data.split.members` of the k folds (all k
    without it)."""
    return trained_folds(made(prep), prep.cfg.data.split.members)


def check_folds(prep: F.Prepared) -> None:
    if made(prep) < 2 or (not _streamed(prep) and prep.dataset.pool is None):
        raise prep.cfg.error("data.split.folds", "the data stage produced no folds")


def folds(prep: F.Prepared) -> Iterator[tuple[int, F.Prepared]]:
    """(fold number from 1, the fold's `Prepared`: its training and validation rows of the pool; for a
    stream, the rows whose hashed fold is another one and those whose fold is this one), for the
    `count` folds that train."""
    for i in range(1, count(prep) + 1):
        yield i, fold(prep, i)


def fold(prep: F.Prepared, i: int) -> F.Prepared:
    """Fold i's `Prepared` (from 1): its training rows (the other folds of the pool) and its
    validation rows (its own fold); a stream's by the rows' hashed folds."""
    dataset = prep.dataset
    if _streamed(prep):
        return F.with_rows(prep, dataset.for_fold(i))
    train_pos, val_pos = dataset.folds[i - 1]
    return F.with_rows(prep, fold_dataset(dataset, train_pos, val_pos))


def fold_dir(out: Path, i: int) -> Path:
    return out / f"fold-{i}"


def fold_fields(i: int, out: Path) -> dict[str, Any]:
    """What a fold's run.json adds to the fields of every run: its number and its parent run."""
    return {"fold": i, "parent": str(out)}


def start_kfold_dir(prep: F.Prepared, out: Path) -> rundir.RunRecord:
    """The parent run's run.json (first), config.yaml, labels.json and the plugins' copies."""
    record = rundir.RunRecord(out)
    record.update(**RF.run_fields(prep, folds=count(prep)))
    with record.active():
        RF.write_start_files(prep, out, record)
        RF.write_signature(prep, out)  # the first fold's training rows (kept by the refit)
        tracking.open_run(prep.cfg, out, record, kind="kfold")  # tracking.mlflow: the folds' runs nest in it
    return record


def start_fold(fold_prep: F.Prepared, out: Path, i: int, monitors: dict[str, str]):
    """A new fold's model and run directory `fold-<i>/`: (model, the fold's run record)."""
    model = F.new_model(fold_prep)
    path = fold_dir(out, i)
    path.mkdir(exist_ok=True)
    record = RF.start_run_dir(fold_prep, model, path, monitors, **fold_fields(i, out))
    if not _streamed(fold_prep):  # (a stream's fold statistics count the gaps before the fill)
        _fold_missing(out, path)
    return model, record


def _fold_missing(out: Path, path: Path) -> None:
    """A fold's signature.json with the missing rates of the k-fold run's (a fold's training rows in
    memory are counted after their gaps were filled: none would be left)."""
    from nettrain.data.contract import read_signature, with_missing_of

    parent, own = read_signature(out), read_signature(path)
    if parent is not None and own is not None:
        atomic.write_json(path / rundir.SIGNATURE, with_missing_of(own, parent))


@contextlib.contextmanager
def folds_running(out: Path, record: rundir.RunRecord, again: str | None = None) -> Iterator[None]:
    """The parent run is `running` while its folds train; a signal ends it `interrupted` after its
    last complete fold (`folds_done`), an error `failed`. `again`: how to start over, where `fit
    --resume` is not the way (a retrain)."""
    try:
        with guard.handlers(), guard.deferred(), record.active():
            record.update(status="running", ended=None)
            yield
    except (KeyboardInterrupt, Interrupted):
        now = record.typed
        refit = f" and epoch {now.epochs_done or 0} of the refit" if now.refit is not None else ""
        raise Interrupted(f"interrupted after {now.folds_done or 0} complete fold(s){refit}; the run "
                          f"so far is in {out} ("
                          + (again or f"continue it with: nettrain fit CONFIG --resume {out}") + ")") from None


def finish(prep: F.Prepared, out: Path, record: rundir.RunRecord, per_fold: list[dict[str, dict[str, float]]],
           refit: dict[str, dict[str, float]] | None = None, *, interval: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parent's plots/learning_curves_mean.png, metrics.json (every fold, mean, std; the refit
    model's metrics under `refit` and its test split's bootstrap interval, `interval`, under
    `test_interval`), run.json `completed` and MODEL.md; returns the metrics."""
    mean, std = summarize(per_fold)
    metrics: dict[str, Any] = {"folds": per_fold, "mean": mean, "std": std}
    final: dict[str, Any] = {"mean": mean, "std": std}
    if refit is not None:
        metrics["refit"] = final["refit"] = refit
        if interval:
            metrics["test_interval"] = interval
    if prep.cfg.output.plots:
        draw_mean_curves(out, len(per_fold), record)
    atomic.write_json(out / rundir.METRICS_JSON, metrics)
    record.update(status="completed", ended=rundir.now(), final_metrics=final)
    RF.write_card(out)
    try:
        tracking.finish_kfold(prep.cfg, out, record, metrics)
    except Exception as e:  # noqa: BLE001 - the run is complete on disk; MLflow only gets a copy
        warnings.warn(f"MLflow: the k-fold run's summary was not logged ({e})")
    return metrics


def fold_records(out: Path, k: int) -> list[RunRecord]:
    """The folds' run.json records (checked), in fold order."""
    return [rundir.RunRecord.load(fold_dir(out, i)).typed for i in range(1, k + 1)]


def draw_mean_curves(out: Path, k: int, record: rundir.RunRecord) -> Path | None:
    """plots/learning_curves_mean.png: the folds' metrics.csv averaged per epoch, ± one std across the
    folds, the mean best epoch marked (the refit's epochs when there is a refit). Gradient columns
    (callbacks.gradient_stats) are left out, as in each fold's own learning curves."""
    from nettrain.report import plots
    from nettrain.report.gradients import is_gradient_column

    histories = []
    for i in range(1, k + 1):
        rows = rundir.MetricsCSV(fold_dir(out, i) / rundir.METRICS_CSV).read()
        histories.append([{c: v for c, v in row.items() if not is_gradient_column(c)} for row in rows])
    if not any(histories):
        return None
    plan = record.typed.refit
    if plan is not None and plan.epochs is not None:
        best, monitor = plan.epochs, plan.monitor
    else:
        best, monitor, _ = mean_best_epoch(fold_records(out, k))
    (out / rundir.PLOTS).mkdir(exist_ok=True)
    return plots.mean_learning_curves(histories, out / rundir.PLOTS / MEAN_CURVES, mean_best_epoch=best,
                                      monitor=monitor)


# ------------------------------------------------------------------------------ data.split.refit

def mean_best_epoch(records: list[RunRecord]) -> tuple[int, str | None, list[int]]:
    """(the mean of the folds' best epochs rounded half up, at least 1; the monitor that chose them;
    each fold's best epoch). A fold without a best epoch (no finite monitored value) counts with the
    epochs it trained."""
    bests = [r.best_epoch or r.epochs_done or r.epochs or 1 for r in records]
    monitors = [r.monitor for r in records if r.monitor is not None]
    mean = max(1, math.floor(sum(bests) / len(bests) + 0.5)) if bests else 1
    return mean, (monitors[0] if monitors else None), bests


def refit_plan(prep: F.Prepared, out: Path, k: int) -> dict[str, Any]:
    """What the refit trains, recorded in run.json `refit` before it starts (a resumed refit keeps it):
    `epochs` (the mean best epoch of the folds), `fold_best_epochs`, `monitor` (and `rows`, at its start)."""
    epochs, monitor, bests = mean_best_epoch(fold_records(out, k))
    return {"epochs": epochs, "fold_best_epochs": bests, "monitor": monitor}


def refit_config(cfg: Config, epochs: int) -> Config:
    """The config of the refit session: `epochs` epochs, no early stopping, and what monitored a
    validation quantity (there are no validation rows) monitoring its training counterpart. The
    data keys stay: `evaluate` re-creates the same folds and test rows from it."""
    new = cfg.model_copy(deep=True)
    new.training.epochs = epochs
    new.callbacks = on_training_rows(new.callbacks)
    return new


def refit_dataset(prep: F.Prepared, *, new_stats: bool = True):
    """All the non-test rows as the training rows, no validation rows, the same test rows; the
    statistics (scaling, vocabularies, class counts) of those rows. A stream reads its non-test rows
    once more for them (one pass over the file). `new_stats` False (rows only measured, by a model
    whose preprocessing is fixed already: `ensemble`): the dataset's statistics are kept, no pass."""
    from nettrain.data.stats import stats_of

    dataset = prep.dataset
    if not _streamed(prep):
        return dataclasses.replace(dataset, train=dataset.pool, validation=None, folds=None, pool=None,
                                   stats=stats_of(dataset.schema, dataset.pool) if new_stats else dataset.stats)
    from nettrain.data.split import fold_codes

    train, valid = fold_codes(1, dataset.n_folds)
    pool = frozenset(train | valid)
    view = dataclasses.replace(dataset, codes={"train": pool, "validation": frozenset(),
                                               "test": dataset.codes.get("test", frozenset())}, fold=None)
    if not new_stats:
        return view
    stats = None
    for chunk in dataset.reader.rows(pool):
        part = stats_of(dataset.schema, chunk)
        stats = part if stats is None else stats.merge(part)
        guard.poll()
    texts = {c.name: view.texts(c.name) for c in dataset.schema.columns if c.kind == "text"}
    return dataclasses.replace(view, stats=dataclasses.replace(stats, texts=texts))


def refit_prep(prep: F.Prepared, epochs: int) -> F.Prepared:
    """The refit session's `Prepared`: `refit_config`, `refit_dataset` and their feed."""
    return F.with_rows(dataclasses.replace(prep, cfg=refit_config(prep.cfg, epochs)), refit_dataset(prep))


def start_refit(rp: F.Prepared, out: Path, record: rundir.RunRecord, monitors: dict[str, str],
                plan: dict[str, Any]):
    """The refit's new model, built from `seed` again (so a refit started again after an interruption
    is the refit an uninterrupted run trains, however many models the process built before); the
    parent run gets the files of a run about to train (features.json, summary.txt, a fresh
    metrics.csv) and run.json the refit's fields; config.yaml stays the k-fold run's."""
    import keras

    from nettrain.model.build import model_summary

    keras.utils.set_random_seed(rp.cfg.seed)
    model = F.new_model(rp)
    with guard.deferred():
        record.update(refit={**plan, "rows": RF.split_rows(rp.dataset)["train"]}, label_mode=rp.mode,
                      epochs=plan["epochs"], epochs_done=0, best_epoch=None, stopped_epoch=None, monitor=monitors["best"])
        with record.active():
            (out / rundir.METRICS_CSV).unlink(missing_ok=True)  # a refit started again without a checkpoint
            atomic.write_json(out / rundir.FEATURES, rp.features(model))
            atomic.write_text(out / rundir.SUMMARY, model_summary(model) + "\n")
    return model


# ------------------------------------------------------------------ data.split.refit: ensemble

def ensemble(prep: F.Prepared, out: Path, record: rundir.RunRecord, k: int) -> F.FitResult:
    """`data.split.refit: ensemble`: the k-fold run's model.h5 is its k fold models averaged
    (`model.ensemble.mean_of`: one model that predicts the mean of theirs; each trained on its own
    k-1 folds and stopped early on its own fold). Nothing is trained: the members are the folds'
    model.h5 as they are. Its metrics are measured as a refit model's: on all the non-test rows
    (`train`) and the test rows, with the test split's bootstrap interval. The parent gets the files
    of a run with a model (model.h5, features.json, summary.txt); its result."""
    from nettrain.model.build import model_summary
    from nettrain.model.compile import compile_model
    from nettrain.model.ensemble import mean_of
    from nettrain.store import h5
    from nettrain.training.ending import evaluate_splits, held_interval, held_out

    rp = F.with_rows(prep, refit_dataset(prep, new_stats=False))
    members = [h5.load_model(fold_dir(out, i) / rundir.MODEL, restore_optimizer=False) for i in range(1, k + 1)]
    model = mean_of(members)
    compile_model(rp.cfg, model, rp.dataset.schema)
    metrics = evaluate_splits(model, rp.feed)
    interval = held_interval(rp, *held_out(rp.feed, model))
    rows = RF.split_rows(rp.dataset)
    features = rp.features(model)
    with guard.deferred(), record.active():
        record.update(refit={"members": k, "rows": rows["train"]}, label_mode=rp.mode)
        (out / rundir.METRICS_CSV).unlink(missing_ok=True)
        atomic.write_json(out / rundir.FEATURES, features)
        atomic.write_text(out / rundir.SUMMARY, model_summary(model) + "\n")
        h5.save_model(model, out / rundir.MODEL, {"features": features, "config": prep.cfg.to_dict(),
                                                  "epoch": None, "run": prep.cfg.name})
    return F.FitResult(out, "completed", metrics, test_interval=interval)


def summarize(per_fold: list[dict[str, dict[str, float]]]) -> tuple[dict, dict]:
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for split in rundir.SPLITS:
        names = sorted({m for fold in per_fold for m in fold.get(split, {})})
        for name in names:
            values = np.array([fold[split][name] for fold in per_fold if name in fold.get(split, {})], dtype=float)
            mean.setdefault(split, {})[name] = float(values.mean())
            std.setdefault(split, {})[name] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std
