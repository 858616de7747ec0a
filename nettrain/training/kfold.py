"""`data.split.folds: k`: k models, each trained on k-1 folds of the non-test rows and validated on
the remaining one. Each fold is a complete run in `fold-<i>/`; the parent run's metrics.json holds
every fold's metrics and their mean and standard deviation per split and metric.

What a k-fold run is made of: the folds' rows, the parent run's record and summary. The loop over
the folds (train, keep or resume each one) is in `nettrain.lifecycle.orchestrate`; each fold is
trained by the leaf `training.fit`, which knows nothing of folds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nettrain.data.load import fold_dataset
from nettrain.errors import Interrupted
from nettrain.store import atomic, guard, rundir
from nettrain.training import fit as F


def _streamed(prep: F.Prepared) -> bool:
    from nettrain.data.stream import StreamDataset

    return isinstance(prep.dataset, StreamDataset)


def count(prep: F.Prepared) -> int:
    """How many folds the data stage made."""
    if _streamed(prep):
        return prep.dataset.n_folds if prep.dataset.fold_stats else 0
    return len(prep.dataset.folds or [])


def check_folds(prep: F.Prepared) -> None:
    if count(prep) < 2 or (not _streamed(prep) and prep.dataset.pool is None):
        raise prep.cfg.error("data.split.folds", "the data stage produced no folds")


def folds(prep: F.Prepared) -> Iterator[tuple[int, F.Prepared]]:
    """(fold number from 1, the fold's `Prepared`: its training and validation rows of the pool; for a
    stream, the rows whose hashed fold is another one and those whose fold is this one)."""
    dataset = prep.dataset
    if _streamed(prep):
        for i in range(1, dataset.n_folds + 1):
            yield i, F.with_rows(prep, dataset.for_fold(i))
        return
    for i, (train_pos, val_pos) in enumerate(dataset.folds, start=1):
        yield i, F.with_rows(prep, fold_dataset(dataset, train_pos, val_pos))


def fold_dir(out: Path, i: int) -> Path:
    return out / f"fold-{i}"


def fold_fields(i: int, out: Path) -> dict[str, Any]:
    """What a fold's run.json adds to the fields of every run: its number and its parent run."""
    return {"fold": i, "parent": str(out)}


def start_kfold_dir(prep: F.Prepared, out: Path) -> rundir.RunRecord:
    """The parent run's run.json (first), config.yaml and labels.json."""
    record = rundir.RunRecord(out)
    record.update(**F.run_fields(prep, folds=count(prep)))
    with record.active():
        F.write_start_files(prep, out)
    return record


def start_fold(fold_prep: F.Prepared, out: Path, i: int, monitors: dict[str, str]):
    """A new fold's model and run directory `fold-<i>/`: (model, the fold's run record)."""
    model = F.new_model(fold_prep)
    path = fold_dir(out, i)
    path.mkdir(exist_ok=True)
    return model, F.start_run_dir(fold_prep, model, path, monitors, **fold_fields(i, out))


@contextlib.contextmanager
def folds_running(out: Path, record: rundir.RunRecord) -> Iterator[None]:
    """The parent run is `running` while its folds train; a signal ends it `interrupted` after its
    last complete fold (`folds_done`), an error `failed`."""
    try:
        with guard.handlers(), guard.deferred(), record.active():
            record.update(status="running", ended=None)
            yield
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(f"interrupted after {record.data.get('folds_done') or 0} complete fold(s); the run so far "
                          f"is in {out} (continue it with: nettrain fit CONFIG --resume {out})") from None


def finish(out: Path, record: rundir.RunRecord, per_fold: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """The parent's metrics.json (every fold, mean, std) and run.json `completed`; returns the metrics."""
    mean, std = summarize(per_fold)
    metrics = {"folds": per_fold, "mean": mean, "std": std}
    atomic.write_json(out / rundir.METRICS_JSON, metrics)
    record.update(status="completed", ended=rundir.now(), final_metrics={"mean": mean, "std": std})
    return metrics


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
