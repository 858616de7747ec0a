"""`data.split.folds: k`: k models, each trained on k-1 folds of the non-test rows and validated on
the remaining one. Each fold is a complete run in `fold-<i>/`; the parent run's metrics.json holds
every fold's metrics and their mean and standard deviation per split and metric."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from nettrain.config.schema import Config
from nettrain.data.types import Split
from nettrain.errors import Interrupted
from nettrain.store import atomic, guard, rundir
from nettrain.training import fit as F


@dataclasses.dataclass
class FoldResult:
    metrics: dict[str, dict[str, float]]
    resumed: bool = False


# (fold's Prepared, fold directory, fold number from 1) -> a result, or None to train the fold afresh
FoldRunner = Callable[[F.Prepared, Path, int], "FoldResult | None"]


def subset(split: Split, positions: np.ndarray) -> Split:
    return Split(inputs={k: v[positions] for k, v in split.inputs.items()},
                 y=None if split.y is None else split.y[positions],
                 ids=None if split.ids is None else split.ids[positions],
                 row_index=None if split.row_index is None else split.row_index[positions])


def summarize(per_fold: list[dict[str, dict[str, float]]]) -> tuple[dict, dict]:
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for split in F.SPLITS:
        names = sorted({m for fold in per_fold for m in fold.get(split, {})})
        for name in names:
            values = np.array([fold[split][name] for fold in per_fold if name in fold.get(split, {})], dtype=float)
            mean.setdefault(split, {})[name] = float(values.mean())
            std.setdefault(split, {})[name] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def run_kfold(cfg: Config, *, run_dir: Path | None = None, quiet: bool = False,
              json_output: bool = False, force: bool = False) -> F.FitResult:
    if run_dir is not None:
        rundir.check_run_dir(run_dir, force=force)  # before the slow part
    prep = F.prepare(cfg)
    dataset = prep.dataset
    if not dataset.folds or dataset.pool is None:
        raise cfg.error("data.split.folds", "the data stage produced no folds")
    F.check_monitors(cfg, dataset.schema, True)
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=force) as out, guard.deferred():
        record = rundir.RunRecord(out)
        record.update(name=cfg.name, status="running", started=rundir.now(), ended=None, seed=cfg.seed,
                      device=prep.device, versions=rundir.versions(), config_file=cfg._file, task=dataset.schema.task,
                      folds=len(dataset.folds), epochs=cfg.training.epochs, final_metrics=None,
                      data=F.data_record(dataset))
        with record.active():
            rundir.write_config(out, cfg.to_dict())
            if dataset.schema.class_names:
                atomic.write_json(out / rundir.LABELS, dataset.schema.class_labels)
        return run_folds(prep, out, record, quiet=quiet, json_output=json_output)


def run_folds(prep: F.Prepared, out: Path, record: rundir.RunRecord, *, quiet: bool, json_output: bool,
              fold_runner: FoldRunner | None = None) -> F.FitResult:
    """Train (or, through `fold_runner`, keep or resume) every fold of a locked parent run."""
    cfg, dataset = prep.cfg, prep.dataset
    monitors = F.check_monitors(cfg, dataset.schema, True)
    per_fold = []
    try:
        with guard.handlers(), guard.deferred(), record.active():
            record.update(status="running", ended=None)
            for i, (train_pos, val_pos) in enumerate(dataset.folds, start=1):
                fold_data = dataclasses.replace(dataset, train=subset(dataset.pool, train_pos),
                                                validation=subset(dataset.pool, val_pos), folds=None, pool=None)
                fold_prep = dataclasses.replace(prep, dataset=fold_data,
                                                steps=F.feed.steps_per_epoch(len(train_pos), cfg.training.batch_size))
                fold_dir = out / f"fold-{i}"
                kept = fold_runner(fold_prep, fold_dir, i) if fold_runner is not None else None
                if kept is not None:
                    F.notice(f"fold {i}/{len(dataset.folds)}: {'resumed' if kept.resumed else 'already done'}",
                             json_output)
                    per_fold.append(kept.metrics)
                else:
                    per_fold.append(_train_fold(fold_prep, fold_dir, i, len(dataset.folds), out, monitors,
                                                quiet=quiet, json_output=json_output))
                record.update(folds_done=i)
            mean, std = summarize(per_fold)
            metrics = {"folds": per_fold, "mean": mean, "std": std}
            atomic.write_json(out / rundir.METRICS_JSON, metrics)
            record.update(status="completed", ended=rundir.now(), final_metrics={"mean": mean, "std": std})
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(f"interrupted after {record.data.get('folds_done') or 0} complete fold(s); the run so far "
                          f"is in {out} (continue it with: nettrain fit CONFIG --resume {out})") from None
    F.report_result(metrics, out, json_output)
    return F.FitResult(out, "completed", metrics, cfg.training.epochs)


def _train_fold(fold_prep: F.Prepared, fold_dir: Path, i: int, k: int, out: Path, monitors: dict[str, str], *,
                quiet: bool, json_output: bool) -> dict[str, dict[str, float]]:
    model = F.new_model(fold_prep)
    fold_dir.mkdir(exist_ok=True)
    fold_record = F.start_run_dir(fold_prep, model, fold_dir, monitors, fold=i, parent=str(out))
    F.notice(f"fold {i}/{k}: {len(fold_prep.dataset.train)} training rows, "
             f"{len(fold_prep.dataset.validation)} validation rows", json_output)
    result = F.train(F.Session(fold_prep, model, fold_dir, fold_record, 0, fold_prep.cfg.training.epochs, monitors,
                               quiet=quiet, json_output=True))
    return result.metrics
