"""`data.split.folds: k`: k models, each trained on k-1 folds of the non-test rows and validated on
the remaining one. Each fold is a complete run in `fold-<i>/`; the parent run's metrics.json holds
every fold's metrics and their mean and standard deviation per split and metric."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from nettrain.config.schema import Config
from nettrain.data.types import Split
from nettrain.store import atomic, rundir
from nettrain.training import fit as F


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
              json_output: bool = False) -> F.FitResult:
    prep = F.prepare(cfg)
    dataset = prep.dataset
    if not dataset.folds or dataset.pool is None:
        raise cfg.error("data.split.folds", "the data stage produced no folds")
    monitors = F.check_monitors(cfg, dataset.schema, True)
    out = rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir)
    rundir.write_config(out, cfg.to_dict())
    if dataset.schema.class_names:
        atomic.write_json(out / rundir.LABELS, dataset.schema.class_names)
    record = rundir.RunRecord(out)
    record.update(name=cfg.name, status="running", started=rundir.now(), ended=None, seed=cfg.seed,
                  device=prep.device, versions=rundir.versions(), config_file=cfg._file, task=dataset.schema.task,
                  folds=len(dataset.folds), epochs=cfg.training.epochs, final_metrics=None,
                  data=F.data_record(dataset))
    per_fold = []
    for i, (train_pos, val_pos) in enumerate(dataset.folds, start=1):
        fold_data = dataclasses.replace(dataset, train=subset(dataset.pool, train_pos),
                                        validation=subset(dataset.pool, val_pos), folds=None, pool=None)
        fold_prep = dataclasses.replace(prep, dataset=fold_data,
                                        steps=F.feed.steps_per_epoch(len(train_pos), cfg.training.batch_size))
        model = F.new_model(fold_prep)
        fold_dir = out / f"fold-{i}"
        fold_dir.mkdir()
        fold_record = F.start_run_dir(fold_prep, model, fold_dir, monitors, fold=i, parent=str(out))
        if not quiet and not json_output:
            print(f"fold {i}/{len(dataset.folds)}: {len(train_pos)} training rows, {len(val_pos)} validation rows")
        result = F.train(F.Session(fold_prep, model, fold_dir, fold_record, 0, cfg.training.epochs, monitors,
                                   quiet=quiet, json_output=True))
        per_fold.append(result.metrics)
        record.update(folds_done=i)
    mean, std = summarize(per_fold)
    metrics = {"folds": per_fold, "mean": mean, "std": std}
    atomic.write_json(out / rundir.METRICS_JSON, metrics)
    record.update(status="completed", ended=rundir.now(), final_metrics={"mean": mean, "std": std})
    F.report_result(metrics, out, json_output)
    return F.FitResult(out, "completed", metrics, cfg.training.epochs)
